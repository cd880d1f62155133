"""Losses on intermediate feature maps (NHWC)."""
from typing import Sequence

import jax
import jax.numpy as jnp

from kdjax.losses.common import upcast


def adaptive_avg_pool(x: jax.Array, size: int) -> jax.Array:
    """torch adaptive_avg_pool2d to (size, size) for H, W divisible by size (always the case in the CIFAR pairs)."""
    b, h, w, c = x.shape
    if h % size or w % size:
        raise ValueError(f"adaptive_avg_pool: {h}x{w} is not divisible by {size}")
    return x.reshape(b, size, h // size, size, w // size, c).mean(axis=(2, 4))


def _attention_vector(f, p, reduce):
    a = reduce(jnp.power(upcast(f), p), axis=-1).reshape(f.shape[0], -1)
    # torch F.normalize: x / max(||x||, 1e-12)
    return a / jnp.maximum(jnp.linalg.norm(a, axis=-1, keepdims=True), 1e-12)


def attention_transfer(student_feats: Sequence[jax.Array], teacher_feats: Sequence[jax.Array], *, p: float = 2,
                       mode: str = "code") -> jax.Array:
    """Attention transfer (Zagoruyko & Komodakis), summed over zipped layer pairs.

    Per pair, when spatial sizes differ the larger map is adaptive-average-pooled to the smaller (mdistiller rule).
    - `mode='code'` (kdjax default; mdistiller `at_loss`, RepDistiller `Attention`, torchdistill ATLoss 'code'):
      a(F) = L2-normalise(flatten(mean over channels of F^p)); loss = mean over (B x HW) of (a_s - a_t)^2.
    - `mode='paper'` (Jacobian-matching paper Eq. 9, torchdistill 'paper'): A = sum over channels of F^p (Eq. 8 for
      p = 2); per example || A_s/||A_s|| - A_t/||A_t|| ||_2, not squared; mean over the batch.
    Lists of different length are truncated pairwise (zip), as in the references.
    """
    if mode not in ("code", "paper"):
        raise ValueError(f"attention_transfer: mode={mode!r}; valid: 'code', 'paper'")
    total = jnp.float32(0.0)
    for f_s, f_t in zip(student_feats, teacher_feats):
        if f_s.shape[0] != f_t.shape[0]:
            raise ValueError(f"attention_transfer: batch sizes differ: {f_s.shape} vs {f_t.shape}")
        s_h, t_h = f_s.shape[1], f_t.shape[1]
        if s_h > t_h:
            f_s = adaptive_avg_pool(f_s, t_h)
        elif t_h > s_h:
            f_t = adaptive_avg_pool(f_t, s_h)
        if mode == "code":
            diff = _attention_vector(f_s, p, jnp.mean) - _attention_vector(f_t, p, jnp.mean)
            total = total + jnp.mean(jnp.square(diff))
        else:
            diff = _attention_vector(f_s, p, jnp.sum) - _attention_vector(f_t, p, jnp.sum)
            # sqrt(sum + tiny): the gradient of ||d|| at d = 0 (identical maps) is 0 instead of NaN
            total = total + jnp.mean(jnp.sqrt(jnp.sum(jnp.square(diff), axis=-1) + 1e-24))
    return total
