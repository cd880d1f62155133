"""ResNet-50 for CIFAR of mdistiller/RepDistiller `models/cifar/resnetv2.py` (reference: megvii-research/mdistiller).

Bottleneck [3, 4, 6, 3] (1x1-BN-ReLU, 3x3(stride)-BN-ReLU, 1x1 to 4x-BN, + shortcut (1x1 conv + BN when stride or
width changes), ReLU); stem conv3x3 stride 1, 64 channels + BN + ReLU, no max-pool; stage strides 1, 2, 2, 2.
Taps: `feats` = [stem, stage 1-4 outputs] (64@32, 256@32, 512@16, 1024@8, 2048@4), `preact_feats` = the same
before each stage's last ReLU (stem entry post-ReLU, as in mdistiller), `preact_bn` = bn3 of each stage's last
block, `pooled` = 2048.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from kdjax.models import layers


class Bottleneck(nn.Module):
    planes: int
    stride: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        out_features = 4 * self.planes
        y = nn.relu(layers.batch_norm(train, dtype=self.dtype)(layers.conv(self.planes, 1, dtype=self.dtype)(x)))
        y = layers.conv(self.planes, 3, self.stride, dtype=self.dtype)(y)
        y = nn.relu(layers.batch_norm(train, dtype=self.dtype)(y))
        bn3 = layers.batch_norm(train, dtype=self.dtype)
        y = bn3(layers.conv(out_features, 1, dtype=self.dtype)(y))
        shortcut = x
        if self.stride != 1 or x.shape[-1] != out_features:
            shortcut = layers.batch_norm(train, dtype=self.dtype)(
                layers.conv(out_features, 1, self.stride, dtype=self.dtype)(x))
        preact = y + shortcut
        return nn.relu(preact), preact, layers.bn_affine(bn3)


class CifarResNet50(nn.Module):
    num_classes: int
    blocks: tuple = (3, 4, 6, 3)
    width: float = 1.0
    frozen_bn: bool = False  # BatchNorm on running statistics in training too (layers.bn_train)
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool):
        train_bn = layers.bn_train(train, self.frozen_bn)
        x = layers.conv(layers.scaled(64, self.width), 3, dtype=self.dtype)(x.astype(self.dtype))
        x = nn.relu(layers.batch_norm(train_bn, dtype=self.dtype)(x))
        feats, preacts, preact_bn = [x], [x], [None]
        for stage, (n, planes, stride) in enumerate(zip(self.blocks, (64, 128, 256, 512), (1, 2, 2, 2))):
            for b in range(n):
                x, preact, affine = Bottleneck(layers.scaled(planes, self.width), stride if b == 0 else 1,
                                               dtype=self.dtype, name=f"stage{stage + 1}_block{b}")(x, train=train_bn)
            feats.append(x)
            preacts.append(preact)
            preact_bn.append(affine)
        feature_map, pooled = x, layers.global_avg_pool(x)
        logits = layers.classifier(pooled, self.num_classes, kernel_init=layers.torch_linear_kernel, dtype=self.dtype)
        return logits.astype(jnp.float32), {"feats": feats, "preact_feats": preacts, "preact_bn": preact_bn,
                                            "pooled": pooled, "feature_map": feature_map}


def get_model(name: str, *, num_classes: int, **kw) -> CifarResNet50:
    return CifarResNet50(num_classes=num_classes, **kw)


NAMES = ("resnet50_cifar",)
