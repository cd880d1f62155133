"""S2SD's auxiliary target branch: Linear(F -> d) -> ReLU -> Linear(d -> d) -> L2 normalisation, no BatchNorm, torch
nn.Linear default init (reference: MLforHealth/S2SD criteria/s2sd.py, the `target_nets`)."""
import flax.linen as nn
import jax

from kdjax.losses.common import l2_normalize
from kdjax.models.layers import TorchLinear


class TargetMLP(nn.Module):
    dim: int

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        z = TorchLinear(self.dim, name="fc1")(features)
        z = TorchLinear(self.dim, name="fc2")(nn.relu(z))
        return l2_normalize(z)
