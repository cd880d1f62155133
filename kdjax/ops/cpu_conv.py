"""A 2-D convolution for XLA:CPU's weak spots, measured in benchmarks/README.md:
- grouped convolutions (ShuffleNets' grouped 1x1s): the weight gradient as an im2col GEMM (patches^T @ output
  gradient), ~7-10x faster than XLA's. Depthwise convolutions (MobileNetV2, ShuffleNetV2) stay XLA's: with
  `kdjax.ops.xla_cpu_options` (XLA's own convolutions, not YNNPACK's) those are 1.0-1.4x faster than the im2col path;
- tiny output maps (<= 4 pixels, e.g. VGG's 2x2 stage): forward pass and input gradient as im2col GEMMs too, where
  XLA's convolution runs at under 1 GFLOP/s (about 100x slower).
Everything else is plain `lax.conv_general_dilated`: for dense kernels on ordinary maps the im2col weight gradient
measured no faster in a whole model step. Values and derivatives equal XLA's (tests/ops).

kdjax's models use it on the CPU backend only (`layers.conv`); GPU/TPU keep the plain XLA convolution. The tiny-map
path is plain JAX (slices + one einsum), so every autodiff mode and order goes through it. The grouped path is a
`jax.custom_vjp` with a backward pass written in JAX: reverse mode to any order (double backprop for Jacobian
matching) but not forward mode, so code that calls `jax.jvp` through a kdjax model traces it inside
`xla_convolutions()` (`losses.jacobian_matching_jvp` does so itself), which swaps only that path for XLA's.
"""
import contextlib
import contextvars
import functools

import jax
import jax.numpy as jnp
from jax import lax

_DN = ("NHWC", "HWIO", "NHWC")
_force_xla = contextvars.ContextVar("kdjax_force_xla_conv", default=False)


@contextlib.contextmanager
def xla_convolutions():
    """Within this context (at trace time) grouped convolutions use plain `lax.conv_general_dilated`, so that
    forward-mode AD can pass through them."""
    token = _force_xla.set(True)
    try:
        yield
    finally:
        _force_xla.reset(token)


def _plain(x, w, strides, padding, groups):
    return lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=_DN, feature_group_count=groups)


def _patches(x, kh, kw, strides, padding, out_hw):
    """[N, Ho, Wo, kh*kw, C] shifted strided views of the padded input (im2col by slicing: a memory op, where
    `lax.conv_general_dilated_patches` is a convolution with a one-hot kernel, C*kh*kw times the work)."""
    (pt, pb), (pl, pr) = padding
    xp = jnp.pad(x, ((0, 0), (max(pt, 0), max(pb, 0)), (max(pl, 0), max(pr, 0)), (0, 0)))
    ho, wo = out_hw
    sh, sw = strides
    views = [lax.slice(xp, (0, i, j, 0), (xp.shape[0], i + sh * (ho - 1) + 1, j + sw * (wo - 1) + 1, xp.shape[3]),
                       (1, sh, sw, 1))
             for i in range(kh) for j in range(kw)]
    return jnp.stack(views, axis=3)


SMALL_OUTPUT_PIXELS = 4  # XLA:CPU's convolution falls off a cliff on maps this small (2x2: ~100x slower than GEMM)


def _out_hw(x_hw, kernel_hw, strides, padding):
    return tuple((n + lo + hi - k) // s + 1 for n, k, s, (lo, hi) in zip(x_hw, kernel_hw, strides, padding))


def im2col_conv(x, w, strides, padding, groups):
    """The convolution as patches @ kernel (one GEMM): kdjax's forward on tiny maps, where it is ~100x faster."""
    kh, kw, cg, out = w.shape
    ho, wo = _out_hw(x.shape[1:3], (kh, kw), strides, padding)
    patches = _patches(x, kh, kw, strides, padding, (ho, wo))
    patches = patches.reshape(*patches.shape[:3], kh * kw, groups, cg)
    kernel = w.reshape(kh * kw, cg, groups, out // groups)
    y = jnp.einsum("nhwkgc,kcgo->nhwgo", patches, kernel, preferred_element_type=jnp.result_type(x.dtype, jnp.float32))
    return y.reshape(*y.shape[:3], out).astype(x.dtype)


def weight_gradient(x, g, kernel_shape, strides, padding, groups):
    """d conv / d kernel as one GEMM, patches^T @ g: x [N,H,W,C], g [N,Ho,Wo,O], kernel HWIO with I = C / groups."""
    kh, kw, cg, out = kernel_shape
    patches = _patches(x, kh, kw, strides, padding, g.shape[1:3])
    m = g.shape[0] * g.shape[1] * g.shape[2]
    patches = patches.reshape(m, kh * kw, groups, cg)
    g = g.reshape(m, groups, out // groups)
    dw = jnp.einsum("mkgc,mgo->kcgo", patches, g, preferred_element_type=jnp.result_type(x.dtype, jnp.float32))
    return dw.reshape(kh, kw, cg, out).astype(x.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def grouped_conv(x, w, strides, padding, groups):
    """XLA's forward and input gradient, the weight gradient as one im2col GEMM."""
    return _plain(x, w, strides, padding, groups)


def _grouped_fwd(x, w, strides, padding, groups):
    return grouped_conv(x, w, strides, padding, groups), (x, w)


def _grouped_bwd(strides, padding, groups, residuals, g):
    x, w = residuals
    _, input_vjp = jax.vjp(lambda x_: _plain(x_, w, strides, padding, groups), x)
    return input_vjp(g)[0], weight_gradient(x, g, w.shape, strides, padding, groups)


grouped_conv.defvjp(_grouped_fwd, _grouped_bwd)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, precision=None, **kw):
    """Drop-in for `lax.conv_general_dilated` as flax's `nn.Conv(conv_general_dilated=...)`: the im2col paths for
    grouped convolutions and tiny maps in kdjax's layouts (NHWC, HWIO, no dilation, explicit padding) on CPU,
    XLA's convolution otherwise."""
    nhwc = (lhs.ndim == 4 and dimension_numbers is not None and
            lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
            == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _DN))
    simple = (nhwc and not any(d != 1 for d in (lhs_dilation or ())) and not any(d != 1 for d in (rhs_dilation or ()))
              and not isinstance(padding, str) and precision is None and not kw)
    if simple and jax.default_backend() == "cpu":
        strides, padding = tuple(window_strides), tuple(tuple(p) for p in padding)
        ho, wo = _out_hw(lhs.shape[1:3], rhs.shape[:2], strides, padding)
        if ho * wo <= SMALL_OUTPUT_PIXELS:
            return im2col_conv(lhs, rhs, strides, padding, feature_group_count)
        # measured (benchmarks/README.md): on ordinary maps with dense kernels XLA:CPU's own gradients are as fast
        depthwise = feature_group_count == lhs.shape[-1]
        if feature_group_count > 1 and not depthwise and not _force_xla.get():
            return grouped_conv(lhs, rhs, strides, padding, feature_group_count)
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
                                    rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                                    feature_group_count=feature_group_count, precision=precision, **kw)
