"""Exact nearest-neighbour retrieval metrics (Recall@K) by brute force on the accelerator.

Squared L2 distances ||q||^2 - 2 q.g + ||g||^2 are computed for a chunk of queries at a time against the whole
gallery (one GEMM per chunk), so memory is chunk x gallery, never N x N. With `exclude_self` (query set = gallery,
the deep-metric-learning protocol) each query's own index is removed.

The k nearest are found in two levels when k is small against the gallery: the gallery is cut into blocks of
`BLOCK` rows, each query keeps the k (k + 1 with `exclude_self`) blocks with the best maxima, and `lax.top_k` runs
on those blocks' scores only. This is exact: an entry of the true top k has at most k - 1 better entries, so at
most k - 1 blocks have a better maximum than its own block. On XLA:CPU a `top_k` over a 100k-wide row costs 2.5x
the GEMM that made it (benchmarks/README.md); the block maxima cost a fraction of that.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np


BLOCK = 32  # gallery rows per block of the two-level search (16-64 measured alike)


@functools.partial(jax.jit, static_argnames=("k", "chunk", "exclude_self"))
def _knn(queries, gallery, *, k, chunk, exclude_self):
    n = queries.shape[0]
    padded = -(-n // chunk) * chunk
    q = jnp.pad(queries, ((0, padded - n), (0, 0))).reshape(padded // chunk, chunk, -1)
    num_blocks = -(-gallery.shape[0] // BLOCK)
    kept_blocks = k + int(exclude_self)  # the query's own block may be one of the best
    two_level = 8 * kept_blocks <= num_blocks
    g_sq = jnp.sum(jnp.square(gallery), axis=1)
    if two_level:  # pad the gallery to whole blocks with rows that score -inf
        extra_rows = num_blocks * BLOCK - gallery.shape[0]
        gallery = jnp.pad(gallery, ((0, extra_rows), (0, 0)))
        g_sq = jnp.pad(g_sq, (0, extra_rows), constant_values=jnp.inf)

    def one(args):
        block, start = args
        own = start + jnp.arange(chunk)
        # ||q||^2 is constant per row: it does not change the ranking
        scores = 2.0 * block @ gallery.T - g_sq[None, :]
        if not two_level:
            if exclude_self:
                scores = jnp.where(jnp.arange(gallery.shape[0])[None, :] == own[:, None], -jnp.inf, scores)
            return jax.lax.top_k(scores, k)[1]
        block_max = jnp.max(scores.reshape(chunk, num_blocks, BLOCK), axis=2)
        best_blocks = jax.lax.top_k(block_max, kept_blocks)[1]
        candidates = (best_blocks[:, :, None] * BLOCK + jnp.arange(BLOCK)).reshape(chunk, kept_blocks * BLOCK)
        candidate_scores = jnp.take_along_axis(scores, candidates, axis=1)
        if exclude_self:
            candidate_scores = jnp.where(candidates == own[:, None], -jnp.inf, candidate_scores)
        return jnp.take_along_axis(candidates, jax.lax.top_k(candidate_scores, k)[1], axis=1)

    starts = jnp.arange(padded // chunk) * chunk
    return jax.lax.map(one, (q, starts)).reshape(padded, k)[:n]


def nearest_neighbors(queries, gallery, k: int, *, chunk: int = 1024, exclude_self: bool = False) -> np.ndarray:
    """Indices [Nq, k] of each query's k nearest gallery rows (squared L2), nearest first."""
    queries, gallery = jnp.asarray(queries, jnp.float32), jnp.asarray(gallery, jnp.float32)
    if queries.ndim != 2 or gallery.ndim != 2 or queries.shape[1] != gallery.shape[1]:
        raise ValueError(f"queries {queries.shape} and gallery {gallery.shape} must be [N, D] with the same D")
    if exclude_self and queries.shape[0] != gallery.shape[0]:
        raise ValueError("exclude_self needs the query set to be the gallery")
    available = gallery.shape[0] - int(exclude_self)
    if not 1 <= k <= available:
        raise ValueError(f"k={k}: must be between 1 and the {available} gallery rows a query can retrieve")
    chunk = min(chunk, queries.shape[0])
    return np.asarray(_knn(queries, gallery, k=k, chunk=chunk, exclude_self=exclude_self))


def recall_at_k(embeddings, labels, ks=(1,), *, chunk: int = 1024) -> dict[int, float]:
    """Recall@K with the query set = gallery and each query's own entry excluded: the fraction of queries with at
    least one of their K nearest neighbours sharing their label."""
    labels = np.asarray(labels)
    neighbors = nearest_neighbors(embeddings, embeddings, max(ks), chunk=chunk, exclude_self=True)
    hits = labels[neighbors] == labels[:, None]
    return {k: float(np.mean(np.any(hits[:, :k], axis=1))) for k in ks}


def _ranked_relevance(embeddings, labels, k, chunk):
    """Relevance [N, k] of each query's k nearest other embeddings (self excluded), nearest first."""
    labels = np.asarray(labels)
    neighbors = nearest_neighbors(embeddings, embeddings, k, chunk=chunk, exclude_self=True)
    return labels[neighbors] == labels[:, None]


def _class_sizes(labels):
    _, inverse, counts = np.unique(np.asarray(labels), return_inverse=True, return_counts=True)
    return counts[inverse]


def _map_at_r_depth(labels) -> int:
    r = _class_sizes(labels) - 1
    if not (r > 0).any():
        raise ValueError("map_at_r: every class has a single example; MAP@R is undefined")
    return int(r.max())


def _map_at_r_from(rel, labels) -> float:
    r = _class_sizes(labels) - 1
    ranks = np.arange(1, rel.shape[1] + 1)
    within = ranks[None, :] <= r[:, None]
    precision = np.cumsum(rel, axis=1) / ranks
    ap = np.sum(precision * rel * within, axis=1) / np.maximum(r, 1)
    return float(np.mean(ap[r > 0]))


def _roth_depths(labels, r) -> np.ndarray:
    n_c = _class_sizes(labels)
    limit = len(n_c) - 1
    if r == "class":
        return np.minimum(n_c, limit)
    if isinstance(r, (int, np.integer)) and not isinstance(r, bool) and r > 0:
        return np.full(len(n_c), min(int(r), limit))
    raise ValueError(f"roth_map: r={r!r}; valid: a positive int or 'class'")


def _roth_map_from(rel, labels, r) -> float:
    n_c, per_query = _class_sizes(labels), _roth_depths(labels, r)
    rel = rel[:, :int(per_query.max())]
    ranks = np.arange(1, rel.shape[1] + 1)
    within = ranks[None, :] <= per_query[:, None]
    precision = np.cumsum(rel, axis=1) / ranks
    return float(np.mean(np.sum(precision * rel * within, axis=1) / n_c))


def map_at_r(embeddings, labels, *, chunk: int = 1024) -> float:
    """MAP@R (Musgrave et al., ECCV 2020; pytorch-metric-learning `mean_average_precision_at_r`): per query of a
    class with n_c members, R = n_c - 1 (its other members), AP@R = (1/R) sum_{k <= R} P@k * rel_k over its R nearest
    other embeddings; mean over queries. Queries alone in their class (R = 0) are left out, as PML does."""
    return _map_at_r_from(_ranked_relevance(embeddings, labels, _map_at_r_depth(labels), chunk), labels)


def roth_map(embeddings, labels, *, r=1000, chunk: int = 1024) -> float:
    """Roth et al.'s mAP (reference: MLforHealth/S2SD metrics/mAP*.py): per query of class c with n_c members (the
    query included), AP = (sum_{k <= R} P@k * rel_k) / n_c over the R nearest other embeddings; mean over all
    queries. `r=1000`: R = 1000 (their mAP_1000, S2SD's mAP@R column); `r='class'`: R = n_c (mAP_c). R is capped at
    N - 1. The divisor n_c counts the query although at most n_c - 1 items can be relevant."""
    depth = int(_roth_depths(labels, r).max())
    return _roth_map_from(_ranked_relevance(embeddings, labels, depth, chunk), labels, r)


def retrieval_metrics(embeddings, labels, *, ks=(1, 2, 4, 8), map_at_r: bool = True, roth_map_r=1000,
                      chunk: int = 1024) -> dict[str, float]:
    """`recall@K` for K in `ks`, `map_at_r` and `map@<roth_map_r>` (falsy: left out) from one nearest-neighbour
    search as deep as the deepest of them needs: the same values as the separate functions, one GEMM pass."""
    labels = np.asarray(labels)
    ks = tuple(int(k) for k in ks)
    depth = max(ks, default=0)
    if map_at_r:
        depth = max(depth, _map_at_r_depth(labels))
    if roth_map_r:
        depth = max(depth, int(_roth_depths(labels, roth_map_r).max()))
    rel = _ranked_relevance(embeddings, labels, depth, chunk)
    result = {f"recall@{k}": float(np.mean(np.any(rel[:, :k], axis=1))) for k in ks}
    if map_at_r:
        result["map_at_r"] = _map_at_r_from(rel, labels)
    if roth_map_r:
        result[f"map@{roth_map_r}"] = _roth_map_from(rel, labels, roth_map_r)
    return result
