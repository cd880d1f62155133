"""Losses on logits: cross-entropy, Hinton KD, logit MSE, DKD, MLLD, DIST, and two plug-ins of the logit methods:
logit standardization (Sun et al., CVPR 2024) and CTKD's learnable curriculum temperature (Li et al., AAAI 2023)."""
import math

import jax
import jax.numpy as jnp

from kdjax.losses.common import check_non_negative, check_positive, check_same_shape, reduce, safe_norm, upcast


def logit_standardize(logits: jax.Array, *, eps: float = 1e-7) -> jax.Array:
    """Logit standardization (Sun et al., "Logit Standardization in Knowledge Distillation", CVPR 2024): each
    example's z-score over the classes, (z - mean) / (eps + std), std unbiased (ddof 1, torch's default).
    reference: sunshangquan/logit-standardization-KD mdistiller/distillers/KD.py `normalize`. The logit methods take
    it as `logit_stand=True` on both the student's and the teacher's logits, before their temperature.
    Deviation: where an example's logits are all equal (std 0) the gradient is finite (torch's is NaN there).

    Args:
      logits: [..., C], C >= 2.
    Returns:
      Same shape, float32 (float64 for float64 inputs).
    """
    if logits.shape[-1] < 2:
        raise ValueError(f"logit_standardize: {logits.shape[-1]} class(es); the unbiased std needs at least 2")
    z = upcast(logits)
    centred = z - jnp.mean(z, axis=-1, keepdims=True)
    std = safe_norm(centred, axis=-1, keepdims=True) / math.sqrt(z.shape[-1] - 1)
    return centred / (eps + std)


def _standardized(student_logits, teacher_logits, logit_stand: bool):
    if not logit_stand:
        return student_logits, teacher_logits
    return logit_standardize(student_logits), logit_standardize(teacher_logits)


def cross_entropy(logits: jax.Array, labels: jax.Array, *, label_smoothing: float = 0.0,
                  reduction: str = "mean") -> jax.Array:
    """Softmax cross-entropy with integer labels, mean over the batch (torch `CrossEntropyLoss`).

    Args:
      logits: [B, C].
      labels: [B] integer class indices.
      label_smoothing: eps in [0, 1] of torch `CrossEntropyLoss(label_smoothing=eps)`: the target is
        (1 - eps) * onehot + eps / C.
      reduction: 'mean' over the batch (the reference's), 'sum', or 'none' ([B] per-example values).
    Returns:
      Scalar ([B] for reduction='none'), float32 (float64 for float64 inputs).
    """
    if labels.shape != logits.shape[:-1]:
        raise ValueError(f"cross_entropy: labels shape {labels.shape} does not match logits {logits.shape}")
    check_non_negative("cross_entropy", label_smoothing=label_smoothing)
    if isinstance(label_smoothing, (int, float)) and label_smoothing > 1:
        raise ValueError(f"cross_entropy: label_smoothing={label_smoothing} must lie in [0, 1]")
    logits = upcast(logits)
    num_classes = logits.shape[-1]
    targets = jax.nn.one_hot(labels, num_classes, dtype=logits.dtype)
    if label_smoothing:
        targets = (1.0 - label_smoothing) * targets + label_smoothing / num_classes
    return reduce(-jnp.sum(targets * jax.nn.log_softmax(logits, axis=-1), axis=-1), reduction, "cross_entropy")


def kd(student_logits: jax.Array, teacher_logits: jax.Array, *, temperature: float = 4.0,
       reduction: str = "mean", logit_stand: bool = False) -> jax.Array:
    """Hinton KD: T^2 * (1/B) * sum_i KL(softmax(z_t/T) || softmax(z_s/T)).

    KL direction: teacher distribution first (the target), as in mdistiller `kd_loss` and RepDistiller `DistillKL`
    (`F.kl_div(log_softmax(z_s/T), softmax(z_t/T), reduction='batchmean') * T**2`). The T^2 factor keeps gradient
    magnitudes comparable across temperatures, so the published weights (CE 0.1, KD 0.9, T = 4) transfer.
    0 * log 0 = 0.

    Args:
      student_logits: [B, C].
      teacher_logits: [B, C]; not stop-gradient'ed here.
      temperature: T > 0.
      reduction: 'mean' over the batch (the reference's 'batchmean'), 'sum', or 'none' ([B] per-example values,
        each T^2 KL).
      logit_stand: standardize both logits first (`logit_standardize`; Sun et al. 2024's KD, whose T is their
        "base temperature").
    Returns:
      Scalar ([B] for reduction='none'), float32 (float64 for float64 inputs).
    """
    check_same_shape(student_logits, teacher_logits, "kd")
    check_positive("kd", temperature=temperature)
    student_logits, teacher_logits = _standardized(student_logits, teacher_logits, logit_stand)
    t = temperature
    log_p_s = jax.nn.log_softmax(upcast(student_logits) / t, axis=-1)
    log_p_t = jax.nn.log_softmax(upcast(teacher_logits) / t, axis=-1)
    return t * t * reduce(_kl_rows(jnp.exp(log_p_t), log_p_s), reduction, "kd")


def logit_mse(student_logits: jax.Array, teacher_logits: jax.Array, *, reduction: str = "mean") -> jax.Array:
    """Mean squared error over all elements (torch `F.mse_loss`, reduction='mean'); reduction='none' gives each
    example's mean over its logits ([B]), 'sum' their sum."""
    check_same_shape(student_logits, teacher_logits, "logit_mse")
    diff = upcast(student_logits) - upcast(teacher_logits)
    return reduce(jnp.mean(jnp.square(diff), axis=-1), reduction, "logit_mse")


def _xlogx(p: jax.Array) -> jax.Array:
    """p log p with 0 log 0 = 0 and a zero gradient there: torch's kl_div leaves the target's zeros out of its
    gradient, and a learnable temperature (CTKD) differentiates the teacher's probabilities, some exactly 0 in
    float32 (DKD's non-target softmax, a saturated teacher), where xlogy's gradient is -inf * 0 = NaN."""
    positive = p > 0
    return jnp.where(positive, p * jnp.log(jnp.where(positive, p, 1.0)), 0.0)


def _kl_rows(p_t: jax.Array, log_p_s: jax.Array) -> jax.Array:
    """sum_c p_t (log p_t - log p_s) per row, with 0 log 0 = 0 (torch kl_div semantics)."""
    return jnp.sum(_xlogx(p_t) - p_t * log_p_s, axis=-1)


def dkd(student_logits: jax.Array, teacher_logits: jax.Array, labels: jax.Array, *, alpha: float = 1.0,
        beta: float = 8.0, temperature: float = 4.0, reduction: str = "mean", logit_stand: bool = False) -> jax.Array:
    """Decoupled KD: alpha * TCKD + beta * NCKD (Zhao et al., CVPR 2022; mdistiller `dkd_loss`).

    TCKD = T^2/B sum_i KL(b_t || b_s) on the binary [target, non-target] probabilities (log of b_s taken directly);
    NCKD = T^2/B sum_i KL(p^_t || p^_s) on softmax(z/T - 1000 * onehot(y)), the non-target distribution.
    CE and the min(epoch/20, 1) warm-up are separate (trainer terms). reference: megvii-research/mdistiller
    mdistiller/distillers/DKD.py. `reduction`: 'mean' over the batch (the reference's), 'sum', or 'none' ([B]
    per-example alpha * TCKD_i + beta * NCKD_i). `logit_stand`: standardize both logits first (Sun et al. 2024;
    sunshangquan/logit-standardization-KD mdistiller/distillers/DKD.py).
    """
    check_same_shape(student_logits, teacher_logits, "dkd")
    check_positive("dkd", temperature=temperature)
    check_non_negative("dkd", alpha=alpha, beta=beta)
    student_logits, teacher_logits = _standardized(student_logits, teacher_logits, logit_stand)
    t = temperature
    zs, zt = upcast(student_logits) / t, upcast(teacher_logits) / t
    gt = jax.nn.one_hot(labels, zs.shape[-1], dtype=zs.dtype)
    p_s, p_t = jax.nn.softmax(zs, axis=-1), jax.nn.softmax(zt, axis=-1)
    b_s = jnp.stack([jnp.sum(p_s * gt, -1), jnp.sum(p_s * (1 - gt), -1)], axis=-1)
    b_t = jnp.stack([jnp.sum(p_t * gt, -1), jnp.sum(p_t * (1 - gt), -1)], axis=-1)
    tckd = jnp.sum(_xlogx(b_t) - b_t * jnp.log(b_s), axis=-1) * t * t
    log_q_s = jax.nn.log_softmax(zs - 1000.0 * gt, axis=-1)
    q_t = jax.nn.softmax(zt - 1000.0 * gt, axis=-1)
    nckd = _kl_rows(q_t, log_q_s) * t * t
    return reduce(alpha * tckd + beta * nckd, reduction, "dkd")


MLLD_TEMPERATURES = (4.0, 3.0, 5.0, 2.0, 6.0)


def _median_linear(x: jax.Array) -> jax.Array:
    return jnp.percentile(x, 50.0, method="linear")


def _batch_correlation(p_s, p_t, mask=None):
    diff = p_t @ p_t.T - p_s @ p_s.T
    if mask is not None:
        diff = diff * mask[:, None] * mask[None, :]
    return jnp.sum(jnp.square(diff)) / p_s.shape[0]


def _class_correlation(p_s, p_t, cmask=None):
    diff = p_t.T @ p_t - p_s.T @ p_s
    if cmask is not None:
        diff = diff * cmask[:, None] * cmask[None, :]
    return jnp.sum(jnp.square(diff)) / p_s.shape[1]


def mlld(student_logits_weak: jax.Array, teacher_logits_weak: jax.Array, student_logits_strong: jax.Array,
         teacher_logits_strong: jax.Array, *, variant: str = "official", temperatures=MLLD_TEMPERATURES,
         logit_stand: bool = False) -> jax.Array:
    """Multi-level logit distillation (Jin et al., CVPR 2023), without the CE terms and the 0.9 weight.

    With P = softmax(z/T): KD_T = T^2 batchmean KL(P_t || P_s); BC_T = ||P_t P_t^T - P_s P_s^T||_F^2 / B;
    CC_T = ||P_t^T P_t - P_s^T P_s||_F^2 / C. Masks from the teacher's weak-view softmax at T = 1: mask_i = max_c p_ic
    <= batch median of those maxima; cmask_c = sum_i p_ic <= median over classes (linear percentile, numpy's).
    - variant='official' (Jin-Ying/Multi-Level-Logit-Distillation KD_ours.py, quirks kept): mean(mask) * sum_T
      KD_T(weak) + [KD_4, KD_3, KD_5 on the strong view, KD_2, KD_6 on the weak view] + mean(cmask) * sum_T CC_T(weak)
      + mean(mask) * sum_T BC_T(weak). The masks rescale already-reduced losses (quirk i); the "strong" sum reuses
      weak logits for T = 2, 6 (ii); strong-view CC/BC are not used (iii).
    - variant='paper' (kdjax reading): both views get KD_T + CC_T + BC_T for every T on their own logits, and the
      masks select: instance terms sum_i mask_i l_i / B, BC/CC on the masked rows and columns (still / B, / C).
    `temperatures` (T_1, ..., T_5): the official sums use them in this order (T_1 is the base temperature, 4 in MLLD,
    2 in Sun et al. 2024's runs). `logit_stand=True`: the KD_T terms see standardized logits, the CC / BC terms and
    the masks the raw ones, as sunshangquan/logit-standardization-KD mdistiller/distillers/MLKD.py does.
    """
    check_positive("mlld", **{f"temperatures[{i}]": t for i, t in enumerate(temperatures)})
    if len(temperatures) != 5:
        raise ValueError(f"mlld: temperatures={tuple(temperatures)}; the official sums take 5 (base, 3, 5, 2, 6)")
    zs_w, zt_w, zs_s, zt_s = (upcast(z) for z in (student_logits_weak, teacher_logits_weak,
                                                   student_logits_strong, teacher_logits_strong))
    check_same_shape(zs_w, zt_w, "mlld weak view")
    check_same_shape(zs_s, zt_s, "mlld strong view")
    p1 = jax.nn.softmax(zt_w, axis=-1)
    confidence = jnp.max(p1, axis=-1)
    mask = (confidence <= _median_linear(confidence)).astype(zs_w.dtype)
    class_confidence = jnp.sum(p1, axis=0)
    cmask = (class_confidence <= _median_linear(class_confidence)).astype(zs_w.dtype)
    soft = lambda z, t: jax.nn.softmax(z / t, axis=-1)
    kd_t = lambda s, t, temperature: kd(s, t, temperature=temperature, logit_stand=logit_stand)  # noqa: E731

    if variant == "official":
        t1, t2, t3, t4, t5 = temperatures
        total = jnp.mean(mask) * sum(kd_t(zs_w, zt_w, t) for t in temperatures)
        total += (kd_t(zs_s, zt_s, t1) + kd_t(zs_s, zt_s, t2) + kd_t(zs_s, zt_s, t3) + kd_t(zs_w, zt_w, t4)
                  + kd_t(zs_w, zt_w, t5))
        total += jnp.mean(cmask) * sum(_class_correlation(soft(zs_w, t), soft(zt_w, t)) for t in temperatures)
        total += jnp.mean(mask) * sum(_batch_correlation(soft(zs_w, t), soft(zt_w, t)) for t in temperatures)
        return total
    if variant == "paper":
        total = jnp.float32(0.0)
        for zs, zt in ((zs_w, zt_w), (zs_s, zt_s)):
            for t in temperatures:
                ps, pt = soft(zs, t), soft(zt, t)
                per_example = kd(zs, zt, temperature=t, reduction="none", logit_stand=logit_stand)
                total += jnp.sum(mask * per_example) / zs.shape[0]
                total += _batch_correlation(ps, pt, mask) + _class_correlation(ps, pt, cmask)
        return total
    raise ValueError(f"mlld: variant={variant!r}; valid: 'official', 'paper'")


def _pearson_rows(a: jax.Array, b: jax.Array, eps: float) -> jax.Array:
    """Pearson correlation of each row of `a` with the same row of `b` (cosine of the centred rows, + eps)."""
    a = a - jnp.mean(a, axis=1, keepdims=True)
    b = b - jnp.mean(b, axis=1, keepdims=True)
    return jnp.sum(a * b, axis=1) / (safe_norm(a, axis=1) * safe_norm(b, axis=1) + eps)


def dist(student_logits: jax.Array, teacher_logits: jax.Array, *, beta: float = 1.0, gamma: float = 1.0,
         tau: float = 1.0, eps: float = 1e-8) -> jax.Array:
    """DIST, "Knowledge Distillation from A Stronger Teacher" (Huang et al., NeurIPS 2022): relations instead of KL.

    With Y = softmax(z / tau) [B, C]: inter-class = tau^2 (1 - mean_i pearson(Y_s[i], Y_t[i])) (each example's class
    vector), intra-class = tau^2 (1 - mean_c pearson(Y_s[:, c], Y_t[:, c])) (each class's batch vector);
    loss = beta * inter + gamma * intra, the Pearson correlation a cosine of centred vectors with eps 1e-8 in its
    denominator. reference: hunto/image_classification_sota lib/models/losses/dist_kd.py (`DIST`; tau = 1 is its
    earlier form without a temperature). Deviation: a constant row or column (zero norm after centring) has a finite
    gradient here (torch's norm gives NaN there).
    """
    check_same_shape(student_logits, teacher_logits, "dist")
    check_positive("dist", tau=tau, eps=eps)
    check_non_negative("dist", beta=beta, gamma=gamma)
    y_s = jax.nn.softmax(upcast(student_logits) / tau, axis=-1)
    y_t = jax.nn.softmax(upcast(teacher_logits) / tau, axis=-1)
    inter = tau * tau * (1.0 - jnp.mean(_pearson_rows(y_s, y_t, eps)))
    intra = tau * tau * (1.0 - jnp.mean(_pearson_rows(y_s.T, y_t.T, eps)))
    return beta * inter + gamma * intra


@jax.custom_vjp
def gradient_reversal(x: jax.Array, scale: jax.Array) -> jax.Array:
    """The identity forward; backward, the upstream gradient times `scale` (a negative scale reverses it: Ganin &
    Lempitsky's gradient reversal layer as CTKD uses it, reference: zhengli97/CTKD models/temp_global.py)."""
    return x


def _reversal_forward(x, scale):
    return x, scale


def _reversal_backward(scale, g):
    return scale * g, jnp.zeros_like(scale)


gradient_reversal.defvjp(_reversal_forward, _reversal_backward)


def ctkd_lambda(epoch, *, max_value: float = 0.0, min_value: float = -1.0, num_loops: float = 10.0) -> jax.Array:
    """CTKD's curriculum (reference: zhengli97/CTKD train_student.py `CosineDecay`): at (1-based) epoch e,
    lambda = (cos(min(e, L) pi / L) + 1) / 2 * (max - min) + min; from `max_value` towards `min_value` over L epochs
    (0 -> -1 over 10 in its CIFAR script), constant after."""
    check_positive("ctkd_lambda", num_loops=num_loops)
    i = jnp.clip(jnp.asarray(epoch, jnp.float32), 0.0, num_loops)
    return (jnp.cos(i * jnp.pi / num_loops) + 1.0) * 0.5 * (max_value - min_value) + min_value


def ctkd_temperature(global_t: jax.Array, lambda_: jax.Array, *, t_start: float = 1.0,
                     t_range: float = 20.0) -> jax.Array:
    """CTKD's global learnable temperature (Li et al., "Curriculum Temperature for Knowledge Distillation", AAAI 2023;
    reference: zhengli97/CTKD models/temp_global.py and helper/loops.py): T = t_start + t_range * sigmoid(g), with
    g's gradient multiplied by lambda <= 0 on the way back (`gradient_reversal`), so that g ascends the distillation
    loss the student descends. T lies in (t_start, t_start + t_range): (1, 21) in the official runs, whose `t_end`
    is this `t_range`."""
    check_non_negative("ctkd_temperature", t_range=t_range)
    check_positive("ctkd_temperature", t_start=t_start)
    return t_start + t_range * jax.nn.sigmoid(gradient_reversal(global_t, jnp.asarray(lambda_, jnp.float32)))
