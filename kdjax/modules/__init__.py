"""Trainable parts of distillation methods (Flax), owned by the student side: optimised, weight-decayed and
checkpointed with the student (the train state's `params['terms']`), never with the teacher."""
from kdjax.modules.conv_reg import ConvReg
from kdjax.modules.embed import Embed
from kdjax.modules.ofd_connector import OFDConnector
from kdjax.modules.review_abf import ReviewABFs, nearest_resize
from kdjax.modules.target_mlp import TargetMLP
from kdjax.modules.vid_regressor import VIDRegressor

__all__ = ["ConvReg", "Embed", "OFDConnector", "ReviewABFs", "TargetMLP", "VIDRegressor", "nearest_resize"]
