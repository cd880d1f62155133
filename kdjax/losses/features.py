"""Losses on intermediate feature maps (NHWC)."""
from typing import Sequence

import jax
import jax.numpy as jnp

from kdjax.losses.common import check_positive, check_same_shape, safe_norm, upcast


def _bins(size_in: int, size_out: int):
    # torch adaptive pooling bins: [floor(i * in / out), ceil((i + 1) * in / out))
    return [(i * size_in // size_out, -(-(i + 1) * size_in // size_out)) for i in range(size_out)]


def adaptive_avg_pool(x: jax.Array, size: int) -> jax.Array:
    """torch `adaptive_avg_pool2d(x, (size, size))` on NHWC, including sizes that do not divide."""
    b, h, w, c = x.shape
    if h % size == 0 and w % size == 0:
        return x.reshape(b, size, h // size, size, w // size, c).mean(axis=(2, 4))
    rows = jnp.stack([x[:, r0:r1].mean(axis=1) for r0, r1 in _bins(h, size)], axis=1)
    return jnp.stack([rows[:, :, c0:c1].mean(axis=2) for c0, c1 in _bins(w, size)], axis=2)


def _attention_vector(f, p, reduce):
    a = reduce(jnp.power(upcast(f), p), axis=-1).reshape(f.shape[0], -1)
    # torch F.normalize: x / max(||x||, 1e-12); safe_norm: an all-zero map (dead ReLUs) has gradient 0, as in torch,
    # where jnp.linalg.norm's gradient at 0 is NaN
    return a / jnp.maximum(safe_norm(a, axis=-1, keepdims=True), 1e-12)


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
    check_positive("attention_transfer", p=p)
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


def fitnet(student_regressed: jax.Array, teacher_feature: jax.Array) -> jax.Array:
    """FitNet hint loss: mean over all elements of (reg(f_s) - f_t)^2 (Romero et al., ICLR 2015; mdistiller FitNet, weight 100).
    The regressor (ConvReg) is a trainable module applied by the caller."""
    check_same_shape(student_regressed, teacher_feature, "fitnet")
    return jnp.mean(jnp.square(upcast(student_regressed) - upcast(teacher_feature)))


def ofd_margins(bn_scale: jax.Array, bn_bias: jax.Array) -> jax.Array:
    """Per-channel OFD margins E[x | x < 0] for x ~ N(beta, |gamma|^2) (mdistiller `get_margin_from_BN`):
    beta - |gamma| phi(beta/|gamma|) / Phi(-beta/|gamma|) where Phi(-beta/|gamma|) > 1e-3, else -3 |gamma|."""
    s, m = jnp.abs(upcast(bn_scale)), upcast(bn_bias)
    cdf = jax.scipy.stats.norm.cdf(-m / s)
    conditional = m - s * jax.scipy.stats.norm.pdf(m / s) / jnp.where(cdf > 1e-3, cdf, 1.0)
    return jnp.where(cdf > 1e-3, conditional, -3.0 * s)


def ofd(student_connected: Sequence[jax.Array], teacher_preact: Sequence[jax.Array],
        margins: Sequence[jax.Array]) -> jax.Array:
    """OFD partial L2 (Heo et al., ICCV 2019; mdistiller `feat_loss`), summed over stages with weight 1/2^(L-1-i).

    Elementwise with s = connector(f_s), t = teacher pre-ReLU feature, m = per-channel margin:
    (s - m)^2 where s > m >= t; (s - t)^2 where s > t and m < t <= 0; (s - t)^2 where t > 0. Per stage the sum over
    C, H, W, mean over the batch (the reference sums and divides by B). The 0.001 weight is the caller's.
    """
    n = len(student_connected)
    if not (n == len(teacher_preact) == len(margins)):
        raise ValueError(f"ofd: {n} student, {len(teacher_preact)} teacher features and {len(margins)} margins")
    total = jnp.float32(0.0)
    for i, (s, t, m) in enumerate(zip(student_connected, teacher_preact, margins)):
        check_same_shape(s, t, f"ofd stage {i}")
        s, t, m = upcast(s), upcast(t), upcast(m)
        loss = (jnp.square(s - m) * ((s > m) & (t <= m))
                + jnp.square(s - t) * ((s > t) & (t > m) & (t <= 0))
                + jnp.square(s - t) * (t > 0))
        total = total + jnp.sum(loss) / s.shape[0] / 2.0 ** (n - i - 1)
    return total


def review_hcl(student_feats: Sequence[jax.Array], teacher_feats: Sequence[jax.Array]) -> jax.Array:
    """ReviewKD hierarchical context loss (Chen et al., CVPR 2021; mdistiller `hcl_loss`), summed over zipped stage pairs.

    Per pair of size h: MSE(fs, ft) + sum over k in (4, 2, 1), k < h, of w_k MSE(pool_k(fs), pool_k(ft)) with
    w = 1/2, 1/4, 1/8 in turn, divided by 1 + sum of the used w; pool_k = adaptive average pool to k x k.
    """
    total = jnp.float32(0.0)
    for fs, ft in zip(student_feats, teacher_feats):
        check_same_shape(fs, ft, "review_hcl")
        fs, ft = upcast(fs), upcast(ft)
        loss, weight, norm = jnp.mean(jnp.square(fs - ft)), 1.0, 1.0
        for k in (4, 2, 1):
            if k >= fs.shape[1]:
                continue
            weight /= 2.0
            loss = loss + weight * jnp.mean(jnp.square(adaptive_avg_pool(fs, k) - adaptive_avg_pool(ft, k)))
            norm += weight
        total = total + loss / norm
    return total


def vid(mean: jax.Array, teacher_feature: jax.Array, log_scale: jax.Array, *, eps: float = 1e-5) -> jax.Array:
    """Variational information distillation (Ahn et al., CVPR 2019; RepDistiller `VIDLoss`): mean over (B, H, W, C) of
    0.5 * ((mu - t)^2 / sigma^2 + log sigma^2), sigma^2 = softplus(log_scale) + eps per channel.
    `mean` is the regressor output mu(f_s) (a trainable module applied by the caller)."""
    check_positive("vid", eps=eps)
    check_same_shape(mean, teacher_feature, "vid")
    var = jax.nn.softplus(upcast(log_scale)) + eps
    return jnp.mean(0.5 * (jnp.square(upcast(mean) - upcast(teacher_feature)) / var + jnp.log(var)))
