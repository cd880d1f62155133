"""Input data: random-access sources, step-keyed samplers, preprocessing ops per named view, tf.data pipelines."""
from kdjax.data.build import DATA_KEYS, Data, build, check_keys
from kdjax.data.contrast import ContrastRows, contrast_indices, negative_pools
from kdjax.data.ops import OPS
from kdjax.data.pipeline import NORMALIZATION, EvalPipeline, TrainPipeline, normalization
from kdjax.data.samplers import ClassBalancedSampler, EpochSampler, few_shot_indices
from kdjax.data.sources import OFFLINE_NAMES, Split, get_split

__all__ = ["DATA_KEYS", "NORMALIZATION", "OFFLINE_NAMES", "OPS", "ClassBalancedSampler", "ContrastRows", "Data",
           "EpochSampler", "EvalPipeline", "Split", "TrainPipeline", "build", "check_keys", "contrast_indices",
           "few_shot_indices", "get_split", "negative_pools", "normalization"]
