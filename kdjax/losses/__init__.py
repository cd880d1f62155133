"""Pure JAX loss functions: arrays in, scalar out, usable under jit/grad/vmap.

No Flax, no configs. Teacher arrays are not stop-gradient'ed here; the caller decides which side is constant.
"""
from kdjax.losses.logits import cross_entropy, kd, logit_mse

__all__ = ["cross_entropy", "kd", "logit_mse"]
