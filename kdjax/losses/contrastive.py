"""Contrastive losses as pure functions: CRD's (Tian et al., ICLR 2020; reference: HobbitLong/RepDistiller crd/)
and ICD's margin-gated intra-class loss with per-class caches (see `icd_intra`).

CRD's state (memory banks and normalisation constants) is a dict carried in the train state:
`{'bank_s': [N, D], 'bank_t': [N, D], 'z_s': (), 'z_t': (), 'z_set': bool}` from `crd_init_state`.
Per step: `loss, state = crd(embed_s, embed_t, state, contrast_idx)` scores against the banks *before* the update,
then `state = crd_update_memory(state, embed_s, embed_t, index)`.
"""
import jax
import jax.numpy as jnp

from kdjax.losses.common import check_positive, l2_normalize, upcast


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
    check_positive("crd", temperature=temperature)
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
    if isinstance(momentum, (int, float)) and not 0.0 <= momentum <= 1.0:
        raise ValueError(f"crd_update_memory: momentum={momentum} must lie in [0, 1]")
    def update(bank, v):
        mixed = momentum * bank[index] + (1.0 - momentum) * jax.lax.stop_gradient(upcast(v))
        mixed = mixed / jnp.linalg.norm(mixed, axis=1, keepdims=True)
        return bank.at[index].set(mixed.astype(bank.dtype))
    return dict(state, bank_s=update(state["bank_s"], embed_s), bank_t=update(state["bank_t"], embed_t))


# ---- ICD: margin-gated intra-class contrastive loss with per-class caches --------------------------------------------
def icd_margin(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """rho_x = p_y - max_{i != y} p_i with p = softmax(logits), per example [B] (ICD paper Eq. 6, Algorithm 1)."""
    p = jax.nn.softmax(upcast(logits), axis=-1)
    target = jnp.take_along_axis(p, labels[:, None], axis=-1)[:, 0]
    others = jnp.where(jax.nn.one_hot(labels, p.shape[-1], dtype=bool), -jnp.inf, p)
    return target - jnp.max(others, axis=-1)


def icd_init_cache(num_classes: int, dim: int, *, capacity: int = 8) -> dict:
    """Empty per-class pipelines: `anchors`, `positives` [C, capacity - 1, D] (L2-normalised embeddings of earlier
    qualifying samples), `count` [C] int32 (entries held; always < capacity between steps)."""
    if capacity < 2:
        raise ValueError(f"icd: capacity={capacity}; it must be >= 2 (an anchor needs another entry as negative)")
    slots = capacity - 1
    return {"anchors": jnp.zeros((num_classes, slots, dim), jnp.float32),
            "positives": jnp.zeros((num_classes, slots, dim), jnp.float32),
            "count": jnp.zeros((num_classes,), jnp.int32)}


_unit = l2_normalize


def icd_fire_plan(labels: jax.Array, qualifies: jax.Array, cache: dict) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(fires [C] bool, qualifying per class [C], rank of each qualifying sample among its class's qualifying samples
    in batch order [B]). A class fires when its cached plus current qualifying entries reach the capacity."""
    capacity = cache["anchors"].shape[1] + 1
    onehot = jax.nn.one_hot(labels, cache["count"].shape[0], dtype=jnp.int32) * qualifies[:, None].astype(jnp.int32)
    per_class = jnp.sum(onehot, axis=0)
    rank = jnp.sum((jnp.cumsum(onehot, axis=0) - onehot) * onehot, axis=1)
    return cache["count"] + per_class >= capacity, per_class, rank


def icd_intra(anchor_emb: jax.Array, positive_emb: jax.Array, labels: jax.Array, qualifies: jax.Array, cache: dict, *,
              temperature: float = 0.1) -> tuple[jax.Array, dict]:
    """Intra-class contrastive loss (ICD paper Eq. 4, gated by Eq. 7, with its per-class pipeline, Sec 3.3).

    Embeddings are L2-normalised here. Per class c with n_c cached and k_c current qualifying entries
    (`qualifies`: the margin gate, computed by the caller): if n_c + k_c >= capacity the class *fires* over all its
    n_c + k_c entries and its cache is cleared; otherwise the current entries are appended. When c fires, every entry
    e is an anchor once: -log( exp(a_e.p_e / T) / (exp(a_e.p_e / T) + sum_{j != e, j in c} exp(a_e.a_j / T)) ), its
    own positive p_e (the second view) against the anchor-view embeddings of every other entry of c, cached and
    current. Loss = mean over all anchors that fired this step; 0 when none fired. `temperature=1.0` is the literal
    Eq. 4 (the paper's f(x) with ||f(x)|| = 1).
    Cached entries come from earlier steps and are constants here (stop_gradient: the graph cannot outlive a step);
    current entries keep their gradients, as anchors, positives and negatives. No reference implementation exists;
    this follows the paper's text. Static shapes throughout (the cache is [C, capacity - 1, D]); the update is a
    one-hot contraction, not a scatter, so two views or many samples of one class write deterministically.

    Args:
      anchor_emb, positive_emb: [B, D] embeddings of the two views of each sample.
      labels: [B] class ids; qualifies: [B] bool.
      cache: from `icd_init_cache` (or a previous call).
    Returns:
      (scalar loss, new cache).
    """
    check_positive("icd_intra", temperature=temperature)
    if anchor_emb.shape != positive_emb.shape or anchor_emb.shape[:1] != labels.shape:
        raise ValueError(f"icd_intra: anchor {anchor_emb.shape}, positive {positive_emb.shape} and labels "
                         f"{labels.shape} must be [B, D], [B, D], [B]")
    if anchor_emb.shape[1] != cache["anchors"].shape[2]:
        raise ValueError(f"icd_intra: embedding dim {anchor_emb.shape[1]} != cache dim {cache['anchors'].shape[2]}")
    a, p = _unit(upcast(anchor_emb)), _unit(upcast(positive_emb))
    cached_a = jax.lax.stop_gradient(cache["anchors"])
    cached_p = jax.lax.stop_gradient(cache["positives"])
    count = cache["count"]
    num_classes, slots = count.shape[0], cached_a.shape[1]
    fires, per_class, rank = icd_fire_plan(labels, qualifies, cache)
    q = qualifies.astype(bool)
    same_class = labels[:, None] == labels[None, :]
    valid_slot = jnp.arange(slots)[None, :] < count[:, None]                                       # [C, S]

    # current anchors: positive, other current entries of the class, cached entries of the class
    fired_now = q & fires[labels]
    pos_now = jnp.sum(a * p, axis=-1) / temperature
    neg_now = (a @ a.T) / temperature
    neg_now_mask = same_class & q[None, :] & ~jnp.eye(len(labels), dtype=bool)
    neg_cache = jnp.einsum("bd,bsd->bs", a, cached_a[labels]) / temperature
    neg_cache_mask = valid_slot[labels]
    logits_now = jnp.concatenate([pos_now[:, None], jnp.where(neg_now_mask, neg_now, -jnp.inf),
                                  jnp.where(neg_cache_mask, neg_cache, -jnp.inf)], axis=1)
    loss_now = -jax.nn.log_softmax(logits_now, axis=1)[:, 0]

    # cached anchors of firing classes: own cached positive, other cached entries, current entries of the class
    pos_cached = jnp.sum(cached_a * cached_p, axis=-1) / temperature                                  # [C, S]
    neg_cc = jnp.einsum("csd,ctd->cst", cached_a, cached_a) / temperature
    neg_cc_mask = valid_slot[:, None, :] & ~jnp.eye(slots, dtype=bool)[None]
    neg_cb = jnp.einsum("csd,bd->csb", cached_a, a) / temperature
    member = (jnp.arange(num_classes)[:, None] == labels[None, :]) & q[None, :]                     # [C, B]
    logits_cached = jnp.concatenate([pos_cached[..., None], jnp.where(neg_cc_mask, neg_cc, -jnp.inf),
                                     jnp.where(member[:, None, :], neg_cb, -jnp.inf)], axis=2)
    loss_cached = -jax.nn.log_softmax(logits_cached, axis=2)[..., 0]
    fired_cached = valid_slot & fires[:, None]

    fired = jnp.sum(fired_now) + jnp.sum(fired_cached)
    total = jnp.sum(jnp.where(fired_now, loss_now, 0.0)) + jnp.sum(jnp.where(fired_cached, loss_cached, 0.0))
    loss = jnp.where(fired > 0, total / jnp.maximum(fired, 1), 0.0)

    # append the current entries of classes that did not fire, at slot count + rank
    append = q & ~fires[labels]
    target = (jax.nn.one_hot(labels, num_classes) * append[:, None])[:, :, None] * \
        jax.nn.one_hot(count[labels] + rank, slots)[:, None, :]                                       # [B, C, S]
    kept = (valid_slot & ~fires[:, None])[..., None]
    new_cache = {
        "anchors": jnp.where(kept, cached_a, 0.0) + jnp.einsum("bcs,bd->csd", target, jax.lax.stop_gradient(a)),
        "positives": jnp.where(kept, cached_p, 0.0) + jnp.einsum("bcs,bd->csd", target, jax.lax.stop_gradient(p)),
        "count": jnp.where(fires, 0, count + per_class).astype(jnp.int32),
    }
    return loss, new_cache
