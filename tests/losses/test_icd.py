"""ICD's margin and intra-class loss with per-class caches against a NumPy restatement of the paper's pipeline
(Eq. 4, 6, 7; Sec 3.3 as kdjax defines the cache: append until `capacity` entries, then fire over all and clear)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kdjax import losses


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class ReferencePipeline:
    """Per-class lists of (anchor, positive) unit vectors; one `step` per batch."""

    def __init__(self, num_classes, capacity, temperature):
        self.entries = {c: [] for c in range(num_classes)}
        self.capacity, self.t = capacity, temperature

    def step(self, a, p, labels, qualifies):
        a, p = _unit(np.asarray(a, np.float64)), _unit(np.asarray(p, np.float64))
        fired = []
        for c in self.entries:
            current = [(a[i], p[i]) for i in range(len(labels)) if qualifies[i] and labels[i] == c]
            entries = self.entries[c] + current
            if len(entries) >= self.capacity:
                for e, (ae, pe) in enumerate(entries):
                    logits = np.array([ae @ pe] + [ae @ aj for j, (aj, _) in enumerate(entries) if j != e]) / self.t
                    fired.append(-(logits[0] - np.log(np.sum(np.exp(logits)))))
                self.entries[c] = []
            else:
                self.entries[c] = entries
        return float(np.mean(fired)) if fired else 0.0, len(fired)

    def counts(self):
        return np.array([len(self.entries[c]) for c in sorted(self.entries)])


def _batch(rng, b, c, d, qualify=0.7):
    return (rng.normal(size=(b, d)).astype(np.float32), rng.normal(size=(b, d)).astype(np.float32),
            rng.integers(0, c, b).astype(np.int32), rng.random(b) < qualify)


def test_margin_is_target_probability_minus_the_best_other():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 5)).astype(np.float32) * 3
    labels = rng.integers(0, 5, 6)
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    expected = [p[i, y] - np.max(np.delete(p[i], y)) for i, y in enumerate(labels)]
    np.testing.assert_allclose(losses.icd_margin(jnp.asarray(logits), jnp.asarray(labels)), expected, rtol=1e-5,
                               atol=1e-6)


def test_zero_when_nothing_qualifies_and_the_cache_stays_empty():
    rng = np.random.default_rng(1)
    a, p, labels, _ = _batch(rng, 12, 3, 4)
    cache = losses.icd_init_cache(3, 4, capacity=4)
    loss, new = losses.icd_intra(a, p, labels, np.zeros(12, bool), cache)
    assert float(loss) == 0.0 and int(new["count"].sum()) == 0
    grad = jax.grad(lambda x: losses.icd_intra(x, p, labels, np.zeros(12, bool), cache)[0])(jnp.asarray(a))
    assert np.all(grad == 0)


@pytest.mark.parametrize("temperature", [0.1, 1.0])
def test_scripted_batches_match_the_reference_pipeline(temperature):
    """Loss, number of fired anchors and per-class counts over 12 batches; temperature 1.0 is the literal Eq. 4."""
    rng = np.random.default_rng(2)
    num_classes, dim, capacity = 4, 6, 5
    ref = ReferencePipeline(num_classes, capacity, temperature)
    cache = losses.icd_init_cache(num_classes, dim, capacity=capacity)
    step = jax.jit(lambda a, p, y, q, c: losses.icd_intra(a, p, y, q, c, temperature=temperature))
    fired_total = 0
    for _ in range(12):
        a, p, labels, qualifies = _batch(rng, 7, num_classes, dim, qualify=0.6)
        fires, per_class, _ = losses.icd_fire_plan(jnp.asarray(labels), jnp.asarray(qualifies), cache)
        loss, cache = step(a, p, labels, qualifies, cache)
        expected, fired = ref.step(a, p, labels, qualifies)
        np.testing.assert_allclose(float(loss), expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(np.asarray(cache["count"]), ref.counts())
        assert int(jnp.sum(jnp.where(fires, cache["count"] * 0 + per_class, 0))) <= fired
        fired_total += fired
    assert fired_total > 0  # the script made classes fire


def test_hand_built_cache_fires_over_cached_and_current_entries():
    """Class 0 holds 3 cached entries; 2 qualifying samples of class 0 arrive with capacity 5: all 5 entries fire,
    each against the other 4 anchors; class 1 (1 cached + 1 current) appends."""
    rng = np.random.default_rng(3)
    cache = losses.icd_init_cache(2, 3, capacity=5)
    cached_a, cached_p = _unit(rng.normal(size=(3, 3))), _unit(rng.normal(size=(3, 3)))
    cache = dict(cache, anchors=cache["anchors"].at[0, :3].set(cached_a).at[1, 0].set(cached_a[0]),
                 positives=cache["positives"].at[0, :3].set(cached_p).at[1, 0].set(cached_p[0]),
                 count=jnp.array([3, 1], jnp.int32))
    a, p = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(4, 3)).astype(np.float32)
    labels, qualifies = np.array([0, 1, 0, 1]), np.array([True, True, True, False])
    loss, new = losses.icd_intra(a, p, labels, qualifies, cache, temperature=0.5)
    entries = list(zip(cached_a, cached_p)) + [(_unit(a[0]), _unit(p[0])), (_unit(a[2]), _unit(p[2]))]
    expected = []
    for e, (ae, pe) in enumerate(entries):
        logits = np.array([ae @ pe] + [ae @ aj for j, (aj, _) in enumerate(entries) if j != e]) / 0.5
        expected.append(-logits[0] + np.log(np.exp(logits).sum()))
    np.testing.assert_allclose(float(loss), np.mean(expected), rtol=1e-5)
    np.testing.assert_array_equal(new["count"], [0, 2])
    np.testing.assert_allclose(new["anchors"][1, 1], _unit(a[1]), rtol=1e-6)  # appended after the cached entry
    np.testing.assert_allclose(new["positives"][1, 1], _unit(p[1]), rtol=1e-6)


def test_no_gradient_reaches_cached_entries_but_current_ones_get_it():
    rng = np.random.default_rng(4)
    cache = losses.icd_init_cache(2, 4, capacity=3)
    cache = dict(cache, anchors=cache["anchors"].at[0, :2].set(rng.normal(size=(2, 4))),
                 positives=cache["positives"].at[0, :2].set(rng.normal(size=(2, 4))),
                 count=jnp.array([2, 0], jnp.int32))
    a, p = rng.normal(size=(2, 4)).astype(np.float32), rng.normal(size=(2, 4)).astype(np.float32)
    labels, qualifies = np.array([0, 1]), np.array([True, True])
    fn = lambda a_, p_, ca, cp: losses.icd_intra(a_, p_, labels, qualifies,  # noqa: E731
                                                 dict(cache, anchors=ca, positives=cp))[0]
    g_a, g_p, g_ca, g_cp = jax.grad(fn, argnums=(0, 1, 2, 3))(jnp.asarray(a), jnp.asarray(p), cache["anchors"],
                                                              cache["positives"])
    g_cache = {"anchors": g_ca, "positives": g_cp}
    assert float(fn(a, p, cache["anchors"], cache["positives"])) > 0
    assert np.all(np.asarray(g_cache["anchors"]) == 0) and np.all(np.asarray(g_cache["positives"]) == 0)
    assert np.any(g_a[0] != 0) and np.any(g_p[0] != 0)   # the firing class's current entry
    assert np.all(g_a[1] == 0)                           # class 1 only appended: no loss term for it yet


def test_invariant_to_the_order_of_samples_within_a_class():
    rng = np.random.default_rng(5)
    a, p, labels, qualifies = _batch(rng, 10, 2, 5, qualify=1.0)
    order = rng.permutation(10)
    later = _batch(rng, 10, 2, 5, qualify=1.0)
    results = []
    for perm in (np.arange(10), order):
        cache = losses.icd_init_cache(2, 5, capacity=7)
        first, cache = losses.icd_intra(a[perm], p[perm], labels[perm], qualifies[perm], cache)
        second, cache = losses.icd_intra(*later, cache)
        results.append((float(first), float(second)))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5)


def test_bad_inputs_are_errors():
    with pytest.raises(ValueError, match="capacity=1; it must be >= 2"):
        losses.icd_init_cache(3, 4, capacity=1)
    cache = losses.icd_init_cache(3, 4)
    with pytest.raises(ValueError, match="embedding dim 5 != cache dim 4"):
        losses.icd_intra(np.zeros((2, 5)), np.zeros((2, 5)), np.zeros(2, int), np.ones(2, bool), cache)
