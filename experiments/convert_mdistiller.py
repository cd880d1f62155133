"""Reads a published mdistiller / RepDistiller teacher once (needs torch) and writes its state dict as `.npz`, which
`teacher=dict(pretrained=..., path=X.npz)` reads on machines without torch.

    python -m experiments.convert_mdistiller --teacher=mdistiller:resnet32x4 --path=download_ckpts/cifar_teachers --out=resnet32x4.npz

`--path` is the checkpoint file or the unpacked `cifar_teachers` directory. The weights are converted once on the way
(`kdjax.models.from_torch`), so a wrong file fails here, not on the training machine; the printed sha256 is the
original file's (pin it with `teacher.sha256=`).
"""
import argparse

import numpy as np

from kdjax import models, teachers
from kdjax.models import torch_convert


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True, help=f"one of {', '.join(teachers.TEACHERS.names())}")
    parser.add_argument("--path", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    entry = teachers.get(args.teacher)
    file = teachers.resolve_path(args.teacher, args.path)
    state_dict = torch_convert.normalise_state_dict(teachers.read_state_dict(file))
    models.from_torch(entry.arch, state_dict, source=entry.source)
    np.savez(args.out, **state_dict)
    print(f"{args.teacher}: {file} (sha256 {teachers.sha256(file)}) -> {args.out}, {len(state_dict)} tensors")


if __name__ == "__main__":
    main()
