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


# ---- MAP@R, Roth's mAP, NMI, density, spectral decay ----------------------------------------------------------------
def _clustered(n=300, classes=12, dim=8, seed=0, singleton=True):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    if singleton:
        labels[0] = classes  # a class with one member
    centres = rng.normal(size=(classes + 1, dim))
    x = centres[labels] + 0.9 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def _ranking(x, labels):
    """Brute force, float64: each query's other items by distance (stable ties by index)."""
    d = np.sum((x[:, None].astype(np.float64) - x[None]) ** 2, -1)
    np.fill_diagonal(d, np.inf)
    order = np.argsort(d, axis=1, kind="stable")[:, :-1]
    return labels[order] == labels[:, None]


def test_map_at_r_against_brute_force():
    x, labels = _clustered()
    rel = _ranking(x, labels)
    aps = []
    for q in range(len(labels)):
        r = np.sum(labels == labels[q]) - 1
        if r == 0:
            continue  # PML leaves out queries alone in their class
        hits = rel[q, :r]
        aps.append(np.sum(np.cumsum(hits) / np.arange(1, r + 1) * hits) / r)
    np.testing.assert_allclose(metrics.map_at_r(x, labels, chunk=64), np.mean(aps), rtol=1e-6)


@pytest.mark.parametrize("r", [50, "class", 10_000])
def test_roth_map_against_its_definition(r):
    x, labels = _clustered(seed=1)
    rel = _ranking(x, labels)
    aps = []
    for q in range(len(labels)):
        n_c = np.sum(labels == labels[q])
        depth = min(n_c if r == "class" else r, len(labels) - 1)
        hits = rel[q, :depth]
        aps.append(np.sum(np.cumsum(hits) / np.arange(1, depth + 1) * hits) / n_c)
    np.testing.assert_allclose(metrics.roth_map(x, labels, r=r, chunk=64), np.mean(aps), rtol=1e-6)
    with pytest.raises(ValueError, match="r='all'; valid: a positive int or 'class'"):
        metrics.roth_map(x, labels, r="all")


def test_retrieval_metrics_from_one_search_equal_the_separate_metrics():
    x, labels = _clustered(seed=3)
    got = metrics.retrieval_metrics(x, labels, ks=(1, 4), map_at_r=True, roth_map_r=50)
    assert got == {"recall@1": metrics.recall_at_k(x, labels, (1,))[1],
                   "recall@4": metrics.recall_at_k(x, labels, (4,))[4],
                   "map_at_r": metrics.map_at_r(x, labels), "map@50": metrics.roth_map(x, labels, r=50)}
    assert set(metrics.retrieval_metrics(x, labels, ks=(2,), map_at_r=False, roth_map_r=None)) == {"recall@2"}
    with pytest.raises(ValueError, match="r=True; valid: a positive int or 'class'"):
        metrics.roth_map(x, labels, r=True)


def test_nmi_is_sklearn_nmi_of_the_kmeans_clusters():
    from sklearn.metrics import normalized_mutual_info_score
    x, labels = _clustered(seed=2, singleton=False)
    clusters = metrics.kmeans_assignments(x, 12, seed=3)
    assert len(np.unique(clusters)) == 12
    np.testing.assert_allclose(metrics.nmi(x, labels, seed=3),
                               normalized_mutual_info_score(labels, clusters, average_method="arithmetic"))
    separated = np.repeat(np.eye(4, dtype=np.float32), 10, axis=0)
    assert metrics.nmi(separated, np.repeat(np.arange(4), 10)) == pytest.approx(1.0)


def test_embedding_density_against_pairwise_cosine_distances():
    from scipy.spatial.distance import cdist
    x, labels = _clustered(n=120, seed=3)
    intra = []
    for c in np.unique(labels):
        members = x[labels == c]
        if len(members) > 1:
            d = cdist(members, members, "cosine")
            intra.append(d.sum() / (len(members) ** 2 - len(members)))
    centres = np.stack([x[labels == c].mean(0) for c in np.unique(labels)])
    dc = cdist(centres, centres, "cosine")
    inter = dc.sum() / (len(centres) ** 2 - len(centres))
    np.testing.assert_allclose(metrics.embedding_density(x, labels), np.mean(intra) / inter, rtol=1e-5)


def test_spectral_decay_against_the_svd():
    x, _ = _clustered(n=200, dim=16, seed=4)
    s = np.linalg.svd(x.astype(np.float64), compute_uv=False)[3:]
    p = s / s.sum()
    np.testing.assert_allclose(metrics.spectral_decay(x, drop=3), np.sum(np.log((1 / len(p)) / p)) / len(p),
                               rtol=1e-6)
    isotropic = np.concatenate([np.eye(16)] * 4).astype(np.float32)  # equal singular values
    assert metrics.spectral_decay(isotropic, drop=3) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parity
def test_pml_parity_recall_and_map_at_r():
    pytest.importorskip("torch")
    pytest.importorskip("pytorch_metric_learning")
    import torch
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import CustomKNN
    x, labels = _clustered(n=400, seed=5, singleton=False)
    # PML's default neighbour search needs faiss, which its wheel does not pull in; an exact torch k-NN with the
    # same (Euclidean) ordering keeps the comparison without it.
    knn = CustomKNN(LpDistance(normalize_embeddings=False))
    xt, lt = torch.from_numpy(np.asarray(x)), torch.from_numpy(np.asarray(labels))
    scores = AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r"), k="max_bin_count",
                                knn_func=knn).get_accuracy(xt, lt, xt, lt, ref_includes_query=True)
    assert metrics.recall_at_k(x, labels, (1,))[1] == pytest.approx(scores["precision_at_1"], abs=1e-6)
    assert metrics.map_at_r(x, labels) == pytest.approx(scores["mean_average_precision_at_r"], abs=1e-5)
