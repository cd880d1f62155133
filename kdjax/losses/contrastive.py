"""Contrastive representation distillation (CRD, Tian et al., ICLR 2020; reference: HobbitLong/RepDistiller crd/) as pure functions.

The state (memory banks and normalisation constants) is a dict carried in the train state:
`{'bank_s': [N, D], 'bank_t': [N, D], 'z_s': (), 'z_t': (), 'z_set': bool}` from `crd_init_state`.
Per step: `loss, state = crd(embed_s, embed_t, state, contrast_idx)` scores against the banks *before* the update,
then `state = crd_update_memory(state, embed_s, embed_t, index)`.
"""
import jax
import jax.numpy as jnp

from kdjax.losses.common import upcast


def crd_init_state(key: jax.Array, num_data: int, dim: int = 128) -> dict:
    """Banks uniform in [-s, s], s = 1/sqrt(dim/3), not normalised (RepDistiller ContrastMemory); Z unset."""
    stdv = 1.0 / jnp.sqrt(dim / 3.0)
    k1, k2 = jax.random.split(key)
    return {"bank_s": jax.random.uniform(k1, (num_data, dim), minval=-stdv, maxval=stdv),
            "bank_t": jax.random.uniform(k2, (num_data, dim), minval=-stdv, maxval=stdv),
            "z_s": jnp.float32(0.0), "z_t": jnp.float32(0.0), "z_set": jnp.array(False)}


def _nce(p: jax.Array, num_data: int, eps: float = 1e-7) -> jax.Array:
    """RepDistiller ContrastLoss: -(sum_i log(P_i0/(P_i0 + m Pn + eps)) + sum_{i,k>=1} log(m Pn/(P_ik + m Pn + eps)))/B."""
    m = p.shape[1] - 1
    mpn = m / num_data
    log_d1 = jnp.log(p[:, 0] / (p[:, 0] + mpn + eps))
    log_d0 = jnp.log(mpn / (p[:, 1:] + mpn + eps))
    return -(jnp.sum(log_d1) + jnp.sum(log_d0)) / p.shape[0]


def crd(embed_s: jax.Array, embed_t: jax.Array, state: dict, contrast_idx: jax.Array, *,
        temperature: float = 0.07) -> tuple[jax.Array, dict]:
    """NCE loss of both sides; returns (loss, state with Z set on the first call).

    Args:
      embed_s, embed_t: [B, D] L2-normalised embeddings (the trainable Embed heads are the caller's).
      state: see module docstring.
      contrast_idx: [B, K+1] bank rows, column 0 = the example's own dataset index.
    Scores: S1 = exp(<bank_t[idx], v_s>/tau) (student vs teacher bank), S2 = exp(<bank_s[idx], v_t>/tau); the
    gathered bank rows are constants. Z = mean(S) * N on the first call, then frozen; P = S / Z.
    """
    num_data = state["bank_s"].shape[0]
    v_s, v_t = upcast(embed_s), upcast(embed_t)
    rows_t = jax.lax.stop_gradient(state["bank_t"][contrast_idx])
    rows_s = jax.lax.stop_gradient(state["bank_s"][contrast_idx])
    s1 = jnp.exp(jnp.einsum("bkd,bd->bk", rows_t, v_s) / temperature)
    s2 = jnp.exp(jnp.einsum("bkd,bd->bk", rows_s, v_t) / temperature)
    z_s = jnp.where(state["z_set"], state["z_s"], jax.lax.stop_gradient(jnp.mean(s1)) * num_data)
    z_t = jnp.where(state["z_set"], state["z_t"], jax.lax.stop_gradient(jnp.mean(s2)) * num_data)
    loss = _nce(s1 / z_s, num_data) + _nce(s2 / z_t, num_data)
    return loss, dict(state, z_s=z_s, z_t=z_t, z_set=jnp.array(True))


def crd_update_memory(state: dict, embed_s: jax.Array, embed_t: jax.Array, index: jax.Array, *,
                      momentum: float = 0.5) -> dict:
    """bank[y] <- normalise(momentum * bank[y] + (1 - momentum) * v) for both banks (no gradient)."""
    def update(bank, v):
        mixed = momentum * bank[index] + (1.0 - momentum) * jax.lax.stop_gradient(upcast(v))
        mixed = mixed / jnp.linalg.norm(mixed, axis=1, keepdims=True)
        return bank.at[index].set(mixed.astype(bank.dtype))
    return dict(state, bank_s=update(state["bank_s"], embed_s), bank_t=update(state["bank_t"], embed_t))
