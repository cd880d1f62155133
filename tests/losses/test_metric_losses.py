"""Deep-metric-learning losses and miners against NumPy restatements of Roth et al.'s criteria (Revisiting-DML /
S2SD code), edge cases, gradients, and (optional extra) pytorch-metric-learning parity."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy import stats

from kdjax import losses


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _batch(rng, labels, dim=16):
    return _unit(rng.normal(size=(len(labels), dim))).astype(np.float32), np.asarray(labels, np.int32)


# pairs of classes, one class drawn twice (4 members), one class alone
LABELS = [0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 4, 5, 5]


def ms_reference(x, y, alpha=2.0, beta=40.0, base=0.5, eps=0.1):
    """Roth's MultiSimilarity criterion restated with loops."""
    s = x @ x.T
    terms = []
    for i in range(len(y)):
        pos = [j for j in range(len(y)) if j != i and y[j] == y[i]]
        neg = [j for j in range(len(y)) if y[j] != y[i]]
        if not pos or not neg:
            continue
        min_pos, max_neg = min(s[i, pos]), max(s[i, neg])
        mp = [j for j in pos if s[i, j] - eps < max_neg]
        mn = [j for j in neg if s[i, j] + eps > min_pos]
        if not mp or not mn:
            continue
        terms.append(np.log1p(np.sum(np.exp(-alpha * (s[i, mp] - base)))) / alpha +
                     np.log1p(np.sum(np.exp(beta * (s[i, mn] - base)))) / beta)
    return float(np.mean(terms)) if terms else 0.0


def test_multi_similarity_matches_the_restatement():
    rng = np.random.default_rng(0)
    for dim in (16, 128):
        x, y = _batch(rng, LABELS, dim)
        np.testing.assert_allclose(losses.multi_similarity(x, y), ms_reference(x.astype(np.float64), y),
                                   rtol=1e-5)


def test_multi_similarity_all_skipped_is_zero_with_finite_gradient():
    rng = np.random.default_rng(1)
    x, _ = _batch(rng, range(6))  # every anchor alone in its class: no positive anywhere
    y = np.arange(6, dtype=np.int32)
    value, grad = jax.value_and_grad(losses.multi_similarity)(jnp.asarray(x), y)
    assert float(value) == 0.0 and np.all(np.isfinite(grad)) and np.all(grad == 0)
    # one class only: no negatives
    value, grad = jax.value_and_grad(losses.multi_similarity)(jnp.asarray(x), np.zeros(6, np.int32))
    assert float(value) == 0.0 and np.all(np.isfinite(grad))


def margin_reference(x, y, triplets, beta, m=0.2, valid=None):
    valid = np.ones(len(triplets), bool) if valid is None else valid
    total, active = 0.0, 0
    for (a, p, n), v in zip(triplets, valid):
        if not v:
            continue
        d_ap = np.sqrt(np.sum((x[a] - x[p]) ** 2) + 1e-8)
        d_an = np.sqrt(np.sum((x[a] - x[n]) ** 2) + 1e-8)
        lp, ln = max(d_ap - beta[y[a]] + m, 0.0), max(beta[y[a]] - d_an + m, 0.0)
        total += lp + ln
        active += (lp > 0) or (ln > 0)  # Roth's bool addition is a logical OR
    return total / active if active else 0.0, active


def test_margin_on_fixed_triplets_including_switched_ones():
    rng = np.random.default_rng(2)
    x, y = _batch(rng, LABELS, 8)
    triplets = np.array([[0, 1, 2], [2, 3, 0], [4, 5, 8], [4, 4, 5], [6, 6, 7], [10, 10, 0], [11, 12, 3]], np.int32)
    beta = rng.uniform(0.6, 1.3, 6).astype(np.float32)
    valid = np.array([1, 1, 1, 1, 1, 0, 1], bool)
    loss = losses.margin(x, y, triplets, beta, valid=valid)
    info = losses.margin_statistics(x, y, triplets, beta, valid=valid)
    expected, active = margin_reference(x.astype(np.float64), y, triplets, beta, valid=valid)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert float(info["active_triplets"]) == active
    # the anchor-anchor distance is sqrt(1e-8) = 1e-4: a switched triplet (a, a, p) pushes p away when beta > m
    grad = jax.grad(lambda e: losses.margin(e, y, triplets[3:4], beta))(jnp.asarray(x))
    assert np.any(grad[5] != 0)


def test_margin_gradients_and_label_range():
    rng = np.random.default_rng(3)
    x, y = _batch(rng, LABELS, 6)
    triplets = np.array([[0, 1, 2], [2, 3, 0], [4, 5, 8]], np.int32)
    with jax.enable_x64():
        beta = jnp.asarray(rng.uniform(0.8, 1.2, 6))
        check_grads(lambda e, b: losses.margin(e, y, triplets, b), (jnp.asarray(x, jnp.float64), beta), order=1,
                    modes=("rev",), atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="label 5 outside the 5 classes of its parameters"):
        losses.margin(x, y, triplets, jnp.ones(5))
    # every term satisfied (a duplicate positive, an antipodal negative, beta 1): 0 with a finite gradient
    e = jnp.array([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    value, grad = jax.value_and_grad(lambda v: losses.margin(v, np.array([0, 0, 1]), np.array([[0, 1, 2]]),
                                                             jnp.ones(2)))(e)
    assert float(value) == 0.0 and np.all(np.isfinite(grad))


def distance_weights_reference(x, y, cutoff=0.5):
    """Roth's distance miner weights: D = max(dist, cutoff); log w; same class 0; minus the row max; exp; zero
    same-class; normalise."""
    n = x.shape[1]
    sq = np.sum(x ** 2, 1)
    d = np.sqrt(np.maximum(sq[:, None] + sq[None] - 2 * x @ x.T, 0.0))
    d = np.clip(d, cutoff, 2 - 1e-6)
    log_w = (2 - n) * np.log(d) - (n - 3) / 2 * np.log(1 - d ** 2 / 4)
    same = y[:, None] == y[None]
    log_w[same] = 0.0
    w = np.exp(log_w - log_w.max(1, keepdims=True))
    w[same] = 0.0
    return w / w.sum(1, keepdims=True)


@pytest.mark.parametrize("dim", [8, 128])
def test_distance_weights_match_the_restatement(dim):
    rng = np.random.default_rng(4)
    x, y = _batch(rng, LABELS, dim)
    np.testing.assert_allclose(losses.distance_weights(x, y), distance_weights_reference(x.astype(np.float64), y),
                               rtol=2e-4, atol=1e-7)


def test_distance_weighted_draws_follow_the_weights():
    """10,000 draws of anchor 0's negative against its weights (chi-square), positives uniform over its class."""
    rng = np.random.default_rng(5)
    x, y = _batch(rng, LABELS, 4)
    weights = np.asarray(losses.distance_weights(x, y))[0]
    keys = jax.random.split(jax.random.key(0), 10_000)
    draw = jax.jit(jax.vmap(lambda k: losses.distance_weighted_triplets(k, x, y)[0][0]))
    triplets = np.asarray(draw(keys))
    assert np.all(triplets[:, 0] == 0) and np.all(triplets[:, 1] == 1)  # anchor 0's only positive
    counts = np.bincount(triplets[:, 2], minlength=len(y))
    support = weights > 0
    assert counts[~support].sum() == 0
    w64 = weights[support].astype(np.float64)
    expected = w64 / w64.sum() * len(triplets)
    assert stats.chisquare(counts[support], expected).pvalue > 1e-3


def test_antipodal_embeddings_stay_finite():
    x = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], np.float32)
    y = np.array([0, 1, 0, 1], np.int32)
    w = losses.distance_weights(x, y)
    assert np.all(np.isfinite(w)) and np.allclose(np.sum(w, 1), 1.0)
    triplets, valid = losses.distance_weighted_triplets(jax.random.key(0), x, y)
    assert np.all(valid)
    grad = jax.grad(lambda e: losses.margin(e, y, triplets, jnp.ones(2)))(jnp.asarray(x))
    assert np.all(np.isfinite(grad))


def test_rho_miner_switches_with_its_probability_and_skips_lonely_anchors():
    rng = np.random.default_rng(6)
    x, y = _batch(rng, LABELS, 8)
    keys = jax.random.split(jax.random.key(1), 4000)
    triplets, valid = jax.jit(jax.vmap(lambda k: losses.rho_distance_triplets(k, x, y, p_switch=0.3)))(keys)
    triplets, valid = np.asarray(triplets), np.asarray(valid)
    assert not valid[:, 10].any()  # class 4 has a single member
    switched = triplets[:, :, 1] == triplets[:, :, 0]
    rate = switched[:, [0, 1, 2, 3]].mean()
    assert abs(rate - 0.3) < 0.03
    # a switched triplet's negative is another member of the anchor's class
    a, n = triplets[switched & valid][:, 0], triplets[switched & valid][:, 2]
    assert np.all(y[a] == y[n]) and np.all(a != n)


def proxy_anchor_reference(x, y, proxies, alpha=32.0, delta=0.1):
    p = _unit(proxies)
    s = x @ p.T
    pos = [np.logaddexp(0, np.log(np.sum(np.exp(-alpha * (s[y == y[j], y[j]] - delta))))) for j in range(len(y))]
    neg = [np.logaddexp(0, np.log(np.sum(np.exp(alpha * (s[y != c, c] + delta))))) for c in range(len(p))
           if np.any(y != c)]
    return np.mean(pos) + np.mean(neg)


def test_proxy_anchor_matches_the_restatement_with_unequal_class_counts():
    rng = np.random.default_rng(7)
    x, y = _batch(rng, LABELS, 8)
    proxies = rng.normal(size=(7, 8)).astype(np.float32) / 8
    np.testing.assert_allclose(losses.proxy_anchor(x, y, proxies),
                               proxy_anchor_reference(x.astype(np.float64), y, proxies.astype(np.float64)), rtol=1e-5)
    grads = jax.grad(lambda p: losses.proxy_anchor(x, y, p))(jnp.asarray(proxies))
    assert np.all(np.isfinite(grads)) and np.any(grads[6] != 0)  # a proxy without samples still gets negatives


# ---- parity with pytorch-metric-learning (optional test extra) ---------------------------------------------------
@pytest.mark.parity
def test_pml_parity_multi_similarity_margin_proxy_anchor():
    torch = pytest.importorskip("torch")
    pml = pytest.importorskip("pytorch_metric_learning")
    from pytorch_metric_learning import losses as pml_losses, miners, reducers
    del pml
    rng = np.random.default_rng(8)
    x, y = _batch(rng, LABELS, 32)
    # PML normalises inside its distance; kdjax's losses take normalised embeddings (the model normalises): compare
    # gradients w.r.t. the same unnormalised inputs
    z = (x * rng.uniform(0.5, 2.0, (len(x), 1))).astype(np.float32)
    tx, ty = torch.tensor(z, requires_grad=True), torch.tensor(y.astype(np.int64))
    # MS: PML per-row losses re-averaged over rows with both mined sets non-empty = Roth's reduction
    a1, p, a2, n = pairs = miners.MultiSimilarityMiner(epsilon=0.1)(tx, ty)
    per_row = pml_losses.MultiSimilarityLoss(alpha=2, beta=40, base=0.5, reducer=reducers.DoNothingReducer())(
        tx, ty, pairs)["loss"]["losses"]
    valid = np.intersect1d(a1.numpy(), a2.numpy())
    ref = per_row[valid].mean()
    ref.backward()
    unit = lambda v: v / jnp.linalg.norm(v, axis=1, keepdims=True)  # noqa: E731
    value, grad = jax.value_and_grad(lambda v: losses.multi_similarity(unit(v), y))(jnp.asarray(z))
    np.testing.assert_allclose(float(value), ref.item(), rtol=1e-5)
    np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=1e-4, atol=1e-6)
    # margin on fixed triplets: the summed terms agree (the divisors differ by definition)
    triplets = np.array([[0, 1, 2], [2, 3, 0], [4, 5, 8], [6, 7, 11]], np.int64)
    beta = rng.uniform(0.9, 1.3, 6).astype(np.float32)
    margin = pml_losses.MarginLoss(margin=0.2, nu=0, beta=1.2, learn_beta=True, num_classes=6,
                                   reducer=reducers.DoNothingReducer())
    with torch.no_grad():
        margin.beta.copy_(torch.tensor(beta))
    out = margin(torch.tensor(x), ty, tuple(torch.tensor(triplets[:, i]) for i in range(3)))
    pml_sum = float(out["margin_loss"]["losses"].sum())
    ours = losses.margin(x, y, triplets.astype(np.int32), beta)
    info = losses.margin_statistics(x, y, triplets.astype(np.int32), beta)
    np.testing.assert_allclose(float(ours) * float(info["active_triplets"]), pml_sum, rtol=1e-3)
    # ProxyAnchor with exactly 2 samples per class: the two reductions coincide
    y2 = np.repeat(np.arange(6), 2).astype(np.int32)
    x2, _ = _batch(rng, y2, 32)
    proxies = rng.normal(size=(6, 32)).astype(np.float32)
    pa = pml_losses.ProxyAnchorLoss(num_classes=6, embedding_size=32, margin=0.1, alpha=32)
    with torch.no_grad():
        pa.proxies.copy_(torch.tensor(proxies))
    np.testing.assert_allclose(float(losses.proxy_anchor(x2, y2, proxies)),
                               float(pa(torch.tensor(x2), torch.tensor(y2.astype(np.int64)))), rtol=1e-4)
