"""Helpers shared by the loss modules."""
import jax
import jax.numpy as jnp


def upcast(x: jax.Array) -> jax.Array:
    """bf16/fp16 -> float32; float32 and float64 unchanged (fp64 parity tests and gradient checks need fp64)."""
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def check_same_shape(a: jax.Array, b: jax.Array, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what}: student shape {a.shape} != teacher shape {b.shape}")
