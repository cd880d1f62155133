"""Model registry: a config names a model (`resnet32x4`, `vgg9`, ...) and gets a Flax module; and the converter
entry point, `from_torch`.

Every model's `__call__(x, *, train)` takes NHWC float images and returns `(outputs, taps)`; taps is a dict of
named features (`feats`, `preact_feats`, `pooled`, ...) documented in each model module; every backbone's taps
include `pooled` (the vector its classifier reads) and `feature_map` (the map that vector is pooled from).
A family module defines `NAMES` and `get_model(name, *, num_classes, **kw)`; `FAMILIES` registers them.
"""
import dataclasses

import flax.linen as nn
import jax
import numpy as np

from kdjax.models import (cifar_resnet, cifar_resnet50, embedding, imagenet_mobile, imagenet_resnet, mdistiller,
                          ml_decoder, mobilenetv2, shufflenet, swin, torch_convert, vgg, wrn)
from kdjax.registry import Registry

FAMILIES = (vgg, cifar_resnet, wrn, cifar_resnet50, mobilenetv2, shufflenet, imagenet_resnet, imagenet_mobile, swin)
MODELS = Registry("model")
for _family in FAMILIES:
    for _name in _family.NAMES:
        MODELS.register(_name, _family.get_model)
del mdistiller  # imported for its converters' registration


def get_model(name: str, *, num_classes: int, embedding_dim: int | None = None, head: str = "gap_fc",
              head_width: int = 768, head_hidden: int = 2048, **kw) -> nn.Module:
    """Builds the registered model `name` with a `num_classes`-way classifier, or, with `embedding_dim`, the
    backbone under a deep-metric-learning embedding head (`kdjax.models.embedding`); `head='ml_decoder'` puts L2D's
    label-embedding head on the backbone instead of its own pooled linear classifier (`'gap_fc'`, the default;
    `kdjax.models.ml_decoder`), of width `head_width` and feed-forward width `head_hidden` (L2D: 768, 2048); kw go
    to the module (width, dtype, frozen_bn, ...); an unknown keyword is an error naming the model's options."""
    factory = MODELS.get(name)
    if head not in ml_decoder.HEADS:
        raise ValueError(f"model {name!r}: unknown head {head!r}; valid heads: {', '.join(ml_decoder.HEADS)}")
    if embedding_dim:
        return embedding.EmbeddingNet(get_model(name, num_classes=0, **kw), int(embedding_dim))
    if head == "ml_decoder":
        return ml_decoder.MultiLabelNet(get_model(name, num_classes=0, **kw), int(num_classes), int(head_width),
                                        int(head_hidden), dtype=kw.get("dtype", "float32"))
    try:
        return factory(name, num_classes=num_classes, **kw)
    except TypeError as e:
        module = type(factory(name, num_classes=num_classes))
        valid = sorted(f.name for f in dataclasses.fields(module) if f.name not in ("parent", "name"))
        raise ValueError(f"model {name!r}: {e}; valid options: {valid}") from e


def from_config(model_cfg: dict, *, num_classes: int) -> nn.Module:
    """A config's `model` block (dict(name=..., **options)); its `num_classes` overrides the data's (an ImageNet
    teacher on a 67-class dataset)."""
    kw = {k: v for k, v in model_cfg.items() if k != "name"}
    kw.setdefault("num_classes", num_classes)
    return get_model(model_cfg["name"], **kw)


def model_names() -> list[str]:
    return MODELS.names()


def from_torch(name: str, state_dict, *, source: str = "torchvision", num_classes: int | None = None,
               image_shape=(1, 64, 64, 3), **model_kw) -> dict:
    """Variables {'params', 'batch_stats'} of `get_model(name, num_classes=..., **model_kw)` from a PyTorch state
    dict of the same architecture. `num_classes` defaults to the checkpoint's classifier size (0 without one: a
    headless backbone). `source`: where the checkpoint comes from ('torchvision', 'timm', 'mdistiller', ...).
    `model_kw`: options the weights' shapes depend on (Swin's `img_size`)."""
    key = f"{source}:{name}"
    if key not in torch_convert.CONVERTERS:
        raise ValueError(f"from_torch: no converter for model {name!r} from source {source!r}; available: "
                         f"{torch_convert.CONVERTERS.names()}")
    sd = torch_convert.normalise_state_dict(state_dict)
    try:
        variables = torch_convert.CONVERTERS.get(key)(name, sd)
    except KeyError as e:
        raise ValueError(f"from_torch({name!r}, source={source!r}): the state dict has no tensor {e}; is it a "
                         f"{source} {name} checkpoint? Its keys look like {sorted(sd)[:6]}") from e
    if num_classes is None:
        num_classes = int(torch_convert.classifier_size(variables))
    model = get_model(name, num_classes=num_classes, **model_kw)
    if getattr(model, "img_size", None):  # built for one input size (Swin): check at that size
        image_shape = (1, model.img_size, model.img_size, image_shape[-1])
    torch_convert.check_fits(name, variables, model, image_shape)
    return jax.tree.map(lambda x: np.asarray(x, np.float32), variables)
