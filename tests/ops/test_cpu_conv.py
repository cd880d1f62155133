"""kdjax.ops.cpu_conv: the im2col-VJP convolution has the plain XLA convolution's values, gradients and JVPs
(float64, so agreement is to rounding), for the strides, paddings and feature groups the model zoo uses."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from kdjax.ops import cpu_conv

DN = ("NHWC", "HWIO", "NHWC")


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64():
        yield


# (input NHWC, kernel HWIO, stride, padding, groups): 3x3 same/stride 2, 1x1 shortcut stride 2, 7x7/2 stem,
# grouped 1x1 (ShuffleV1), depthwise 3x3 stride 2 (MobileNetV2 / ShuffleNets), 2x2 valid (FitNet ConvReg), odd sizes.
CASES = [
    ((2, 8, 8, 4), (3, 3, 4, 6), 1, ((1, 1), (1, 1)), 1),  # dense, ordinary maps: XLA's own path
    ((2, 9, 9, 4), (3, 3, 4, 5), 2, ((1, 1), (1, 1)), 1),
    ((2, 8, 8, 4), (1, 1, 4, 8), 2, ((0, 0), (0, 0)), 1),
    ((1, 16, 16, 3), (7, 7, 3, 4), 2, ((3, 3), (3, 3)), 1),
    ((2, 6, 6, 6), (1, 1, 2, 9), 1, ((0, 0), (0, 0)), 3),
    ((2, 7, 7, 6), (3, 3, 1, 6), 2, ((1, 1), (1, 1)), 6),
    ((2, 5, 5, 3), (2, 2, 3, 4), 1, ((0, 0), (0, 0)), 1),
    ((3, 2, 2, 8), (3, 3, 8, 6), 1, ((1, 1), (1, 1)), 1),  # tiny maps: im2col forward and input gradient
    ((2, 2, 2, 6), (3, 3, 2, 6), 1, ((1, 1), (1, 1)), 3),
]


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, groups", CASES)
def test_values_and_gradients_equal_xla_convolution(x_shape, w_shape, stride, padding, groups):
    kx, kw, kg = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, x_shape, jnp.float64)
    w = jax.random.normal(kw, w_shape, jnp.float64)

    def plain(x, w):
        return lax.conv_general_dilated(x, w, (stride, stride), padding, dimension_numbers=DN,
                                        feature_group_count=groups)

    def ours(x, w):  # the custom-VJP core, whatever the dispatch rule picks for this shape
        return cpu_conv._conv(x, w, (stride, stride), padding, groups)
    y = plain(x, w)
    np.testing.assert_allclose(ours(x, w), y, rtol=1e-12, atol=1e-12)
    cot = jax.random.normal(kg, y.shape, jnp.float64)
    loss = lambda f: (lambda x, w: jnp.sum(f(x, w) * cot))
    for a, b in zip(jax.grad(loss(ours), (0, 1))(x, w), jax.grad(loss(plain), (0, 1))(x, w)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
    tangents = (jax.random.normal(kx, x_shape, jnp.float64), jax.random.normal(kw, w_shape, jnp.float64))
    with pytest.raises(TypeError, match="custom_vjp"):
        jax.jvp(ours, (x, w), tangents)
    dispatched = lambda x, w: cpu_conv.conv_general_dilated(x, w, (stride, stride), padding, dimension_numbers=DN,
                                                            feature_group_count=groups)
    np.testing.assert_allclose(dispatched(x, w), y, rtol=1e-12, atol=1e-12)
    with cpu_conv.xla_convolutions():  # forward mode goes through plain XLA convolutions
        np.testing.assert_allclose(jax.jvp(dispatched, (x, w), tangents)[1], jax.jvp(plain, (x, w), tangents)[1],
                                   rtol=1e-10, atol=1e-10)


def test_second_order_reverse_mode_matches_xla():
    """Double backprop (Jacobian matching): grad_w of ||grad_x f||^2 agrees."""
    x = jax.random.normal(jax.random.key(1), (2, 6, 6, 3), jnp.float64)
    w = jax.random.normal(jax.random.key(2), (3, 3, 3, 4), jnp.float64)
    pad = ((1, 1), (1, 1))

    def penalty(conv):
        def f(w):
            gx = jax.grad(lambda x: jnp.sum(jnp.tanh(conv(x, w))))(x)
            return jnp.sum(gx ** 2)
        return f
    ours = lambda x, w: cpu_conv._conv(x, w, (1, 1), pad, 1)
    plain = lambda x, w: lax.conv_general_dilated(x, w, (1, 1), pad, dimension_numbers=DN)
    np.testing.assert_allclose(jax.grad(penalty(ours))(w), jax.grad(penalty(plain))(w), rtol=1e-10)


def test_models_use_it_on_cpu():
    from kdjax import models
    model = models.get_model("vgg9", num_classes=3, width=0.125)  # its last block runs on 2x2 maps
    x = jnp.ones((1, 32, 32, 3))
    variables = model.init(jax.random.key(0), x, train=False)
    assert "custom_vjp_call" in str(jax.make_jaxpr(lambda v: model.apply(v, x, train=False))(variables))


def test_unsupported_layouts_fall_back_to_xla():
    x = jnp.ones((1, 3, 6, 6))
    w = jnp.ones((2, 3, 3, 3))
    out = cpu_conv.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW"))
    np.testing.assert_allclose(out, lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                                             dimension_numbers=("NCHW", "OIHW", "NCHW")))
