"""Input data: random-access sources, step-keyed samplers, preprocessing ops per named view, tf.data pipelines."""
from kdjax.data.build import Data, build
from kdjax.data.contrast import ContrastRows, contrast_indices, negative_pools
from kdjax.data.ops import OPS
from kdjax.data.pipeline import NORMALIZATION, EvalPipeline, TrainPipeline, normalization
from kdjax.data.samplers import SAMPLERS, ClassBalancedSampler, EpochSampler, few_shot_indices
from kdjax.data.sources import DATASETS, Split, get_split

__all__ = ["DATASETS", "NORMALIZATION", "OPS", "SAMPLERS", "ClassBalancedSampler", "ContrastRows", "Data",
           "EpochSampler", "EvalPipeline", "Split", "TrainPipeline", "build", "contrast_indices", "few_shot_indices",
           "get_split", "negative_pools", "normalization"]
