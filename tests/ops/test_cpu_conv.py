"""kdjax.ops.cpu_conv: its GEMM forms have the plain XLA convolution's values, gradients and JVPs (float64, so
agreement is to rounding), for the strides, paddings and feature groups the model zoo uses; the switch in
kdjax.ops turns them on for CPU only."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from kdjax import ops
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


def _plain(stride, padding, groups):
    return jax.jit(lambda x, w: lax.conv_general_dilated(x, w, (stride, stride), padding, dimension_numbers=DN,
                                                 feature_group_count=groups))


def _implementations(stride, padding, groups):
    """Each CPU path on every case (not only where the dispatch picks it), then the dispatch itself."""
    s, p = (stride, stride), padding
    impls = {"im2col": lambda x, w: cpu_conv.im2col_conv(x, w, s, p, groups),
             "grouped": lambda x, w: cpu_conv.grouped_conv(x, w, s, p, groups),
             **({"dense": lambda x, w: cpu_conv.dense_conv(x, w, s, p)} if groups == 1 else {}),
             "dispatched": lambda x, w: cpu_conv.conv_general_dilated(x, w, s, p, dimension_numbers=DN,
                                                                      feature_group_count=groups)}
    return {name: jax.jit(f) for name, f in impls.items()}  # one compile per transform, not one per primitive


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, groups", CASES)
def test_values_gradients_and_jvps_equal_xla_convolution(x_shape, w_shape, stride, padding, groups):
    kx, kw, kg = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, x_shape, jnp.float64)
    w = jax.random.normal(kw, w_shape, jnp.float64)
    plain = _plain(stride, padding, groups)
    y = plain(x, w)
    cot = jax.random.normal(kg, y.shape, jnp.float64)
    loss = lambda f: (lambda x, w: jnp.sum(f(x, w) * cot))
    expected_grads = jax.jit(jax.grad(loss(plain), (0, 1)))(x, w)
    tangents = (jax.random.normal(kx, x_shape, jnp.float64), jax.random.normal(kw, w_shape, jnp.float64))
    expected_jvp = jax.jvp(plain, (x, w), tangents)[1]
    for name, conv in _implementations(stride, padding, groups).items():
        np.testing.assert_allclose(conv(x, w), y, rtol=1e-12, atol=1e-12, err_msg=name)
        for a, b in zip(jax.jit(jax.grad(loss(conv), (0, 1)))(x, w), expected_grads):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10, err_msg=name)
        # forward mode through every path: the Jacobian-matching estimator calls jax.jvp through the models
        np.testing.assert_allclose(jax.jvp(conv, (x, w), tangents)[1], expected_jvp, rtol=1e-10, atol=1e-10,
                                   err_msg=name)


@pytest.mark.parametrize("path", ["im2col", "grouped", "dense"])
def test_second_order_reverse_mode_matches_xla(path):
    """Double backprop (Jacobian matching): grad_w of ||grad_x f||^2 agrees."""
    x = jax.random.normal(jax.random.key(1), (2, 6, 6, 3), jnp.float64)
    w = jax.random.normal(jax.random.key(2), (3, 3, 3, 4), jnp.float64)
    pad = ((1, 1), (1, 1))

    def penalty(conv):
        def f(w):
            gx = jax.grad(lambda x: jnp.sum(jnp.tanh(conv(x, w))))(x)
            return jnp.sum(gx ** 2)
        return f
    ours = _implementations(1, pad, 1)[path]
    np.testing.assert_allclose(jax.grad(penalty(ours))(w), jax.grad(penalty(_plain(1, pad, 1)))(w), rtol=1e-10)


def _count(jaxpr, primitive):
    return str(jaxpr).count(primitive)


def test_models_use_it_on_cpu_and_the_switch_turns_it_off(monkeypatch):
    """VGG-9's 2x2-map convolutions become GEMMs (no XLA convolution left for them); ShuffleV1's grouped
    convolutions take the custom JVP; KDJAX_CPU_SPEEDUPS=0 leaves every convolution XLA's."""
    from kdjax import models
    x = jnp.ones((1, 32, 32, 3))
    vgg = models.get_model("vgg9", num_classes=3, width=0.125)
    variables = jax.eval_shape(lambda: vgg.init(jax.random.key(0), x, train=False))
    kernels = [k for k in jax.tree_util.tree_leaves(variables["params"]) if len(k.shape) == 4]
    jaxpr = jax.make_jaxpr(lambda v: vgg.apply(v, x, train=False))(variables)
    assert 0 < _count(jaxpr, "conv_general_dilated") < len(kernels)
    shuffle = models.get_model("shufflev1", num_classes=3, width=0.25)
    shuffle_vars = jax.eval_shape(lambda: shuffle.init(jax.random.key(0), x, train=False))
    assert "name=grouped_conv" in str(jax.make_jaxpr(lambda v: shuffle.apply(v, x, train=False))(shuffle_vars))
    monkeypatch.setenv(ops.ENV_SWITCH, "0")
    assert _count(jax.make_jaxpr(lambda v: vgg.apply(v, x, train=False))(variables), "conv_general_dilated") == \
        len(kernels)
    assert "name=grouped_conv" not in str(jax.make_jaxpr(lambda v: shuffle.apply(v, x, train=False))(shuffle_vars))


def test_dense_weight_gradient_reads_a_materialized_input_and_inference_is_plain_xla():
    """The slow pattern and its fix, in a compiled conv -> BatchNorm-like affine -> ReLU -> conv gradient: XLA:CPU
    fuses the affine + ReLU into the transpose its weight gradient needs; through `dense_conv` the transpose reads
    a conditional's output instead (the materialised input). A forward alone has no conditional."""
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 8), jnp.float32)
    w1 = jax.random.normal(jax.random.key(1), (3, 3, 8, 8), jnp.float32)
    w2 = jax.random.normal(jax.random.key(2), (3, 3, 8, 8), jnp.float32)
    pad = ((1, 1), (1, 1))

    def net(conv):
        def f(w1, w2):
            h = jax.nn.relu(conv(x, w1) * 1.5 + 0.25)
            return jnp.sum(conv(h, w2) ** 2)
        return f
    plain = lambda x, w: lax.conv_general_dilated(x, w, (1, 1), pad, dimension_numbers=DN)
    ours = lambda x, w: cpu_conv.conv_general_dilated(x, w, (1, 1), pad, dimension_numbers=DN)

    def compiled(f):
        return jax.jit(f).lower(w1, w2).compile().as_text()
    assert " conditional(" not in compiled(jax.grad(net(plain), (0, 1)))
    assert " conditional(" in compiled(jax.grad(net(ours), (0, 1)))
    assert " conditional(" not in compiled(net(ours))
    for a, b in zip(jax.grad(net(ours), (0, 1))(w1, w2), jax.grad(net(plain), (0, 1))(w1, w2)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_depthwise_convolutions_stay_xla():
    """Depthwise kernels measured faster as XLA's own convolution than with the im2col weight gradient."""
    x, w = jnp.ones((2, 8, 8, 6)), jnp.ones((3, 3, 1, 6))
    jaxpr = jax.make_jaxpr(lambda w: cpu_conv.conv_general_dilated(
        x, w, (2, 2), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=6))(w)
    assert "name=grouped_conv" not in str(jaxpr) and _count(jaxpr, "conv_general_dilated") == 1


def test_unsupported_layouts_fall_back_to_xla():
    x = jnp.ones((1, 3, 6, 6))
    w = jnp.ones((2, 3, 3, 3))
    out = cpu_conv.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW"))
    np.testing.assert_allclose(out, lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                                             dimension_numbers=("NCHW", "OIHW", "NCHW")))
