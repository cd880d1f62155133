"""Model registry: a config names a model (`resnet32x4`, `vgg9`, ...) and gets a Flax module.

Every model's `__call__(x, *, train)` takes NHWC float images and returns `(logits, taps)`; taps is a dict of
named features (`feats`, `preact_feats`, `pooled`, ...) documented in each model module; every backbone's taps
include `pooled` (the vector its classifier reads) and `feature_map` (the map that vector is pooled from).
"""
import dataclasses

import flax.linen as nn

from kdjax.models import (cifar_resnet, cifar_resnet50, embedding, imagenet_mobile, imagenet_resnet, ml_decoder,
                          mobilenetv2, shufflenet, swin, vgg, wrn)
from kdjax.models import mdistiller  # noqa: F401  (registers the mdistiller converters)
from kdjax.models.torch_convert import from_torch

_FAMILIES = (vgg, cifar_resnet, wrn, cifar_resnet50, mobilenetv2, shufflenet, imagenet_resnet, imagenet_mobile, swin)
REGISTRY = {name: family for family in _FAMILIES for name in family.NAMES}


def model_names() -> list[str]:
    return sorted(REGISTRY)


def get_model(name: str, *, num_classes: int, embedding_dim: int | None = None, head: str = "gap_fc",
              head_width: int = 768, head_hidden: int = 2048, **kw) -> nn.Module:
    """Builds the registered model `name` with a `num_classes`-way classifier, or, with `embedding_dim`, the
    backbone under a deep-metric-learning embedding head (`kdjax.models.embedding`); `head='ml_decoder'` puts L2D's
    label-embedding head on the backbone instead of its own pooled linear classifier (`'gap_fc'`, the default;
    `kdjax.models.ml_decoder`), of width `head_width` and feed-forward width `head_hidden` (L2D: 768, 2048); kw go
    to the module (width, dtype, frozen_bn, ...); an unknown keyword is an error
    naming the model's options."""
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(model_names())}")
    if head not in ml_decoder.HEADS:
        raise ValueError(f"model {name!r}: unknown head {head!r}; valid heads: {', '.join(ml_decoder.HEADS)}")
    if embedding_dim:
        return embedding.EmbeddingNet(get_model(name, num_classes=0, **kw), int(embedding_dim))
    if head == "ml_decoder":
        return ml_decoder.MultiLabelNet(get_model(name, num_classes=0, **kw), int(num_classes), int(head_width),
                                        int(head_hidden), dtype=kw.get("dtype", "float32"))
    family = REGISTRY[name]
    try:
        return family.get_model(name, num_classes=num_classes, **kw)
    except TypeError as e:
        module = type(family.get_model(name, num_classes=num_classes))
        valid = sorted(f.name for f in dataclasses.fields(module) if f.name not in ("parent", "name"))
        raise ValueError(f"model {name!r}: {e}; valid options: {valid}") from e
