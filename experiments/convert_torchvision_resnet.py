"""Converts torchvision ImageNet ResNet weights into a kdjax checkpoint usable as `teacher.checkpoint` or `init_from`.

    python -m experiments.convert_torchvision_resnet --weights resnet34-b627a593.pth --out DIR [--arch resnet34]

Needs torch (to read the .pth file). The checkpoint holds `params.model` and `batch_stats`, like a teacher stage;
`--headless` drops the classifier (a backbone for an embedding model: `init_from=DIR` with
`init_allow_random=('^params/embedding_head/',)`).
"""
import argparse

import jax
import numpy as np

from kdjax import models
from kdjax.models import torch_convert
from kdjax.train import checkpoint as ckpt_lib


def save_teacher_checkpoint(variables: dict, out: str) -> None:
    checkpointer = ckpt_lib.Checkpointer(out, asynchronous=False)
    tree = {"step": np.int32(0), "params": {"model": variables["params"]}, "batch_stats": variables["batch_stats"]}
    checkpointer.save(0, jax.tree.map(np.asarray, tree), {"source": "torchvision"})
    checkpointer.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--arch", default="resnet34",
                        choices=sorted(n for s, n in torch_convert.CONVERTERS if s == "torchvision"))
    parser.add_argument("--headless", action="store_true", help="drop the classifier (fc)")
    args = parser.parse_args(argv)
    import torch
    state_dict = torch_convert.normalise_state_dict(torch.load(args.weights, map_location="cpu"))
    if args.headless:
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
    variables = models.from_torch(args.arch, state_dict, source="torchvision")
    save_teacher_checkpoint(variables, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
