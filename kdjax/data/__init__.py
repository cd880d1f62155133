"""Input pipelines: sources (TFDS or offline) and the deterministic, sharded tf.data pipeline."""
from kdjax.data.pipeline import (AUGMENT_OPS, NORMALIZATION, Pipeline, contrast_indices, few_shot_indices,
                                  negative_pools, normalization_for)
from kdjax.data.sources import OFFLINE_NAMES, get_source

__all__ = ["AUGMENT_OPS", "NORMALIZATION", "contrast_indices", "negative_pools", "OFFLINE_NAMES", "Pipeline", "few_shot_indices", "get_source", "normalization_for"]
