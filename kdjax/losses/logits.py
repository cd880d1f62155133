"""Losses on logits: cross-entropy, Hinton KD and logit MSE."""
import jax
import jax.numpy as jnp

from kdjax.losses.common import check_same_shape, upcast


def cross_entropy(logits: jax.Array, labels: jax.Array, *, label_smoothing: float = 0.0) -> jax.Array:
    """Softmax cross-entropy with integer labels, mean over the batch.

    Args:
      logits: [B, C].
      labels: [B] integer class indices.
      label_smoothing: eps of torch `CrossEntropyLoss(label_smoothing=eps)`: the target is
        (1 - eps) * onehot + eps / C.
    Returns:
      Scalar, float32 (float64 for float64 inputs).
    """
    if labels.shape != logits.shape[:-1]:
        raise ValueError(f"cross_entropy: labels shape {labels.shape} does not match logits {logits.shape}")
    logits = upcast(logits)
    num_classes = logits.shape[-1]
    targets = jax.nn.one_hot(labels, num_classes, dtype=logits.dtype)
    if label_smoothing:
        targets = (1.0 - label_smoothing) * targets + label_smoothing / num_classes
    return -jnp.mean(jnp.sum(targets * jax.nn.log_softmax(logits, axis=-1), axis=-1))


def kd(student_logits: jax.Array, teacher_logits: jax.Array, *, temperature: float = 4.0) -> jax.Array:
    """Hinton KD: T^2 * (1/B) * sum_i KL(softmax(z_t/T) || softmax(z_s/T)).

    KL direction: teacher distribution first (the target), as in mdistiller `kd_loss` and RepDistiller `DistillKL`
    (`F.kl_div(log_softmax(z_s/T), softmax(z_t/T), reduction='batchmean') * T**2`). The T^2 factor keeps gradient
    magnitudes comparable across temperatures, so the published weights (CE 0.1, KD 0.9, T = 4) transfer.
    0 * log 0 = 0 via xlogy.

    Args:
      student_logits: [B, C].
      teacher_logits: [B, C]; not stop-gradient'ed here.
      temperature: T > 0.
    Returns:
      Scalar, float32 (float64 for float64 inputs).
    """
    check_same_shape(student_logits, teacher_logits, "kd")
    t = temperature
    log_p_s = jax.nn.log_softmax(upcast(student_logits) / t, axis=-1)
    log_p_t = jax.nn.log_softmax(upcast(teacher_logits) / t, axis=-1)
    p_t = jnp.exp(log_p_t)
    kl = jnp.sum(jax.scipy.special.xlogy(p_t, p_t) - p_t * log_p_s, axis=-1)
    return t * t * jnp.mean(kl)


def logit_mse(student_logits: jax.Array, teacher_logits: jax.Array) -> jax.Array:
    """Mean squared error over all elements (torch `F.mse_loss`, reduction='mean')."""
    check_same_shape(student_logits, teacher_logits, "logit_mse")
    diff = upcast(student_logits) - upcast(teacher_logits)
    return jnp.mean(jnp.square(diff))
