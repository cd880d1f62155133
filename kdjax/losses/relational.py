"""Relational losses on embeddings [B, D]: RKD and PKT."""
import jax
import jax.numpy as jnp

from kdjax.losses.common import check_non_negative, check_positive, check_same_batch, safe_norm, upcast


def _smooth_l1(x):
    a = jnp.abs(x)
    return jnp.where(a < 1.0, 0.5 * x * x, a - 0.5)


def _pdist(e, eps):
    sq = jnp.sum(e * e, axis=1)
    d = jnp.sqrt(jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * e @ e.T, eps))
    return d * (1.0 - jnp.eye(e.shape[0], dtype=e.dtype))


def rkd(student_emb: jax.Array, teacher_emb: jax.Array, *, distance_weight: float = 25.0,
        angle_weight: float = 50.0, eps: float = 1e-12, distance_reduction: str = "mean") -> jax.Array:
    """Relational KD, distance + angle (Park et al., CVPR 2019; mdistiller `rkd_loss`, squared=False).

    Distances via |a|^2 + |b|^2 - 2ab clamped at eps then sqrt (duplicate rows give sqrt(eps) > 0, as in the
    reference), diagonal 0, divided by the mean of the strictly positive entries; Huber (delta 1) mean over B^2
    (`distance_reduction='rows'`: summed over the B^2 entries and divided by B, as L2D's multi-label RKD,
    penghui-yang/L2D criterion/distiller_zoo/ft_based/rkd.py, which uses weights 10 and 10).
    Angles: cosines of L2-normalised differences e_j - e_i (eps 1e-12), Huber mean over B^3.
    reference: megvii-research/mdistiller mdistiller/distillers/RKD.py.
    """
    check_non_negative("rkd", distance_weight=distance_weight, angle_weight=angle_weight)
    check_positive("rkd", eps=eps)
    s = upcast(student_emb).reshape(student_emb.shape[0], -1)
    t = upcast(teacher_emb).reshape(teacher_emb.shape[0], -1)
    check_same_batch(s, t, "rkd")

    def normalised_distances(e):
        d = _pdist(e, eps)
        positive = d > 0
        return d / (jnp.sum(jnp.where(positive, d, 0.0)) / jnp.sum(positive))

    if distance_reduction not in ("mean", "rows"):
        raise ValueError(f"rkd: distance_reduction={distance_reduction!r}; valid: 'mean', 'rows'")
    loss_d = jnp.mean(_smooth_l1(normalised_distances(s) - normalised_distances(t)))
    if distance_reduction == "rows":
        loss_d = loss_d * s.shape[0]

    def angles(e):
        diff = e[None, :, :] - e[:, None, :]                     # [i, j] = e_j - e_i
        unit = diff / jnp.maximum(safe_norm(diff, axis=-1, keepdims=True), 1e-12)
        return jnp.einsum("ijd,ikd->ijk", unit, unit)

    loss_a = jnp.mean(_smooth_l1(angles(s) - angles(t)))
    return distance_weight * loss_d + angle_weight * loss_a


def pkt(student_emb: jax.Array, teacher_emb: jax.Array, *, eps: float = 1e-7) -> jax.Array:
    """Probabilistic knowledge transfer with the cosine kernel (Passalis & Tefas, ECCV 2018; mdistiller `PKT`).

    Rows divided by (L2 norm + eps) (an all-zero row stays zero), K = X X^T mapped to [0, 1] by (K + 1)/2,
    row-normalised into Q (student) and P (teacher); loss = mean over the B^2 entries of P log((P + eps)/(Q + eps)).
    Deviation: the gradient of an all-zero row is 0 here (torch gives NaN there through sqrt'(0)).
    reference: megvii-research/mdistiller mdistiller/distillers/PKT.py.
    """
    check_positive("pkt", eps=eps)
    s = upcast(student_emb).reshape(student_emb.shape[0], -1)
    t = upcast(teacher_emb).reshape(teacher_emb.shape[0], -1)
    check_same_batch(s, t, "pkt")

    def conditional(x):
        x = x / (safe_norm(x, axis=1, keepdims=True) + eps)
        k = (x @ x.T + 1.0) / 2.0
        return k / jnp.sum(k, axis=1, keepdims=True)

    q, p = conditional(s), conditional(t)
    return jnp.mean(p * jnp.log((p + eps) / (q + eps)))
