"""CRD's embedding head (Tian et al., ICLR 2020; reference: HobbitLong/RepDistiller crd/criterion.py Embed): Linear(d -> 128)
with bias, then L2 normalisation. The reference divides by ||x|| without eps; here x / max(||x||, 1e-12) with a
norm whose gradient at 0 is 0, so an all-zero row (zero features through a zero bias) gives 0, not NaN. Identical
everywhere else."""
import flax.linen as nn
import jax.numpy as jnp

from kdjax.losses.common import safe_norm
from kdjax.models import layers


class Embed(nn.Module):
    features: int = 128

    @nn.compact
    def __call__(self, x):
        x = nn.Dense(self.features, kernel_init=layers.torch_linear_kernel)(x.reshape(x.shape[0], -1))
        return x / jnp.maximum(safe_norm(x, axis=1, keepdims=True), 1e-12)
