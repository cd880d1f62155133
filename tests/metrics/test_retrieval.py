"""Recall@K and nearest neighbours against a NumPy brute force and scikit-learn."""
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


def test_shape_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"queries \(3, 4\) and gallery \(5, 2\)"):
        metrics.nearest_neighbors(np.zeros((3, 4)), np.zeros((5, 2)), 1)
