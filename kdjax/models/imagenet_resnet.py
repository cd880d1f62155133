"""ImageNet ResNets in torchvision's layout (`resnet18`, `resnet34` with BasicBlocks; `resnet50`, `resnet101` with
Bottlenecks, stride on the 3x3 conv as torchvision v1.5), and the CIFAR layout of the BasicBlock stages
(`resnet18_cifar`, `resnet34_cifar`: the CIFAR ResNet-50 stem, conv3x3 stride 1 + BN + ReLU and no max-pool, as
ICD's ResNet-34 student; spatial 32, 32, 16, 8, 4).

Stem conv7x7/2 (no bias) + BN + ReLU + maxpool 3x3/2 (pad 1); four stages (64, 128, 256, 512 planes, x4 outputs for
Bottlenecks; strides 1, 2, 2, 2; a 1x1 conv + BN shortcut where the shape changes); global average pool; FC
(`num_classes=0`: no FC, the pooled features are the output, for embedding heads).
Taps: `feats` = [stem output (after the maxpool), layer1, layer2, layer3, layer4] (at 224 px: 56, 56, 28, 14, 7;
`feats[-1]` is the unpooled last stage), `preact_feats` likewise before each stage's last ReLU, `preact_bn` the BN
before it, `pooled`. With `frozen_bn=True` (deep metric learning's ResNet-50) BatchNorm keeps its running statistics
in training. Weights: `kdjax.models.from_torch(name, state_dict)` converts a torchvision state dict (kdjax downloads
none).
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from kdjax.models import layers
from kdjax.models import torch_convert as tc
from kdjax.models.cifar_resnet import BasicBlock

_BLOCKS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3), "resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3)}
BOTTLENECK = ("resnet50", "resnet101")
_CIFAR = {"resnet18_cifar": "resnet18", "resnet34_cifar": "resnet34"}
_WIDTHS = (64, 128, 256, 512)


class Bottleneck(nn.Module):
    """torchvision Bottleneck: 1x1-BN-ReLU, 3x3(stride)-BN-ReLU, 1x1 (4x)-BN, + shortcut, ReLU."""
    planes: int
    stride: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        out = 4 * self.planes
        bn = lambda name: layers.batch_norm(train, dtype=self.dtype, name=name)  # noqa: E731
        y = nn.relu(bn("bn1")(layers.conv(self.planes, 1, dtype=self.dtype, name="conv1")(x)))
        y = nn.relu(bn("bn2")(layers.conv(self.planes, 3, self.stride, dtype=self.dtype, name="conv2")(y)))
        bn3 = bn("bn3")
        y = bn3(layers.conv(out, 1, dtype=self.dtype, name="conv3")(y))
        shortcut = x
        if self.stride != 1 or x.shape[-1] != out:
            shortcut = bn("downsample_bn")(layers.conv(out, 1, self.stride, dtype=self.dtype, name="downsample_conv")(x))
        preact = y + shortcut
        return nn.relu(preact), preact, layers.bn_affine(bn3)


class ImageNetResNet(nn.Module):
    blocks: tuple[int, int, int, int]
    num_classes: int = 1000
    bottleneck: bool = False
    cifar_stem: bool = False
    width: float = 1.0
    frozen_bn: bool = False  # BatchNorm on running statistics in training too (layers.bn_train)
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool):
        train_bn = layers.bn_train(train, self.frozen_bn)
        w = [layers.scaled(c, self.width) for c in _WIDTHS]
        if self.cifar_stem:
            x = layers.conv(w[0], 3, 1, dtype=self.dtype, name="conv1")(x.astype(self.dtype))
            x = nn.relu(layers.batch_norm(train_bn, dtype=self.dtype, name="bn1")(x))
        else:
            x = layers.conv(w[0], 7, 2, dtype=self.dtype, name="conv1")(x.astype(self.dtype))
            x = nn.relu(layers.batch_norm(train_bn, dtype=self.dtype, name="bn1")(x))
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        feats, preacts, preact_bn = [x], [x], [None]
        for stage, (features, n, stride) in enumerate(zip(w, self.blocks, (1, 2, 2, 2))):
            for b in range(n):
                block = Bottleneck if self.bottleneck else BasicBlock
                x, preact, affine = block(features, stride if b == 0 else 1, dtype=self.dtype,
                                          name=f"layer{stage + 1}_{b}")(x, train=train_bn)
            feats.append(x)
            preacts.append(preact)
            preact_bn.append(affine)
        feature_map, pooled = x, layers.global_avg_pool(x)
        logits = pooled
        if self.num_classes:
            logits = nn.Dense(self.num_classes, kernel_init=layers.torch_linear_kernel, dtype=self.dtype,
                              name="fc")(pooled)
        return logits.astype(jnp.float32), {"feats": feats, "preact_feats": preacts, "preact_bn": preact_bn,
                                            "pooled": pooled, "feature_map": feature_map}


def get_model(name: str, *, num_classes: int, **kw) -> ImageNetResNet:
    if name in _CIFAR:
        return ImageNetResNet(blocks=_BLOCKS[_CIFAR[name]], num_classes=num_classes, cifar_stem=True, **kw)
    return ImageNetResNet(blocks=_BLOCKS[name], num_classes=num_classes, bottleneck=name in BOTTLENECK, **kw)


NAMES = tuple(_BLOCKS) + tuple(_CIFAR)


@tc.register("torchvision", ("resnet18", "resnet34", "resnet50", "resnet101"))
def variables_from_torch(name: str, state_dict: dict) -> dict:
    """torchvision ResNet state_dict (name -> numpy array) -> flax variables of `get_model(name, ...)`.

    Conv weights OIHW -> HWIO; Linear (out, in) -> (in, out); BN weight/bias/running_mean/running_var ->
    scale/bias/mean/var. BasicBlocks' flax submodules are auto-named in creation order (conv, BN, conv, BN, shortcut
    conv, shortcut BN); Bottlenecks' are named as torchvision's. A state dict without `fc.*` (or a headless model)
    converts the backbone only.
    """
    params, stats = {}, {}
    params["conv1"] = tc.conv(state_dict, "conv1")
    params["bn1"], stats["bn1"] = tc.batch_norm(state_dict, "bn1")
    bottleneck = name in BOTTLENECK
    for s, n in enumerate(_BLOCKS[_CIFAR.get(name, name)]):
        for b in range(n):
            src, dst = f"layer{s + 1}.{b}", f"layer{s + 1}_{b}"
            if bottleneck:
                names = {"conv1": "conv1", "conv2": "conv2", "conv3": "conv3", "downsample_conv": "downsample.0"}
                bns = {"bn1": "bn1", "bn2": "bn2", "bn3": "bn3", "downsample_bn": "downsample.1"}
            else:
                names = {"Conv_0": "conv1", "Conv_1": "conv2", "Conv_2": "downsample.0"}
                bns = {"BatchNorm_0": "bn1", "BatchNorm_1": "bn2", "BatchNorm_2": "downsample.1"}
            params[dst], stats[dst] = tc.block(state_dict, src, names, bns)
    if "fc.weight" in state_dict:
        params["fc"] = tc.dense(state_dict, "fc")
    return {"params": params, "batch_stats": stats}
