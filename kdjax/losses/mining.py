"""Triplet miners of Roth et al.'s Revisiting-DML code (reference: MLforHealth/S2SD batchminer/distance.py,
rho_distance.py): one (anchor, positive, negative) per anchor, drawn on stop-gradient embeddings.

Returns `(triplets int32 [B, 3], valid bool [B])`; an anchor the miner finds no triplet for (no negative in the batch,
or, for the rho miner, no other member of its class) is marked invalid, so the margin loss ignores it. Random draws
come from a JAX key: the distribution is the reference's, the values are not numpy's.
"""
import jax
import jax.numpy as jnp

MAX_DISTANCE = 2.0 - 1e-6  # antipodal unit vectors (D = 2) would give log(1 - D^2 / 4) = -inf


def _distances(e, floor):
    sq = jnp.sum(e * e, axis=1)
    return jnp.sqrt(jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * e @ e.T, floor))


def distance_log_weights(embeddings: jax.Array, labels: jax.Array, *, lower_cutoff: float = 0.5,
                         upper_cutoff: float | None = None, distance_floor: float = 0.0) -> jax.Array:
    """Unnormalised log sampling weights of negatives [B, B], -inf on same-class entries (Wu et al. 2017, Roth's
    code): with D = max(||x_i - x_j||, lower_cutoff) (clipped at 2 - 1e-6), n = embedding dim,
    log w = (2 - n) log D - ((n - 3) / 2) log(1 - D^2 / 4), the inverse of the unit sphere's distance density.
    `upper_cutoff` (PML's nonzero_loss_cutoff; Roth's code does not apply one) zeroes negatives with D >= it."""
    e = jax.lax.stop_gradient(embeddings.astype(jnp.float32))
    n = e.shape[1]
    d = jnp.clip(_distances(e, distance_floor), lower_cutoff, MAX_DISTANCE)
    log_w = (2.0 - n) * jnp.log(d) - (n - 3.0) / 2.0 * jnp.log(1.0 - d * d / 4.0)
    negative = labels[:, None] != labels[None, :]
    if upper_cutoff is not None:
        negative &= _distances(e, distance_floor) < upper_cutoff
    # Roth subtracts the row max over all entries (same-class entries set to 0 first) before exponentiating; the
    # normalised weights do not depend on that shift
    return jnp.where(negative, log_w, -jnp.inf)


def distance_weights(embeddings: jax.Array, labels: jax.Array, *, lower_cutoff: float = 0.5,
                     upper_cutoff: float | None = None) -> jax.Array:
    """Row-stochastic negative-sampling probabilities [B, B] (0 on same-class entries; an all-zero row when an
    anchor has no eligible negative)."""
    log_w = distance_log_weights(embeddings, labels, lower_cutoff=lower_cutoff, upper_cutoff=upper_cutoff)
    has = jnp.any(jnp.isfinite(log_w), axis=1, keepdims=True)
    return jnp.where(has, jax.nn.softmax(jnp.where(has, log_w, 0.0), axis=1), 0.0) * jnp.isfinite(log_w)


def _random_positive(key, labels):
    """A uniformly drawn other member of each anchor's class; the anchor itself when it is alone in the batch."""
    b = labels.shape[0]
    others = (labels[:, None] == labels[None, :]) & ~jnp.eye(b, dtype=bool)
    has = jnp.any(others, axis=1)
    draw = jax.random.categorical(key, jnp.where(others, 0.0, -jnp.inf), axis=1)
    return jnp.where(has, draw, jnp.arange(b)), has


def distance_weighted_triplets(key: jax.Array, embeddings: jax.Array, labels: jax.Array, *,
                               lower_cutoff: float = 0.5, upper_cutoff: float | None = None):
    """One triplet per anchor: a random other member of its class as positive (itself if alone), a negative drawn
    from `distance_weights` (Roth's "distance" miner)."""
    k_pos, k_neg = jax.random.split(key)
    log_w = distance_log_weights(embeddings, labels, lower_cutoff=lower_cutoff, upper_cutoff=upper_cutoff)
    has_negative = jnp.any(jnp.isfinite(log_w), axis=1)
    negative = jax.random.categorical(k_neg, jnp.where(has_negative[:, None], log_w, 0.0), axis=1)
    positive, _ = _random_positive(k_pos, labels)
    triplets = jnp.stack([jnp.arange(labels.shape[0]), positive, negative], axis=1).astype(jnp.int32)
    return triplets, has_negative


def rho_distance_triplets(key: jax.Array, embeddings: jax.Array, labels: jax.Array, *, p_switch: float,
                          lower_cutoff: float = 0.5):
    """Roth's rho-distance miner ("regularised margin"): only anchors whose class has another member in the batch
    get a triplet; with probability p_switch it is (a, a, p') with p' a random other member of the class (a
    positive plays the negative, pushing that pair apart), otherwise a distance-weighted triplet (distances floored
    at sqrt(1e-4) before the lower cutoff)."""
    k_pos, k_neg, k_switch = jax.random.split(key, 3)
    log_w = distance_log_weights(embeddings, labels, lower_cutoff=lower_cutoff, distance_floor=1e-4)
    has_negative = jnp.any(jnp.isfinite(log_w), axis=1)
    negative = jax.random.categorical(k_neg, jnp.where(has_negative[:, None], log_w, 0.0), axis=1)
    positive, has_positive = _random_positive(k_pos, labels)
    switch = jax.random.bernoulli(k_switch, p_switch, labels.shape)
    anchors = jnp.arange(labels.shape[0])
    triplets = jnp.stack([anchors, jnp.where(switch, anchors, positive), jnp.where(switch, positive, negative)],
                         axis=1).astype(jnp.int32)
    return triplets, has_positive & (switch | has_negative)
