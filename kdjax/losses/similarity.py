"""Distillation between the batch-similarity matrices of two embedding spaces (S2SD, Roth et al., "Simultaneous
Similarity-based Self-Distillation for Deep Metric Learning", ICML 2021, Eq. 4-5 and supplement Sec F; reference:
MLforHealth/S2SD criteria/s2sd.py `kl_divergence`).
"""
import jax
import jax.numpy as jnp

from kdjax.losses.common import check_positive, l2_normalize, reduce, upcast


def similarity_kl(source_emb: jax.Array, target_emb: jax.Array, *, temperature: float = 1.0,
                  reduction: str = "mean") -> jax.Array:
    """T^2 * mean over rows i of KL(softmax(S_t[i] / T) || softmax(S_s[i] / T)), S = E E^T of the L2-normalised
    embeddings [B, D_s] and [B, D_t] (cosine similarities, the diagonal kept). The reference's reduction: torch
    `kl_div(log_softmax(S_s / T), softmax(S_t / T), reduction='sum') * T^2 / B`. Gradients flow into both sides:
    S2SD detaches the target (pass `jax.lax.stop_gradient(target_emb)`). `reduction`: 'mean' over the rows (the
    reference's), 'sum', or 'none' ([B], each row's T^2 KL)."""
    check_positive("similarity_kl", temperature=temperature)
    source_emb, target_emb = upcast(source_emb), upcast(target_emb)
    if source_emb.ndim != 2 or target_emb.ndim != 2 or source_emb.shape[0] != target_emb.shape[0]:
        raise ValueError(f"similarity_kl: embeddings {source_emb.shape} and {target_emb.shape} must be [B, D] with the "
                         "same B")
    s, t = l2_normalize(source_emb), l2_normalize(target_emb)
    log_q = jax.nn.log_softmax(s @ s.T / temperature, axis=-1)
    log_p = jax.nn.log_softmax(t @ t.T / temperature, axis=-1)
    kl = jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)
    return temperature ** 2 * reduce(kl, reduction, "similarity_kl")
