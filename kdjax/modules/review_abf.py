"""ReviewKD's attention-based fusion stack (Chen et al., CVPR 2021; reference:
megvii-research/mdistiller mdistiller/distillers/ReviewKD.py, dvlab-research/ReviewKD CIFAR-100/model/reviewkd.py).

Input: the student's features deep to shallow ([pooled as 1x1, f3, f2, f1] for CIFAR ResNets). ABF: conv1x1 (no
bias) + BN -> mid; if fusing, the residual y of the deeper ABF is nearest-resized to x's size, att = sigmoid(conv1x1
(concat[x, y]) -> 2, with bias), x <- x att_0 + y att_1; x is nearest-resized to the output size if it differs;
output conv3x3 (no bias) + BN -> out channels; the new residual is x. The deepest ABF does not fuse.
Output: the fused features shallow to deep, to be matched with the teacher's by `losses.review_hcl`.
Channels and sizes are read off the student and teacher features, so every pair lines up without a table.
"""
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from kdjax.models import layers

# torch kaiming_uniform_(a=1): bound sqrt(3 / fan_in).
_kaiming_uniform_a1 = nn.initializers.variance_scaling(1.0, "fan_in", "uniform")


def nearest_resize(x, size: int):
    """PyTorch's F.interpolate(mode='nearest') on NHWC: source index floor(dst * in / out) (not half-pixel)."""
    h, w = x.shape[1:3]
    rows = (jnp.arange(size) * h) // size
    cols = (jnp.arange(size) * w) // size
    return x[:, rows][:, :, cols]


class ABF(nn.Module):
    mid: int
    out: int
    out_size: int
    fuse: bool

    @nn.compact
    def __call__(self, x, residual=None, *, train: bool):
        x = layers.batch_norm(train)(nn.Conv(self.mid, (1, 1), use_bias=False, kernel_init=_kaiming_uniform_a1)(x))
        if self.fuse:
            y = nearest_resize(residual, x.shape[1])
            att = nn.sigmoid(nn.Conv(2, (1, 1), kernel_init=layers.torch_default_conv)(
                jnp.concatenate([x, y], axis=-1)))
            x = x * att[..., 0:1] + y * att[..., 1:2]
        if x.shape[1] != self.out_size:
            x = nearest_resize(x, self.out_size)
        y = nn.Conv(self.out, (3, 3), padding=((1, 1), (1, 1)), use_bias=False, kernel_init=_kaiming_uniform_a1)(x)
        return layers.batch_norm(train)(y), x


class ReviewABFs(nn.Module):
    out_channels: Sequence[int]  # teacher channels, shallow to deep
    out_sizes: Sequence[int]     # teacher spatial sizes, shallow to deep
    max_mid: int = 512

    @nn.compact
    def __call__(self, student_feats: Sequence, *, train: bool = True):
        """student_feats: shallow to deep (the pooled vector as a 1x1 map last); returns fused maps, shallow to deep."""
        if not (len(student_feats) == len(self.out_channels) == len(self.out_sizes)):
            raise ValueError(f"ReviewKD: {len(student_feats)} student features but {len(self.out_channels)} teacher "
                             f"features; the pair's tap lists must have equal length")
        mid = min(self.max_mid, student_feats[-1].shape[-1])
        deep_first = list(zip(student_feats, self.out_channels, self.out_sizes))[::-1]
        results, residual = [], None
        for i, (x, out, size) in enumerate(deep_first):
            y, residual = ABF(mid, out, size, fuse=i > 0, name=f"abf{len(deep_first) - 1 - i}")(
                x, residual, train=train)
            results.insert(0, y)
        return results
