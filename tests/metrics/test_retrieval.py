"""Recall@K and nearest neighbours against a NumPy brute force and scikit-learn."""
import jax
import numpy as np
import pytest

from kdjax import metrics


def _data(n=300, d=8, classes=7, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    centers = rng.normal(size=(classes, d))
    return (centers[labels] + 0.8 * rng.normal(size=(n, d))).astype(np.float32), labels


def test_neighbors_match_sklearn_with_self_excluded():
    from sklearn.neighbors import NearestNeighbors
    x, _ = _data()
    ours = metrics.nearest_neighbors(x, x, 5, chunk=64, exclude_self=True)  # 300 rows: a padded last chunk
    ref = NearestNeighbors(n_neighbors=6).fit(x).kneighbors(x, return_distance=False)[:, 1:]
    assert np.mean(ours == ref) > 0.999  # float32 vs float64 may swap near-ties


@pytest.mark.parametrize("ks", [(1,), (1, 2, 4, 8)])
def test_recall_matches_numpy_brute_force(ks):
    x, y = _data(seed=1)
    d = ((x[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    order = np.argsort(d, axis=1)
    expected = {k: np.mean([np.any(y[order[i, :k]] == y[i]) for i in range(len(y))]) for k in ks}
    got = metrics.recall_at_k(x, y, ks, chunk=128)
    for k in ks:
        assert abs(got[k] - expected[k]) <= 1.0 / len(y)


@pytest.mark.parametrize("exclude_self", [True, False])
@pytest.mark.parametrize("k", [1, 5])
def test_two_level_search_equals_one_top_k_over_the_whole_gallery(monkeypatch, k, exclude_self):
    """3001 rows (94 blocks, the last one partial): the block-maxima search returns exactly the single top_k's
    neighbours, and both agree with a float64 NumPy ranking."""
    from kdjax.metrics import retrieval
    x, _ = _data(n=3001, d=16, classes=20, seed=2)
    assert 8 * (k + int(exclude_self)) <= -(-len(x) // retrieval.BLOCK)  # the two-level path is the one taken
    two_level = metrics.nearest_neighbors(x, x, k, chunk=512, exclude_self=exclude_self)
    monkeypatch.setattr(retrieval, "BLOCK", len(x))  # one block: a single top_k over each row
    jax.clear_caches()
    single = metrics.nearest_neighbors(x, x, k, chunk=512, exclude_self=exclude_self)
    jax.clear_caches()
    np.testing.assert_array_equal(two_level, single)
    d = ((x[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    assert np.mean(two_level == np.argsort(d, axis=1)[:, :k]) > 0.999  # float32 vs float64 may swap near-ties


def test_k_beyond_the_gallery_is_an_error():
    with pytest.raises(ValueError, match="k=5: must be between 1 and the 4 gallery rows"):
        metrics.nearest_neighbors(np.zeros((5, 2)), np.zeros((5, 2)), 5, exclude_self=True)


def test_shape_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"queries \(3, 4\) and gallery \(5, 2\)"):
        metrics.nearest_neighbors(np.zeros((3, 4)), np.zeros((5, 2)), 1)
