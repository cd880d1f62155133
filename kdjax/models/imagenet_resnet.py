"""ResNets with BasicBlocks: ImageNet layout (torchvision `resnet18`, `resnet34`; transfer teachers, Srinivas &
Fleuret 2018 Sec 6.3) and the CIFAR layout of the same stages (`resnet18_cifar`, `resnet34_cifar`: the CIFAR
ResNet-50 stem, conv3x3 stride 1 + BN + ReLU and no max-pool, as ICD's ResNet-34 student; spatial 32, 32, 16, 8, 4).

Stem conv7x7/2 (no bias) + BN + ReLU + maxpool 3x3/2 (pad 1); four stages of BasicBlocks (64, 128, 256, 512
channels, strides 1, 2, 2, 2; 1x1 conv + BN shortcut on the first block of stages 2-4); global average pool; FC.
Taps: `feats` = [stem output (after the maxpool), layer1, layer2, layer3, layer4] (at 224 px: 56, 56, 28, 14, 7),
`preact_feats` likewise before each stage's last ReLU, `pooled`.
ImageNet weights: convert a torchvision state_dict with `experiments/convert_torchvision_resnet.py` (kdjax does not
download weights).
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from kdjax.models import layers
from kdjax.models.cifar_resnet import BasicBlock

_BLOCKS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}
_CIFAR = {"resnet18_cifar": "resnet18", "resnet34_cifar": "resnet34"}
_WIDTHS = (64, 128, 256, 512)


class ImageNetResNet(nn.Module):
    blocks: tuple[int, int, int, int]
    num_classes: int = 1000
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
                x, preact, affine = BasicBlock(features, stride if b == 0 else 1, dtype=self.dtype,
                                       name=f"layer{stage + 1}_{b}")(x, train=train_bn)
            feats.append(x)
            preacts.append(preact)
            preact_bn.append(affine)
        pooled = layers.global_avg_pool(x)
        logits = nn.Dense(self.num_classes, kernel_init=layers.torch_linear_kernel, dtype=self.dtype, name="fc")(pooled)
        return logits.astype(jnp.float32), {"feats": feats, "preact_feats": preacts, "preact_bn": preact_bn,
                                            "pooled": pooled}


def get_model(name: str, *, num_classes: int, **kw) -> ImageNetResNet:
    if name in _CIFAR:
        return ImageNetResNet(blocks=_BLOCKS[_CIFAR[name]], num_classes=num_classes, cifar_stem=True, **kw)
    return ImageNetResNet(blocks=_BLOCKS[name], num_classes=num_classes, **kw)


NAMES = tuple(_BLOCKS) + tuple(_CIFAR)


def variables_from_torch(state_dict: dict, blocks=_BLOCKS["resnet34"]) -> dict:
    """torchvision ResNet state_dict (name -> numpy array) -> flax variables of `ImageNetResNet`.

    Conv weights OIHW -> HWIO; Linear (out, in) -> (in, out); BN weight/bias/running_mean/running_var ->
    scale/bias/mean/var. The block's flax submodule order is conv, BN, conv, BN, shortcut conv, shortcut BN.
    """
    params, stats = {}, {}

    def conv(name):
        return {"kernel": np.transpose(state_dict[f"{name}.weight"], (2, 3, 1, 0))}

    def bn(name):
        return ({"scale": state_dict[f"{name}.weight"], "bias": state_dict[f"{name}.bias"]},
                {"mean": state_dict[f"{name}.running_mean"], "var": state_dict[f"{name}.running_var"]})

    params["conv1"] = conv("conv1")
    params["bn1"], stats["bn1"] = bn("bn1")
    for s, n in enumerate(blocks):
        for b in range(n):
            src, dst = f"layer{s + 1}.{b}", f"layer{s + 1}_{b}"
            p, st = {"Conv_0": conv(f"{src}.conv1"), "Conv_1": conv(f"{src}.conv2")}, {}
            p["BatchNorm_0"], st["BatchNorm_0"] = bn(f"{src}.bn1")
            p["BatchNorm_1"], st["BatchNorm_1"] = bn(f"{src}.bn2")
            if f"{src}.downsample.0.weight" in state_dict:
                p["Conv_2"] = conv(f"{src}.downsample.0")
                p["BatchNorm_2"], st["BatchNorm_2"] = bn(f"{src}.downsample.1")
            params[dst], stats[dst] = p, st
    params["fc"] = {"kernel": state_dict["fc.weight"].T, "bias": state_dict["fc.bias"]}
    return {"params": params, "batch_stats": stats}
