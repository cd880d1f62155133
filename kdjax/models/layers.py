"""Layer constructors shared by the model zoo, with PyTorch-equivalent constants.

Convolutions go through `kdjax.ops.conv_general_dilated` (GEMM forms for XLA:CPU's slow cases, XLA's convolution
everywhere else).
Padding is explicit (torch `padding=k//2`): flax 'SAME' pads stride-2 convolutions asymmetrically (0 before,
1 after), which would shift every downsampled feature map relative to the PyTorch references and break weight
conversion.
"""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from kdjax import ops

# torch kaiming_normal_(mode='fan_out', nonlinearity='relu'): untruncated normal, std = sqrt(2 / fan_out).
kaiming_fan_out = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
# torch nn.Linear default kernel init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
torch_linear_kernel = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


class TorchLinear(nn.Module):
    """nn.Dense with torch nn.Linear's default init for the bias too, U(+-1/sqrt(fan_in)) (flax's bias initialisers
    do not see fan_in). Parameters `kernel` [in, out] and `bias` [out], as nn.Dense."""
    features: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        fan_in = x.shape[-1]
        kernel = self.param("kernel", torch_linear_kernel, (fan_in, self.features))
        bound = 1.0 / fan_in ** 0.5
        bias = self.param("bias", lambda key, shape: jax.random.uniform(key, shape, minval=-bound, maxval=bound),
                          (self.features,))
        return (x.astype(self.dtype) @ kernel.astype(self.dtype) + bias.astype(self.dtype))


def conv(features: int, kernel: int = 3, stride: int = 1, *, use_bias: bool = False, groups: int = 1,
         kernel_init=kaiming_fan_out, dtype=jnp.float32, name=None) -> nn.Conv:
    pad = kernel // 2
    return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding=((pad, pad), (pad, pad)),
                   use_bias=use_bias, feature_group_count=groups, kernel_init=kernel_init, dtype=dtype,
                   conv_general_dilated=ops.conv_general_dilated, name=name)


def bn_affine(bn: nn.BatchNorm) -> tuple:
    """(scale, bias) of an applied BatchNorm: the teacher-side input of OFD's margins (tap `preact_bn`)."""
    return bn.variables["params"]["scale"], bn.variables["params"]["bias"]


def bn_train(train: bool, frozen_bn: bool) -> bool:
    """Whether BatchNorm uses (and updates) batch statistics. `frozen_bn`: never, in training too (running
    statistics always, affine parameters still trained), as the deep-metric-learning ResNets of Roth et al."""
    return train and not frozen_bn


def batch_norm(train: bool, *, dtype=jnp.float32, name=None) -> nn.BatchNorm:
    # torch BN: eps 1e-5, running-stat momentum 0.1 (= flax momentum 0.9). flax updates running_var with the
    # biased batch variance, torch with the unbiased one; only running statistics differ.
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype, name=name)


def scaled(width: int, multiplier: float) -> int:
    return max(1, int(round(width * multiplier)))


global_avg_pool = functools.partial(jnp.mean, axis=(1, 2))


def classifier(x, num_classes: int, **dense_kw):
    """The final Dense layer; `num_classes=0` leaves it out and returns `x` (a headless backbone for embedding
    models). Called inside a compact `__call__`, so the layer keeps its automatic name (`Dense_0`)."""
    return nn.Dense(num_classes, **dense_kw)(x) if num_classes else x
# torch's default Conv2d/Linear init, kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)): models without their own
# init (the ShuffleNets) use it.
torch_default_conv = torch_linear_kernel


def channel_shuffle(x, groups: int):
    """ShuffleNet's channel shuffle in NHWC: channel g*(C/g)+j moves to j*g+g (torch view/permute order)."""
    n, h, w, c = x.shape
    return x.reshape(n, h, w, groups, c // groups).swapaxes(3, 4).reshape(n, h, w, c)


def max_pool_2x2(x):
    """2x2 / stride-2 max-pool (odd trailing rows/columns dropped, like torch's floor mode) without XLA's
    select-and-scatter gradient, which is ~5x slower on CPU: the output is a nested `where` over the window's four
    elements, so the gradient goes to the first maximum in row-major window order, as torch's `max_pool2d` (argmax)
    and `nn.max_pool` do. Ties are not rare: a constant image background gives equal positive activations in a
    window, and a gradient shared among them instead changes input gradients, so Jacobian penalties (the 15% lower
    Jacobian norm a shared-gradient version gave on Fashion-MNIST at initialisation)."""
    n, h, w, c = x.shape
    windows = x[:, :h // 2 * 2, :w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c)
    x00, x01, x10, x11 = (windows[:, :, i, :, j] for i, j in ((0, 0), (0, 1), (1, 0), (1, 1)))
    top = jax.lax.stop_gradient(jnp.maximum(jnp.maximum(x00, x01), jnp.maximum(x10, x11)))
    return jnp.where(x00 == top, x00, jnp.where(x01 == top, x01, jnp.where(x10 == top, x10, x11)))


def global_max_pool(x):
    """Max over H and W of [N, H, W, C] -> [N, C], with the gradient going to the first maximum in row-major order,
    as torch's `AdaptiveMaxPool2d(1)` (argmax) does; `jnp.max` splits a tied window's gradient evenly instead, and
    ties are common after a ReLU (equal zeros, saturated backgrounds)."""
    n, h, w, c = x.shape
    flat = x.reshape(n, h * w, c)
    first = jax.lax.stop_gradient(jnp.argmax(flat, axis=1))  # argmax returns the first of tied maxima
    return jnp.take_along_axis(flat, first[:, None, :], axis=1)[:, 0]
