"""Exact nearest-neighbour retrieval metrics (Recall@K) by brute force on the accelerator.

Squared L2 distances ||q||^2 - 2 q.g + ||g||^2 are computed for a chunk of queries at a time against the whole
gallery (one GEMM per chunk) and reduced with `lax.top_k`, so memory is chunk x gallery, never N x N. With
`exclude_self` (query set = gallery, the deep-metric-learning protocol) each query's own index is removed.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np


@functools.partial(jax.jit, static_argnames=("k", "chunk", "exclude_self"))
def _knn(queries, gallery, *, k, chunk, exclude_self):
    n = queries.shape[0]
    padded = -(-n // chunk) * chunk
    q = jnp.pad(queries, ((0, padded - n), (0, 0))).reshape(padded // chunk, chunk, -1)
    g_sq = jnp.sum(jnp.square(gallery), axis=1)

    def one(args):
        block, start = args
        # ||q||^2 is constant per row: it does not change the ranking
        scores = 2.0 * block @ gallery.T - g_sq[None, :]
        if exclude_self:
            own = start + jnp.arange(chunk)
            scores = jnp.where(jnp.arange(gallery.shape[0])[None, :] == own[:, None], -jnp.inf, scores)
        return jax.lax.top_k(scores, k)[1]

    starts = jnp.arange(padded // chunk) * chunk
    return jax.lax.map(one, (q, starts)).reshape(padded, k)[:n]


def nearest_neighbors(queries, gallery, k: int, *, chunk: int = 1024, exclude_self: bool = False) -> np.ndarray:
    """Indices [Nq, k] of each query's k nearest gallery rows (squared L2), nearest first."""
    queries, gallery = jnp.asarray(queries, jnp.float32), jnp.asarray(gallery, jnp.float32)
    if queries.ndim != 2 or gallery.ndim != 2 or queries.shape[1] != gallery.shape[1]:
        raise ValueError(f"queries {queries.shape} and gallery {gallery.shape} must be [N, D] with the same D")
    if exclude_self and queries.shape[0] != gallery.shape[0]:
        raise ValueError("exclude_self needs the query set to be the gallery")
    chunk = min(chunk, queries.shape[0])
    return np.asarray(_knn(queries, gallery, k=k, chunk=chunk, exclude_self=exclude_self))


def recall_at_k(embeddings, labels, ks=(1,), *, chunk: int = 1024) -> dict[int, float]:
    """Recall@K with the query set = gallery and each query's own entry excluded: the fraction of queries with at
    least one of their K nearest neighbours sharing their label."""
    labels = np.asarray(labels)
    neighbors = nearest_neighbors(embeddings, embeddings, max(ks), chunk=chunk, exclude_self=True)
    hits = labels[neighbors] == labels[:, None]
    return {k: float(np.mean(np.any(hits[:, :k], axis=1))) for k in ks}
