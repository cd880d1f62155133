"""Converts torchvision ImageNet ResNet-18/34 weights into a kdjax checkpoint usable as `teacher.checkpoint`.

    python -m experiments.convert_torchvision_resnet --weights resnet34-b627a593.pth --out DIR [--arch resnet34]

Needs torch (to read the .pth file). The checkpoint holds `params.model` and `batch_stats`, like a teacher stage.
"""
import argparse

import jax
import numpy as np

from kdjax.models import imagenet_resnet
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
    parser.add_argument("--arch", default="resnet34", choices=sorted(imagenet_resnet.NAMES))
    args = parser.parse_args(argv)
    import torch
    state_dict = {k: v.numpy() for k, v in torch.load(args.weights, map_location="cpu").items()
                  if not k.endswith("num_batches_tracked")}
    variables = imagenet_resnet.variables_from_torch(state_dict, imagenet_resnet._BLOCKS[args.arch])
    save_teacher_checkpoint(variables, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
