"""VID's regressor and per-channel variance (Ahn et al., CVPR 2019; reference: HobbitLong/RepDistiller distiller_zoo/VID.py).

mu(.) = conv1x1(s -> t) - ReLU - conv1x1(t -> t) - ReLU - conv1x1(t -> t), no bias, no BN. The variance parameter
alpha is initialised to log(exp(init_var - eps) - 1) so that softplus(alpha) + eps = init_var. With
`learn_variance=False` (mdistiller, whose log-scales are never registered) alpha is a constant, not a parameter.
"""
import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from kdjax.models import layers


class VIDRegressor(nn.Module):
    features: int  # teacher channels
    init_var: float = 5.0
    eps: float = 1e-5
    learn_variance: bool = True

    @nn.compact
    def __call__(self, x):
        conv = lambda: nn.Conv(self.features, (1, 1), use_bias=False, kernel_init=layers.torch_default_conv)
        mean = conv()(nn.relu(conv()(nn.relu(conv()(x)))))
        alpha0 = float(np.log(np.expm1(self.init_var - self.eps)))
        if self.learn_variance:
            alpha = self.param("log_scale", nn.initializers.constant(alpha0), (self.features,))
        else:
            alpha = jnp.full((self.features,), alpha0, jnp.float32)
        return mean, alpha
