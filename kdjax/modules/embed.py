"""CRD's embedding head (RepDistiller `crd/criterion.py` Embed; spec single_label_kd.md 3.6): Linear(d -> 128)
with bias, then L2 normalisation without eps (x / ||x||, as the reference)."""
import flax.linen as nn
import jax.numpy as jnp

from kdjax.models import layers


class Embed(nn.Module):
    features: int = 128

    @nn.compact
    def __call__(self, x):
        x = nn.Dense(self.features, kernel_init=layers.torch_linear_kernel)(x.reshape(x.shape[0], -1))
        return x / jnp.sqrt(jnp.sum(jnp.square(x), axis=1, keepdims=True))
