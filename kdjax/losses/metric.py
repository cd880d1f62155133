"""Deep-metric-learning losses on L2-normalised embeddings [B, D] with class-id labels [B], as Roth et al.'s
Revisiting-DML / S2SD code computes them (reference: Confusezius/Revisiting_Deep_Metric_Learning_PyTorch and
MLforHealth/S2SD criteria/{margin,multisimilarity}.py; ProxyAnchor as Roth's "oproxy",
Confusezius/ECCV2020_DiVA_MultiFeature_DML criteria/oproxy.py). Similarities are plain dot products: pass the
normalised embeddings the DML models output. Where pytorch-metric-learning (PML) reduces differently, the docstring
says how.
"""
import jax
import jax.numpy as jnp
import numpy as np

from kdjax.losses.common import check_non_negative, check_positive, upcast


def _log1p_sum_exp(z, mask):
    """log(1 + sum_{mask} exp(z)) per row; 0 for an empty row (finite gradients there too)."""
    return jnp.log1p(jnp.sum(jnp.exp(jnp.where(mask, z, -jnp.inf)), axis=-1))


def multi_similarity_masks(similarity: jax.Array, labels: jax.Array, *, epsilon: float = 0.1):
    """MS mining (Wang et al., CVPR 2019; Roth's criterion): (mined positives, mined negatives) [B, B] bool.
    Keep negative j of anchor i when S_ij + eps > min over i's positives, positive j when S_ij - eps < max over
    i's negatives (thresholds from the unmined sets). Comparisons carry no gradient."""
    s = jax.lax.stop_gradient(similarity)
    same = labels[:, None] == labels[None, :]
    pos = same & ~jnp.eye(len(labels), dtype=bool)
    neg = ~same
    min_pos = jnp.min(jnp.where(pos, s, jnp.inf), axis=1, keepdims=True)
    max_neg = jnp.max(jnp.where(neg, s, -jnp.inf), axis=1, keepdims=True)
    return pos & (s - epsilon < max_neg), neg & (s + epsilon > min_pos)


def multi_similarity(embeddings: jax.Array, labels: jax.Array, *, alpha: float = 2.0, beta: float = 40.0,
                     base: float = 0.5, epsilon: float = 0.1) -> jax.Array:
    """Multi-similarity loss with its built-in mining, Roth's reduction.

    S = E E^T; per anchor i with mined positive set P~_i and mined negative set N~_i (`multi_similarity_masks`):
    l_i = (1/alpha) log(1 + sum_{P~_i} exp(-alpha (S_ij - base))) + (1/beta) log(1 + sum_{N~_i} exp(beta (S_ij -
    base))). Anchors with an empty P~_i or N~_i are skipped; loss = mean of l_i over the others, 0 when all are
    skipped (Roth's code would crash there). PML's MultiSimilarityLoss (whose beta defaults to 50, not 40) averages
    over all B rows instead, rows with one mined set contributing a partial term.
    """
    check_positive("multi_similarity", alpha=alpha, beta=beta)
    check_non_negative("multi_similarity", epsilon=epsilon)
    e = upcast(embeddings)
    s = e @ e.T
    pos, neg = multi_similarity_masks(s, labels, epsilon=epsilon)
    per_anchor = (_log1p_sum_exp(-alpha * (s - base), pos) / alpha + _log1p_sum_exp(beta * (s - base), neg) / beta)
    valid = jnp.any(pos, axis=1) & jnp.any(neg, axis=1)
    return jnp.sum(jnp.where(valid, per_anchor, 0.0)) / jnp.maximum(jnp.sum(valid), 1)


def _check_labels_within(labels, size, what):
    if not isinstance(labels, jax.core.Tracer):
        top = int(np.max(np.asarray(labels))) if np.size(labels) else -1
        if top >= size or (np.size(labels) and int(np.min(np.asarray(labels))) < 0):
            raise ValueError(f"{what}: label {top} outside the {size} classes of its parameters (valid: 0..{size - 1})")


def _margin_terms(embeddings, labels, triplets, beta, margin, valid):
    """(l+, l-, valid) per triplet."""
    _check_labels_within(labels, beta.shape[0], "margin")
    check_non_negative("margin", margin=margin)
    e = upcast(embeddings)
    a, p, n = triplets[:, 0], triplets[:, 1], triplets[:, 2]
    d_ap = jnp.sqrt(jnp.sum(jnp.square(e[a] - e[p]), axis=-1) + 1e-8)
    d_an = jnp.sqrt(jnp.sum(jnp.square(e[a] - e[n]), axis=-1) + 1e-8)
    b = upcast(beta)[labels[a]]
    valid = jnp.ones(triplets.shape[0], bool) if valid is None else valid
    return jax.nn.relu(d_ap - b + margin), jax.nn.relu(b - d_an + margin), valid


def margin(embeddings: jax.Array, labels: jax.Array, triplets: jax.Array, beta: jax.Array, *, margin: float = 0.2,
           valid: jax.Array | None = None) -> jax.Array:
    """Margin loss (Wu et al., ICCV 2017) with a learnable boundary beta per class, Roth's criterion.

    For each triplet (a, p, n): d_ap = sqrt(||x_a - x_p||^2 + 1e-8), d_an likewise (so d_aa = 1e-4),
    beta_t = beta[y_a]; l+ = relu(d_ap - beta_t + margin), l- = relu(beta_t - d_an + margin).
    Loss = sum(l+ + l-) / (number of triplets with any active term), 0 when none is active (reference:
    MLforHealth/S2SD criteria/margin.py). PML's MarginLoss divides by the number of active terms,
    #(l+ > 0) + #(l- > 0), and has no 1e-8 in the distance. `margin_statistics` counts what was active.

    Args:
      triplets: int [T, 3] rows of (anchor, positive, negative) batch indices (from a miner).
      beta: [num_classes], indexed by the anchor's label; its gradient flows back into beta.
      margin: >= 0.
      valid: optional [T] bool; rows that are False contribute nothing (anchors a miner found no triplet for).
    Returns:
      Scalar.
    """
    pos_loss, neg_loss, valid = _margin_terms(embeddings, labels, triplets, beta, margin, valid)
    count = jnp.sum(((pos_loss > 0) | (neg_loss > 0)) & valid)
    total = jnp.sum(jnp.where(valid, pos_loss + neg_loss, 0.0))
    return jnp.where(count > 0, total / jnp.maximum(count, 1), 0.0)


def margin_statistics(embeddings: jax.Array, labels: jax.Array, triplets: jax.Array, beta: jax.Array, *,
                      margin: float = 0.2, valid: jax.Array | None = None) -> dict:
    """What `margin` found active: {'active_triplets': count, 'fraction_nonzero': count / valid triplets}."""
    pos_loss, neg_loss, valid = _margin_terms(embeddings, labels, triplets, beta, margin, valid)
    count = jnp.sum(((pos_loss > 0) | (neg_loss > 0)) & valid)
    return {"active_triplets": count.astype(jnp.float32), "fraction_nonzero": count / jnp.maximum(jnp.sum(valid), 1)}


def proxy_anchor(embeddings: jax.Array, labels: jax.Array, proxies: jax.Array, *, alpha: float = 32.0,
                 delta: float = 0.1) -> jax.Array:
    """ProxyAnchor (Kim et al., CVPR 2020) as Roth's "oproxy" (mode 'anchor'), proxies L2-normalised on use.

    s_ic = x_i . p^_c. Positive term: for every batch column j (the proxy of y_j),
    softplus(log sum_{i: y_i = y_j} exp(-alpha (s_{i, y_j} - delta))), averaged over the B columns, so each present
    proxy weighs as many times as its class appears. Negative term: for every proxy c with at least one negative,
    softplus(log sum_{i: y_i != c} exp(alpha (s_ic + delta))), averaged over those proxies. PML's ProxyAnchorLoss
    averages the positive term over the distinct positive proxies instead (equal when every class appears equally
    often, e.g. 2 samples each).
    """
    check_positive("proxy_anchor", alpha=alpha)
    check_non_negative("proxy_anchor", delta=delta)
    _check_labels_within(labels, proxies.shape[0], "proxy_anchor")
    e = upcast(embeddings)
    p = upcast(proxies)
    p = p / jnp.linalg.norm(p, axis=-1, keepdims=True)
    s = e @ p.T                                                              # [B, C]
    column = s[:, labels].T                                                  # [j, i] = s_{i, y_j}
    same = labels[:, None] == labels[None, :]
    pos = jax.nn.softplus(jax.nn.logsumexp(jnp.where(same, -alpha * (column - delta), -jnp.inf), axis=1))
    neg_mask = labels[:, None] != jnp.arange(p.shape[0])[None, :]            # [B, C]
    neg_lse = jax.nn.logsumexp(jnp.where(neg_mask, alpha * (s + delta), -jnp.inf), axis=0)
    has_neg = jnp.any(neg_mask, axis=0)
    neg = jnp.sum(jnp.where(has_neg, jax.nn.softplus(jnp.where(has_neg, neg_lse, 0.0)), 0.0)) / \
        jnp.maximum(jnp.sum(has_neg), 1)
    return jnp.mean(pos) + neg
