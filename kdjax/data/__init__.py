"""Input pipelines: sources (TFDS or offline) and the deterministic, sharded tf.data pipeline."""
from kdjax.data.pipeline import NORMALIZATION, Pipeline, few_shot_indices, normalization_for
from kdjax.data.sources import OFFLINE_NAMES, get_source

__all__ = ["NORMALIZATION", "OFFLINE_NAMES", "Pipeline", "few_shot_indices", "get_source", "normalization_for"]
