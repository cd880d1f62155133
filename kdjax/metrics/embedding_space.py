"""Geometry of an embedding space (Roth et al., "Revisiting Training Strategies and Generalization Performance in
Deep Metric Learning", ICML 2020, and the S2SD supplement Sec D): clustering quality (NMI), density (pi_ratio)
and spectral decay (rho). Reference: MLforHealth/S2SD metrics/{nmi,dists,rho_spectrum}.py.
"""
import numpy as np
from sklearn.metrics import normalized_mutual_info_score


KMEANS_INITS = ("random", "k-means++")


def kmeans_assignments(embeddings, num_clusters: int, *, seed: int = 0, max_iter: int = 20,
                       backend: str = "sklearn", init: str = "random") -> np.ndarray:
    """Cluster id of every embedding: L2 k-means with `num_clusters` centres, `max_iter` Lloyd iterations (the
    reference runs faiss with 20). backend 'sklearn' (deterministic from `seed`) or 'faiss' (needs faiss-cpu).
    `init` (sklearn): 'random' = k distinct embeddings drawn at random, as faiss initialises; 'k-means++' is
    sklearn's default but costs 30x the Lloyd iterations at SOP's 11,316 clusters (benchmarks/retrieval.py)."""
    x = np.ascontiguousarray(np.asarray(embeddings, np.float32))
    if init not in KMEANS_INITS:
        raise ValueError(f"kmeans init={init!r}; valid: {', '.join(map(repr, KMEANS_INITS))}")
    if backend == "sklearn":
        from sklearn.cluster import KMeans
        return KMeans(n_clusters=num_clusters, n_init=1, max_iter=max_iter, init=init,
                      random_state=seed).fit_predict(x)
    if backend == "faiss":
        import faiss
        kmeans = faiss.Clustering(x.shape[1], num_clusters)
        kmeans.niter, kmeans.seed = max_iter, seed
        kmeans.min_points_per_centroid, kmeans.max_points_per_centroid = 1, 1_000_000_000
        index = faiss.IndexFlatL2(x.shape[1])
        kmeans.train(x, index)
        return index.search(x, 1)[1][:, 0]
    raise ValueError(f"kmeans backend={backend!r}; valid: 'sklearn', 'faiss'")


def nmi(embeddings, labels, *, num_clusters: int | None = None, seed: int = 0, backend: str = "sklearn",
        max_iter: int = 20, init: str = "random") -> float:
    """Normalised mutual information between k-means clusters and labels (arithmetic mean normalisation, sklearn's
    default and the reference's). k = the number of classes in `labels` unless given (the reference uses the number
    of training classes: the same on CUB and CARS, 11,318 vs 11,316 on SOP)."""
    labels = np.asarray(labels)
    k = int(num_clusters or len(np.unique(labels)))
    clusters = kmeans_assignments(embeddings, k, seed=seed, max_iter=max_iter, backend=backend, init=init)
    return float(normalized_mutual_info_score(labels, clusters, average_method="arithmetic"))


def _unit(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def embedding_density(embeddings, labels) -> float:
    """pi_ratio = mean intra-class cosine distance / mean inter-class-centre cosine distance (S2SD supplement
    Eq. 16-18). For unit vectors, sum_{i,j in c} (1 - x_i.x_j) = n_c^2 - ||sum_{i in c} x_i||^2, so no N x N matrix
    is formed: intra = mean over classes of that / (n_c^2 - n_c); inter = (C^2 - ||sum_c mu_c||^2) / (C^2 - C) with
    mu_c the normalised class means. Classes with one member (undefined intra distance) are left out."""
    x = _unit(np.asarray(embeddings, np.float64))
    labels = np.asarray(labels)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    sums = np.zeros((len(classes), x.shape[1]))
    np.add.at(sums, inverse, x)
    n = counts.astype(np.float64)
    multi = counts > 1
    intra = np.mean((n[multi] ** 2 - np.sum(sums[multi] ** 2, axis=1)) / (n[multi] ** 2 - n[multi]))
    centres = _unit(sums / n[:, None])
    c = len(classes)
    inter = (c * c - np.sum(np.sum(centres, axis=0) ** 2)) / (c * c - c)
    return float(intra / max(inter, 1e-8))


def spectral_decay(embeddings, *, drop: int = 10) -> float:
    """rho = KL(uniform || normalised singular values) of the uncentred embedding matrix without its `drop` largest
    singular values (S2SD supplement Sec D: 10 of 128). The reference code's "@m" logs TruncatedSVD(d - 1) values
    without the m - 1 largest, so the supplement's setting is its "@11"."""
    s = np.linalg.svd(np.asarray(embeddings, np.float64), compute_uv=False)
    if drop >= len(s):
        raise ValueError(f"spectral_decay: drop={drop} leaves none of the {len(s)} singular values")
    p = s[drop:] / np.sum(s[drop:])
    u = np.full(len(p), 1.0 / len(p))
    return float(np.sum(u * np.log(u / np.maximum(p, 1e-300))))
