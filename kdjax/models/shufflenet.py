"""ShuffleNet V1 (groups 3) and V2 (net size 1) of mdistiller/RepDistiller `models/cifar/ShuffleNetv{1,2}.py`
(reference: megvii-research/mdistiller mdistiller/models/cifar/). Both use PyTorch's default conv/linear init, as the references do.

Taps: `feats` = [stem 24@32, stage 1-3 outputs], `preact_feats` = [stem, each stage's last block before its final
ReLU (V2: the concatenation [x1, branch pre-ReLU], not shuffled, as in the reference)], `pooled`. ShuffleNets give
no `preact_bn`: like mdistiller, they cannot be OFD teachers.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from kdjax.models import layers


def _conv(features, kernel, stride=1, groups=1, dtype=jnp.float32):
    return layers.conv(features, kernel, stride, groups=groups, kernel_init=layers.torch_default_conv, dtype=dtype)


def avg_pool_3x3_s2_with_zero_pad(x):
    """torch AvgPool2d(3, stride=2, padding=1): zero padding counted in the divisor (count_include_pad=True)."""
    return nn.avg_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)), count_include_pad=True)


class ShuffleV1Block(nn.Module):
    features: int  # of the conv branch (out_planes - in_planes for the concatenating first block)
    stride: int
    groups: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        mid = self.features // 4
        g = 1 if x.shape[-1] == 24 else self.groups
        bn = lambda y: layers.batch_norm(train, dtype=self.dtype)(y)
        y = nn.relu(bn(_conv(mid, 1, groups=g, dtype=self.dtype)(x)))
        y = layers.channel_shuffle(y, g)
        y = nn.relu(bn(_conv(mid, 3, self.stride, groups=mid, dtype=self.dtype)(y)))
        y = bn(_conv(self.features, 1, groups=self.groups, dtype=self.dtype)(y))
        preact = (jnp.concatenate([y, avg_pool_3x3_s2_with_zero_pad(x)], -1) if self.stride == 2 else y + x)
        return nn.relu(preact), preact


class ShuffleNetV1(nn.Module):
    num_classes: int
    out_planes: tuple = (240, 480, 960)
    num_blocks: tuple = (4, 8, 4)
    groups: int = 3
    width: float = 1.0
    frozen_bn: bool = False  # BatchNorm on running statistics in training too (layers.bn_train)
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool):
        train_bn = layers.bn_train(train, self.frozen_bn)
        x = _conv(24, 1, dtype=self.dtype)(x.astype(self.dtype))
        x = nn.relu(layers.batch_norm(train_bn, dtype=self.dtype)(x))
        feats, preacts = [x], [x]
        for stage, (planes, n) in enumerate(zip(self.out_planes, self.num_blocks)):
            # groups must divide every width: scale in units of 4 * groups
            planes = max(3, round(planes * self.width / (4 * self.groups))) * 4 * self.groups
            for i in range(n):
                features = planes - x.shape[-1] if i == 0 else planes
                x, preact = ShuffleV1Block(features, 2 if i == 0 else 1, self.groups, dtype=self.dtype,
                                           name=f"stage{stage + 1}_block{i}")(x, train=train_bn)
            feats.append(x)
            preacts.append(preact)
        feature_map, pooled = x, layers.global_avg_pool(x)
        logits = layers.classifier(pooled, self.num_classes, kernel_init=layers.torch_linear_kernel, dtype=self.dtype)
        return logits.astype(jnp.float32), {"feats": feats, "preact_feats": preacts, "pooled": pooled, "feature_map": feature_map}


class ShuffleV2Block(nn.Module):
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        c = x.shape[-1] // 2
        x1, x2 = x[..., :c], x[..., c:]
        bn = lambda y: layers.batch_norm(train, dtype=self.dtype)(y)
        y = nn.relu(bn(_conv(c, 1, dtype=self.dtype)(x2)))
        y = bn(_conv(c, 3, groups=c, dtype=self.dtype)(y))
        pre = bn(_conv(c, 1, dtype=self.dtype)(y))
        out = jnp.concatenate([x1, nn.relu(pre)], -1)
        return layers.channel_shuffle(out, 2), jnp.concatenate([x1, pre], -1)


class ShuffleV2Down(nn.Module):
    features: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        mid, c_in = self.features // 2, x.shape[-1]
        bn = lambda y: layers.batch_norm(train, dtype=self.dtype)(y)
        left = bn(_conv(c_in, 3, 2, groups=c_in, dtype=self.dtype)(x))
        left = nn.relu(bn(_conv(mid, 1, dtype=self.dtype)(left)))
        right = nn.relu(bn(_conv(mid, 1, dtype=self.dtype)(x)))
        right = bn(_conv(mid, 3, 2, groups=mid, dtype=self.dtype)(right))
        right = nn.relu(bn(_conv(mid, 1, dtype=self.dtype)(right)))
        return layers.channel_shuffle(jnp.concatenate([left, right], -1), 2)


class ShuffleNetV2(nn.Module):
    num_classes: int
    out_channels: tuple = (116, 232, 464, 1024)
    num_blocks: tuple = (3, 7, 3)
    width: float = 1.0
    frozen_bn: bool = False  # BatchNorm on running statistics in training too (layers.bn_train)
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool):
        train_bn = layers.bn_train(train, self.frozen_bn)
        even = lambda c: max(1, round(c * self.width / 2)) * 2  # the split needs an even channel count
        x = _conv(24, 1, dtype=self.dtype)(x.astype(self.dtype))
        x = nn.relu(layers.batch_norm(train_bn, dtype=self.dtype)(x))
        feats, preacts = [x], [x]
        for stage, (channels, n) in enumerate(zip(self.out_channels[:3], self.num_blocks)):
            x = ShuffleV2Down(even(channels), dtype=self.dtype, name=f"stage{stage + 1}_down")(x, train=train_bn)
            for i in range(n):
                x, preact = ShuffleV2Block(dtype=self.dtype, name=f"stage{stage + 1}_block{i}")(x, train=train_bn)
            feats.append(x)
            preacts.append(preact)
        x = _conv(even(self.out_channels[3]), 1, dtype=self.dtype)(x)
        x = nn.relu(layers.batch_norm(train_bn, dtype=self.dtype)(x))
        feature_map, pooled = x, layers.global_avg_pool(x)
        logits = layers.classifier(pooled, self.num_classes, kernel_init=layers.torch_linear_kernel, dtype=self.dtype)
        return logits.astype(jnp.float32), {"feats": feats, "preact_feats": preacts, "pooled": pooled, "feature_map": feature_map}


def get_model(name: str, *, num_classes: int, **kw) -> nn.Module:
    return (ShuffleNetV1 if name == "shufflev1" else ShuffleNetV2)(num_classes=num_classes, **kw)


NAMES = ("shufflev1", "shufflev2")
