"""Pure JAX loss functions: arrays in, scalar out, usable under jit/grad/vmap.

No Flax, no configs. Teacher arrays are not stop-gradient'ed here; the caller decides which side is constant.
"""
from kdjax.losses.features import adaptive_avg_pool, attention_transfer
from kdjax.losses.jacobian import (attention_jacobian_matching, attention_map, input_gradients, jacobian_matching,
                                   jacobian_matching_jvp, jacobian_norm_penalty)
from kdjax.losses.logits import cross_entropy, kd, logit_mse

__all__ = [
    "adaptive_avg_pool", "attention_jacobian_matching", "attention_map", "attention_transfer", "cross_entropy",
    "input_gradients", "jacobian_matching", "jacobian_matching_jvp", "jacobian_norm_penalty", "kd", "logit_mse",
]
