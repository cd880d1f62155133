"""mdistiller / RepDistiller CIFAR checkpoints -> kdjax variables (`from_torch(name, sd, source='mdistiller')`).

The published CIFAR-100 teachers (mdistiller's `cifar_teachers.tar`, RepDistiller's `fetch_pretrained_teachers.sh`:
`<arch>_vanilla/ckpt_epoch_240.pth`, the state dict under `model`) and any student trained with either code base.
kdjax's CIFAR models follow those code bases layer for layer (megvii-research/mdistiller `mdistiller/models/cifar/
resnet.py`, `wrn.py`, `vgg.py`, `resnetv2.py`); only the names differ, mapped here:

- resnet8 ... resnet110, resnet8x4, resnet32x4: `conv1`, `bn1`, `layer{s}.{b}.{conv1,bn1,conv2,bn2,downsample.0,
  downsample.1}`, `fc`;
- wrn_d_k: `conv1`, `block{s}.layer.{b}.{bn1,conv1,bn2,conv2,convShortcut}`, `bn1`, `fc`;
- vgg8 ... vgg19 (the `_bn` variants): `block{k}.{3j}` conv (with bias), `block{k}.{3j+1}` BN, `classifier`;
- ResNet50 (kdjax `resnet50_cifar`): `conv1`, `bn1`, `layer{s}.{b}.{conv1,bn1,conv2,bn2,conv3,bn3,shortcut.0,
  shortcut.1}`, `linear`.

BN running statistics come along (`batch_stats`). flax names a module's convolutions and BNs by creation order per
type (`Conv_0`, `BatchNorm_0`, ...), which is the order the tables below list.
"""
from kdjax.models import cifar_resnet, vgg, wrn
from kdjax.models import torch_convert as tc

_BASIC = {"Conv_0": "conv1", "Conv_1": "conv2", "Conv_2": "downsample.0"}
_BASIC_BN = {"BatchNorm_0": "bn1", "BatchNorm_1": "bn2", "BatchNorm_2": "downsample.1"}
_WRN = {"Conv_0": "conv1", "Conv_1": "conv2", "Conv_2": "convShortcut"}
_WRN_BN = {"BatchNorm_0": "bn1", "BatchNorm_1": "bn2"}
_BOTTLENECK = {"Conv_0": "conv1", "Conv_1": "conv2", "Conv_2": "conv3", "Conv_3": "shortcut.0"}
_BOTTLENECK_BN = {"BatchNorm_0": "bn1", "BatchNorm_1": "bn2", "BatchNorm_2": "bn3", "BatchNorm_3": "shortcut.1"}


def _count(sd: dict, pattern: str) -> int:
    """Blocks per stage: the number of distinct `<pattern>.<index>.` prefixes."""
    return len({k[len(pattern):].split(".")[1] for k in sd if k.startswith(pattern + ".")})


def _stem(sd: dict, *, bn: bool) -> tuple[dict, dict]:
    params, stats = {"Conv_0": tc.conv(sd, "conv1")}, {}
    if bn:
        params["BatchNorm_0"], stats["BatchNorm_0"] = tc.batch_norm(sd, "bn1")
    return params, stats


def _head(sd: dict, params: dict, torch_name: str) -> None:
    if f"{torch_name}.weight" in sd:
        params["Dense_0"] = tc.dense(sd, torch_name)


def _resnet(sd, *, stages, convs, bns, head):
    params, stats = _stem(sd, bn=True)
    for s in range(stages):
        for b in range(_count(sd, f"layer{s + 1}")):
            dst = f"stage{s + 1}_block{b}"
            params[dst], stats[dst] = tc.block(sd, f"layer{s + 1}.{b}", convs, bns)
    _head(sd, params, head)
    return {"params": params, "batch_stats": stats}


@tc.register("mdistiller", cifar_resnet.NAMES)
def _cifar_resnet(name, sd):
    return _resnet(sd, stages=3, convs=_BASIC, bns=_BASIC_BN, head="fc")


@tc.register("mdistiller", ("resnet50_cifar",))
def _resnet50_cifar(name, sd):
    return _resnet(sd, stages=4, convs=_BOTTLENECK, bns=_BOTTLENECK_BN, head="linear")


@tc.register("mdistiller", wrn.NAMES)
def _wrn(name, sd):
    params, stats = _stem(sd, bn=False)
    for s in range(3):
        for b in range(_count(sd, f"block{s + 1}.layer")):
            dst = f"stage{s + 1}_block{b}"
            params[dst], stats[dst] = tc.block(sd, f"block{s + 1}.layer.{b}", _WRN, _WRN_BN)
    params["BatchNorm_0"], stats["BatchNorm_0"] = tc.batch_norm(sd, "bn1")
    _head(sd, params, "fc")
    return {"params": params, "batch_stats": stats}


@tc.register("mdistiller", tuple(vgg.BENCHMARK_BLOCKS))
def _vgg(name, sd):
    params, stats, i = {}, {}, 0
    for k, widths in enumerate(vgg.BENCHMARK_BLOCKS[name]):
        for j in range(len(widths)):
            params[f"Conv_{i}"] = tc.conv(sd, f"block{k}.{3 * j}", bias=True)
            params[f"BatchNorm_{i}"], stats[f"BatchNorm_{i}"] = tc.batch_norm(sd, f"block{k}.{3 * j + 1}")
            i += 1
    _head(sd, params, "classifier")
    return {"params": params, "batch_stats": stats}
