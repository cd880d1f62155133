"""BN-VGG models built from a list of blocks.

Two families share this module:
- the CIFAR benchmark VGGs of mdistiller/RepDistiller (`vgg8`, `vgg11`, `vgg13`, `vgg16`, `vgg19`): convs with
  bias, pools after blocks 0-2, the pool after block 3 only for 64x64 inputs, Linear init N(0, 0.01);
- the Jacobian-matching paper's nets (`vgg4`, `vgg9`; Srinivas & Fleuret 2018, Sec 10.1): conv3x3-BN-ReLU without bias
  (BN follows), a max-pool after every block, global average pool, one dense layer.

Taps: `feats[i]` = output of block i after its last ReLU (before the pool that follows it), `preact_feats[i]` =
the same tensor before that ReLU for i >= 1 and `feats[0]` itself for block 0 (mdistiller `vgg.py` takes f0 after
the ReLU, as the ResNets' stem entry), `preact_bn[i]` = (scale, bias) of the BN before that ReLU (OFD margins; None
for block 0), `pooled` = the global-average-pooled vector fed to the classifier, `pooled_feats[i]` = the output of
the pool after block i (what Jacobian paper Sec 10.2 calls "after maxpool i+1").
"""
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from kdjax.models import layers

MAX = "max"          # 2x2 max-pool, stride 2, after the block
NONE = "none"
MAX_IF_64 = "max64"  # mdistiller: pool3 runs only when the input is 64x64 (Tiny ImageNet), not for 32x32 CIFAR


class VGG(nn.Module):
    blocks: Sequence[Sequence[int]]
    pools: Sequence[str]
    num_classes: int
    use_bias: bool = False
    classifier_std: float | None = None  # None: torch nn.Linear default init
    width: float = 1.0
    aux_classes: int = 0  # > 0: a second head on the pooled features, tap 'aux_logits' (LwF two-head students)
    dropout: float = 0.0  # on the pooled features before the classifier (Srinivas & Fleuret 2018, Table 2 baseline; placement unverified)
    frozen_bn: bool = False  # BatchNorm on running statistics in training too (layers.bn_train)
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool):
        train_bn = layers.bn_train(train, self.frozen_bn)
        if len(self.blocks) != len(self.pools):
            raise ValueError(f"VGG: {len(self.blocks)} blocks but {len(self.pools)} pool entries")
        input_height = x.shape[1]
        x = x.astype(self.dtype)
        feats, preacts, pooled_feats, preact_bn = [], [], [], []
        for widths, pool in zip(self.blocks, self.pools):
            for j, w in enumerate(widths):
                x = layers.conv(layers.scaled(w, self.width), 3, use_bias=self.use_bias, dtype=self.dtype)(x)
                bn = layers.batch_norm(train_bn, dtype=self.dtype)
                x = bn(x)
                if j < len(widths) - 1:
                    x = nn.relu(x)
            preact, affine = x, layers.bn_affine(bn)
            x = nn.relu(x)
            feats.append(x)
            preacts.append(preact if len(feats) > 1 else x)
            preact_bn.append(affine if len(feats) > 1 else None)
            if pool == MAX or (pool == MAX_IF_64 and input_height == 64):
                if x.shape[1] < 2 or x.shape[2] < 2:
                    raise ValueError(f"VGG: a {input_height}x{input_height} input is too small for "
                                     f"{sum(p != NONE for p in self.pools)} 2x2 max-pools; use a larger image_size")
                x = layers.max_pool_2x2(x)
            elif pool not in (NONE, MAX_IF_64):
                raise ValueError(f"VGG: unknown pool {pool!r}; valid: {MAX!r}, {NONE!r}, {MAX_IF_64!r}")
            pooled_feats.append(x)
        feature_map, pooled = x, layers.global_avg_pool(x)
        kernel_init = (layers.torch_linear_kernel if self.classifier_std is None
                       else nn.initializers.normal(self.classifier_std))
        dropped = nn.Dropout(self.dropout, deterministic=not train)(pooled) if self.dropout else pooled
        logits = layers.classifier(dropped, self.num_classes, kernel_init=kernel_init, dtype=self.dtype)
        taps = {"feats": feats, "preact_feats": preacts, "preact_bn": preact_bn, "pooled_feats": pooled_feats,
                "pooled": pooled, "feature_map": feature_map}
        if self.aux_classes:
            taps["aux_logits"] = nn.Dense(self.aux_classes, kernel_init=kernel_init, dtype=self.dtype,
                                          name="aux_head")(pooled).astype(jnp.float32)
        return logits.astype(jnp.float32), taps


# mdistiller cfg letters: A = vgg11, B = vgg13, D = vgg16, E = vgg19, S = vgg8.
BENCHMARK_BLOCKS = {
    "vgg8": ((64,), (128,), (256,), (512,), (512,)),
    "vgg11": ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    "vgg13": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    "vgg16": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    "vgg19": ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4),
}
_JACOBIAN_PAPER_BLOCKS = {
    "vgg4": ((64,), (128,), (512,)),
    "vgg9": ((64,), (128,), (256, 256), (512, 512), (512, 512)),
}


def get_model(name: str, *, num_classes: int, **kw) -> VGG:
    if name in BENCHMARK_BLOCKS:
        blocks = BENCHMARK_BLOCKS[name]
        return VGG(blocks=blocks, pools=(MAX, MAX, MAX, MAX_IF_64, NONE), num_classes=num_classes,
                   use_bias=True, classifier_std=0.01, **kw)
    blocks = _JACOBIAN_PAPER_BLOCKS[name]
    return VGG(blocks=blocks, pools=(MAX,) * len(blocks), num_classes=num_classes, use_bias=False, **kw)


NAMES = tuple(BENCHMARK_BLOCKS) + tuple(_JACOBIAN_PAPER_BLOCKS)
