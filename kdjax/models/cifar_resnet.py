"""CIFAR ResNets (depth 6n+2) of mdistiller/RepDistiller `models/cifar/resnet.py` (reference: megvii-research/mdistiller).

BasicBlock: conv3x3-BN-ReLU-conv3x3-BN, + shortcut (1x1 conv + BN when stride or width changes), ReLU.
Taps: `feats` = [stem output, stage 1, 2, 3 outputs (after ReLU)], `preact_feats` = the same before the final
ReLU of each stage's last block (the stem entry is the post-ReLU stem, as in mdistiller), `pooled` = the 8x8
average pool of the last stage, `preact_bn` = (scale, bias) of the BN feeding each preact tap (the last block's
bn2; OFD's margins; approximate since the tap also holds the residual, as in mdistiller), None for the stem.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from kdjax.models import layers


class BasicBlock(nn.Module):
    features: int
    stride: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        y = layers.conv(self.features, 3, self.stride, dtype=self.dtype)(x)
        y = nn.relu(layers.batch_norm(train, dtype=self.dtype)(y))
        y = layers.conv(self.features, 3, dtype=self.dtype)(y)
        bn2 = layers.batch_norm(train, dtype=self.dtype)
        y = bn2(y)
        shortcut = x
        if self.stride != 1 or x.shape[-1] != self.features:
            shortcut = layers.conv(self.features, 1, self.stride, dtype=self.dtype)(x)
            shortcut = layers.batch_norm(train, dtype=self.dtype)(shortcut)
        preact = y + shortcut
        return nn.relu(preact), preact, layers.bn_affine(bn2)


class CifarResNet(nn.Module):
    blocks_per_stage: int
    widths: tuple[int, int, int, int]
    num_classes: int
    width: float = 1.0
    frozen_bn: bool = False  # BatchNorm on running statistics in training too (layers.bn_train)
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool):
        train_bn = layers.bn_train(train, self.frozen_bn)
        widths = [layers.scaled(w, self.width) for w in self.widths]
        x = layers.conv(widths[0], 3, dtype=self.dtype)(x.astype(self.dtype))
        x = nn.relu(layers.batch_norm(train_bn, dtype=self.dtype)(x))
        feats, preacts, preact_bn = [x], [x], [None]
        for stage, (features, stride) in enumerate(zip(widths[1:], (1, 2, 2))):
            for b in range(self.blocks_per_stage):
                x, preact, affine = BasicBlock(features, stride if b == 0 else 1, dtype=self.dtype,
                                       name=f"stage{stage + 1}_block{b}")(x, train=train_bn)
            feats.append(x)
            preacts.append(preact)
            preact_bn.append(affine)
        feature_map, pooled = x, layers.global_avg_pool(x)
        logits = layers.classifier(pooled, self.num_classes, kernel_init=layers.torch_linear_kernel, dtype=self.dtype)
        return logits.astype(jnp.float32), {"feats": feats, "preact_feats": preacts, "preact_bn": preact_bn,
                                         "pooled": pooled, "feature_map": feature_map}


_PLAIN = (16, 16, 32, 64)
_X4 = (32, 64, 128, 256)
_CONFIGS = {
    "resnet8": (1, _PLAIN), "resnet14": (2, _PLAIN), "resnet20": (3, _PLAIN), "resnet32": (5, _PLAIN),
    "resnet44": (7, _PLAIN), "resnet56": (9, _PLAIN), "resnet110": (18, _PLAIN),
    "resnet8x4": (1, _X4), "resnet32x4": (5, _X4),
}


def get_model(name: str, *, num_classes: int, **kw) -> CifarResNet:
    n, widths = _CONFIGS[name]
    return CifarResNet(blocks_per_stage=n, widths=widths, num_classes=num_classes, **kw)


NAMES = tuple(_CONFIGS)
