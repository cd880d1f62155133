"""Converts ImageNet weights from torchvision or timm into a kdjax checkpoint usable as `teacher.checkpoint` or
`init_from` (kdjax downloads nothing: pass the file you have).

    python -m experiments.convert_imagenet --weights resnet34-b627a593.pth --out DIR [--arch resnet34]
    python -m experiments.convert_imagenet --source timm --arch swin_t --weights swin_tiny.pth --out DIR --headless

Needs torch (to read the .pth file; a timm `.safetensors` file needs the `safetensors` package). Architectures:
torchvision resnet18/34/50/101, mobilenet_v2, shufflenet_v2_x1_0; timm repvgg_a0, swin_t (224 px). The checkpoint
holds `params.model` and `batch_stats`, like a teacher stage; `--headless` drops the classifier (`fc`,
`classifier`, `head`): a backbone under another head, loaded with `init_from=DIR` and `init_allow_random` naming
the new head (`('^params/embedding_head/',)` for an embedding model, `('/decoder/',)` for the ML-Decoder).
"""
import argparse

from kdjax import models
from kdjax.models import torch_convert
from kdjax.train import checkpoint as ckpt_lib

SOURCES = ("torchvision", "timm")
CLASSIFIER_PREFIXES = ("fc.", "classifier.", "head.")


def save_teacher_checkpoint(variables: dict, out: str, source: str = "torchvision") -> None:
    ckpt_lib.save_model_variables(out, variables, {"source": source})


def read_state_dict(path: str) -> dict:
    if path.endswith(".safetensors"):
        from safetensors.numpy import load_file
        return load_file(path)
    import torch
    return torch.load(path, map_location="cpu")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--source", default="torchvision", choices=SOURCES)
    parser.add_argument("--arch", default="resnet34",
                        choices=sorted({k.split(':', 1)[1] for k in torch_convert.CONVERTERS if k.split(':')[0] in SOURCES}))
    parser.add_argument("--headless", action="store_true", help="drop the classifier (fc / classifier / head)")
    args = parser.parse_args(argv)
    state_dict = torch_convert.normalise_state_dict(read_state_dict(args.weights))
    if args.headless:
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith(CLASSIFIER_PREFIXES)}
    variables = models.from_torch(args.arch, state_dict, source=args.source)
    save_teacher_checkpoint(variables, args.out, args.source)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
