"""Evaluation metrics beyond top-1: retrieval (Recall@K, MAP@R, Roth's mAP) and embedding-space geometry (NMI,
pi_ratio, spectral decay). Neighbour search is exact and chunked; no N x N matrix is formed."""
from kdjax.metrics.embedding_space import embedding_density, kmeans_assignments, nmi, spectral_decay
from kdjax.metrics.retrieval import map_at_r, nearest_neighbors, recall_at_k, retrieval_metrics, roth_map

__all__ = ["embedding_density", "kmeans_assignments", "map_at_r", "nearest_neighbors", "nmi", "recall_at_k",
           "retrieval_metrics", "roth_map", "spectral_decay"]
