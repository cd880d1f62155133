"""MobileNetV2 of mdistiller/RepDistiller `models/cifar/mobilenetv2.py`: `mobilenetv2` = their `mobile_half`
(expansion 6, width 0.5; reference: megvii-research/mdistiller mdistiller/models/cifar/mobilenetv2.py).

Stem conv3x3 stride 2 (3 -> 16) + BN + ReLU (plain ReLU, not ReLU6). Inverted residual: 1x1 expand-BN-ReLU,
3x3 depthwise(stride)-BN-ReLU, 1x1 linear-BN (the t = 1 block keeps its expand conv), + x when stride 1 and
in == out. Last conv 1x1 -> 1280 + BN + ReLU, global pool, Linear (init N(0, 0.01)).
Taps: `feats` = [stem 16@16, after group 1 (12@16), group 2 (16@8), group 4 (48@4), group 6 (160@2)], `pooled` 1280.
The block-group outputs are linear (no ReLU follows a pw-linear BN), so `preact_feats` = `feats` (mdistiller has
no preact taps for this model); `preact_bn` is not provided: MobileNetV2 cannot be an OFD teacher.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from kdjax.models import layers

# (expansion t, output channels c at width 1, repeats n, first stride s); t = None means "the model's T".
_SETTING = ((1, 16, 1, 1), (None, 24, 2, 1), (None, 32, 3, 2), (None, 64, 4, 2), (None, 96, 3, 1),
            (None, 160, 3, 2), (None, 320, 1, 1))
_TAPPED_GROUPS = (1, 2, 4, 6)  # feats f1..f4 are the outputs of these block groups


class InvertedResidual(nn.Module):
    features: int
    stride: int
    expansion: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        hidden = x.shape[-1] * self.expansion
        bn = lambda y: layers.batch_norm(train, dtype=self.dtype)(y)
        y = nn.relu(bn(layers.conv(hidden, 1, dtype=self.dtype)(x)))
        y = nn.relu(bn(layers.conv(hidden, 3, self.stride, groups=hidden, dtype=self.dtype)(y)))
        y = bn(layers.conv(self.features, 1, dtype=self.dtype)(y))
        return x + y if self.stride == 1 and x.shape[-1] == self.features else y


class MobileNetV2(nn.Module):
    num_classes: int
    expansion: int = 6
    width_mult: float = 0.5
    width: float = 1.0  # kdjax's generic width knob (tests), on top of width_mult
    frozen_bn: bool = False  # BatchNorm on running statistics in training too (layers.bn_train)
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool):
        train_bn = layers.bn_train(train, self.frozen_bn)
        scale = lambda c: layers.scaled(int(c * self.width_mult), self.width)
        bn = lambda y: layers.batch_norm(train_bn, dtype=self.dtype)(y)
        x = nn.relu(bn(layers.conv(scale(32), 3, 2, dtype=self.dtype)(x.astype(self.dtype))))
        feats = [x]
        for g, (t, c, n, s) in enumerate(_SETTING):
            for i in range(n):
                x = InvertedResidual(scale(c), s if i == 0 else 1, t or self.expansion, dtype=self.dtype,
                                     name=f"group{g}_block{i}")(x, train=train_bn)
            if g in _TAPPED_GROUPS:
                feats.append(x)
        last = 1280 if self.width_mult <= 1.0 else int(1280 * self.width_mult)
        x = nn.relu(bn(layers.conv(layers.scaled(last, self.width), 1, dtype=self.dtype)(x)))
        feature_map, pooled = x, layers.global_avg_pool(x)
        logits = layers.classifier(pooled, self.num_classes, kernel_init=nn.initializers.normal(0.01), dtype=self.dtype)
        return logits.astype(jnp.float32), {"feats": feats, "preact_feats": feats, "pooled": pooled, "feature_map": feature_map}


def get_model(name: str, *, num_classes: int, **kw) -> MobileNetV2:
    return MobileNetV2(num_classes=num_classes, **kw)


NAMES = ("mobilenetv2",)
