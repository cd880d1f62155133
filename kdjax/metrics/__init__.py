"""Evaluation metrics beyond top-1 (retrieval for deep metric learning)."""
from kdjax.metrics.retrieval import nearest_neighbors, recall_at_k

__all__ = ["nearest_neighbors", "recall_at_k"]
