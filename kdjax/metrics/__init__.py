"""Evaluation metrics beyond top-1: retrieval (Recall@K, MAP@R, Roth's mAP), embedding-space geometry (NMI,
pi_ratio, spectral decay), multi-label classification (mAP, OF1, CF1) and the spread of soft labels. Neighbour search is exact and chunked; no
N x N matrix is formed."""
from kdjax.metrics.embedding_space import embedding_density, kmeans_assignments, nmi, spectral_decay
from kdjax.metrics.multilabel import average_precision, label_statistics, multilabel_scores
from kdjax.metrics.retrieval import map_at_r, nearest_neighbors, recall_at_k, retrieval_metrics, roth_map
from kdjax.metrics.soft_labels import soft_label_diversity

__all__ = ["average_precision", "embedding_density", "kmeans_assignments", "label_statistics", "map_at_r",
           "multilabel_scores", "nearest_neighbors", "nmi", "recall_at_k", "retrieval_metrics", "roth_map",
           "soft_label_diversity", "spectral_decay"]
