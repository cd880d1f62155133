"""Wide ResNets WRN-d-k of mdistiller/RepDistiller `models/cifar/wrn.py` (Zagoruyko & Komodakis, BMVC 2016).

Pre-activation BasicBlock: BN-ReLU-conv3x3(stride)-BN-ReLU-conv3x3, plus the identity (in == out) or a 1x1 conv on
the pre-activated input. Stem conv3x3 3->16 (no BN); after stage 3 BN-ReLU, global pool, FC. No dropout.
Taps: `feats` = [stem, stage 1, 2, 3 outputs] (raw block outputs), `preact_feats` = [stem, BN1 of stage 2's first
block applied to f1, the same for stage 3 on f2, the final BN on f3], `preact_bn` = those BNs' (scale, bias),
`pooled` = the vector after the final BN-ReLU-pool.

The reference computes the preact taps by calling those BNs a second time (in train mode a second running-stat
update); here they reuse the one application of the forward pass: identical taps, one running-stat update per step.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from kdjax.models import layers


class PreActBlock(nn.Module):
    features: int
    stride: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        bn1 = layers.batch_norm(train, dtype=self.dtype)
        pre = bn1(x)
        activated = nn.relu(pre)
        y = layers.conv(self.features, 3, self.stride, dtype=self.dtype)(activated)
        y = nn.relu(layers.batch_norm(train, dtype=self.dtype)(y))
        y = layers.conv(self.features, 3, dtype=self.dtype)(y)
        if x.shape[-1] == self.features:
            shortcut = x
        else:
            shortcut = layers.conv(self.features, 1, self.stride, dtype=self.dtype)(activated)
        return y + shortcut, pre, layers.bn_affine(bn1)


class WideResNet(nn.Module):
    depth: int
    widen: int
    num_classes: int
    width: float = 1.0
    frozen_bn: bool = False  # BatchNorm on running statistics in training too (layers.bn_train)
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool):
        train_bn = layers.bn_train(train, self.frozen_bn)
        if (self.depth - 4) % 6:
            raise ValueError(f"WRN depth {self.depth} is not 6n+4")
        n = (self.depth - 4) // 6
        widths = [layers.scaled(w, self.width) for w in (16, 16 * self.widen, 32 * self.widen, 64 * self.widen)]
        x = layers.conv(widths[0], 3, dtype=self.dtype)(x.astype(self.dtype))
        feats, preacts, preact_bn = [x], [x], [None]
        for stage, (features, stride) in enumerate(zip(widths[1:], (1, 2, 2))):
            for b in range(n):
                x, pre, affine = PreActBlock(features, stride if b == 0 else 1, dtype=self.dtype,
                                             name=f"stage{stage + 1}_block{b}")(x, train=train_bn)
                if b == 0 and stage > 0:  # BN1 of this stage's first block reads the previous stage's output
                    preacts.append(pre)
                    preact_bn.append(affine)
            feats.append(x)
        final_bn = layers.batch_norm(train_bn, dtype=self.dtype)
        pre = final_bn(x)
        preacts.append(pre)
        preact_bn.append(layers.bn_affine(final_bn))
        feature_map = nn.relu(pre)
        pooled = layers.global_avg_pool(feature_map)
        logits = layers.classifier(pooled, self.num_classes, kernel_init=layers.torch_linear_kernel, bias_init=nn.initializers.zeros,
                          dtype=self.dtype)
        return logits.astype(jnp.float32), {"feats": feats, "preact_feats": preacts, "preact_bn": preact_bn,
                                            "pooled": pooled, "feature_map": feature_map}


_CONFIGS = {"wrn_16_1": (16, 1), "wrn_16_2": (16, 2), "wrn_40_1": (40, 1), "wrn_40_2": (40, 2)}


def get_model(name: str, *, num_classes: int, **kw) -> WideResNet:
    depth, widen = _CONFIGS[name]
    return WideResNet(depth=depth, widen=widen, num_classes=num_classes, **kw)


NAMES = tuple(_CONFIGS)
