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
