"""Helpers shared by the loss modules."""
import jax
import jax.numpy as jnp


def upcast(x: jax.Array) -> jax.Array:
    """bf16/fp16 -> float32; float32 and float64 unchanged (fp64 parity tests and gradient checks need fp64)."""
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def check_same_shape(a: jax.Array, b: jax.Array, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what}: student shape {a.shape} != teacher shape {b.shape}")


def check_same_batch(a: jax.Array, b: jax.Array, what: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{what}: student batch {a.shape} and teacher batch {b.shape} differ in size")


def safe_norm(x: jax.Array, axis: int = -1, keepdims: bool = False) -> jax.Array:
    """L2 norm whose gradient at 0 is 0 (not NaN): sqrt of a sum that is replaced by 1 where it is 0."""
    sq = jnp.sum(jnp.square(x), axis=axis, keepdims=keepdims)
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def l2_normalize(x: jax.Array, axis: int = -1) -> jax.Array:
    """torch's F.normalize: x / max(||x||, 1e-12), with a finite gradient at x = 0."""
    return x / jnp.maximum(safe_norm(x, axis=axis, keepdims=True), 1e-12)


def _numbers(values: dict):
    """The hyper-parameters given as Python numbers (arrays and tracers are the caller's to check)."""
    return {k: v for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def check_positive(where: str = "", **values) -> None:
    """Raises ValueError for a hyper-parameter <= 0 given as a Python number (a temperature, a scale)."""
    for name, value in _numbers(values).items():
        if not value > 0:
            raise ValueError(f"{where + ': ' if where else ''}{name}={value} must be > 0")


def check_non_negative(where: str = "", **values) -> None:
    """Raises ValueError for a hyper-parameter < 0 given as a Python number (a margin, a weight, an exponent)."""
    for name, value in _numbers(values).items():
        if not value >= 0:
            raise ValueError(f"{where + ': ' if where else ''}{name}={value} must be >= 0")


REDUCTIONS = ("mean", "sum", "none")


def reduce(per_example: jax.Array, reduction: str, where: str) -> jax.Array:
    """'mean' over the batch, 'sum', or 'none' (the [B] per-example values)."""
    if reduction == "mean":
        return jnp.mean(per_example)
    if reduction == "sum":
        return jnp.sum(per_example)
    if reduction == "none":
        return per_example
    raise ValueError(f"{where}: reduction={reduction!r}; valid: {list(REDUCTIONS)}")
