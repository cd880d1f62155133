"""Losses of multi-label classifiers: per-label logits [B, C] against multi-hot targets [B, C] (0/1)."""
import jax
import jax.numpy as jnp

from kdjax.losses.common import upcast


def focal_bce(logits: jax.Array, targets: jax.Array, *, gamma: float = 2.0) -> jax.Array:
    """Focal binary cross-entropy, SUM over the batch and the labels:

      -sum_{b,c} [ y (1 - p)^gamma log p + (1 - y) p^gamma log(1 - p) ],  p = sigmoid(z).

    gamma = 0 is L2D's task loss, BCE with reduction 'sum' (reference: penghui-yang/L2D criterion; the teacher and
    student objectives of Yang et al., ICCV 2023); gamma = 2 is the 3D paper's task loss (Li & Cheng, focal
    exponent gamma_b). The logs are log-sigmoids, so values and gradients stay finite for any logit; the reference
    clamps p at 1e-8 before the log instead, which differs only where |z| > 18 (it caps the loss at 18.4 per label).

    Args:
      logits: [B, C].
      targets: [B, C] multi-hot (0/1; soft targets in [0, 1] are accepted).
      gamma: focusing exponent >= 0.
    Returns:
      Scalar, float32 (float64 for float64 inputs).
    """
    if logits.shape != targets.shape:
        raise ValueError(f"focal_bce: targets shape {targets.shape} does not match logits {logits.shape}")
    if gamma < 0:
        raise ValueError(f"focal_bce: gamma={gamma} must be >= 0")
    z = upcast(logits)
    y = targets.astype(z.dtype)
    log_p, log_not_p = jax.nn.log_sigmoid(z), jax.nn.log_sigmoid(-z)
    if gamma:
        positive = jnp.exp(gamma * log_not_p) * log_p
        negative = jnp.exp(gamma * log_p) * log_not_p
    else:
        positive, negative = log_p, log_not_p
    return -jnp.sum(y * positive + (1.0 - y) * negative)
