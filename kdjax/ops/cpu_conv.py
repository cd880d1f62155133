"""A 2-D convolution for XLA:CPU's weak spots, in JAX that every autodiff mode and order goes through:
- grouped (not depthwise) convolutions, ShuffleNet V1's grouped 1x1s: XLA's forward pass, and a `jax.custom_jvp`
  whose tangent in the kernel is an im2col GEMM, so the weight gradient (its transpose) is a GEMM too. XLA:CPU's own
  grouped weight gradient is ~4-7x slower; a plain einsum forward ~1.8x (64x16x16x240, 3 groups, forward +
  backward: 35 ms against 242 ms for XLA's and 63 ms for an einsum);
- tiny output maps (<= 4 pixels, e.g. VGG's 2x2 stage): the convolution as an im2col GEMM (strided slices + one
  einsum), where XLA:CPU's convolution runs at under 1 GFLOP/s (about 100x slower);
- dense kernels on ordinary maps: XLA's convolution in both directions, under a `jax.custom_jvp` whose tangent in
  the kernel reads the input from a materialised buffer. XLA's weight gradient needs the input transposed (C x H x
  W x N), and XLA:CPU otherwise fuses the input's producer (BatchNorm + residual add + ReLU, recomputed from the
  convolution outputs) into that transpose, a loop reading every operand across the grain: 100 ms for one
  64x32x32x64 input of resnet8x4 where a transpose of the stored input takes 3 ms. Measured on the resnet8x4
  student step (batch 64): the transposes 167 -> 51 ms, the step 646 -> 602 ms; VGG, whose convolution inputs have
  one producer, within noise. Inference never differentiates, so it runs XLA's convolution unchanged.
Depthwise kernels stay `lax.conv_general_dilated`: the GEMM weight gradient measured slower in a whole model step.
Values and derivatives equal XLA's (tests/ops).

Used by kdjax's convolution layers when `kdjax.ops.cpu_speedups_enabled()` (the CPU backend, unless
KDJAX_CPU_SPEEDUPS=0); on GPU/TPU every convolution is XLA's.
"""
import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

_DN = ("NHWC", "HWIO", "NHWC")
SMALL_OUTPUT_PIXELS = 4  # XLA:CPU's convolution falls off a cliff on maps this small (2x2: ~100x slower than GEMM)


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


def _out_hw(x_hw, kernel_hw, strides, padding):
    return tuple((n + lo + hi - k) // s + 1 for n, k, s, (lo, hi) in zip(x_hw, kernel_hw, strides, padding))


def im2col_conv(x, w, strides, padding, groups):
    """The convolution as patches @ kernel (one GEMM; for a 1x1 kernel the patches are the input itself)."""
    kh, kw, cg, out = w.shape
    ho, wo = _out_hw(x.shape[1:3], (kh, kw), strides, padding)
    if (kh, kw) == (1, 1) and not any(p for pair in padding for p in pair):
        patches = x[:, ::strides[0], ::strides[1]][:, :ho, :wo, None, :]
    else:
        patches = _patches(x, kh, kw, strides, padding, (ho, wo))
    patches = patches.reshape(*patches.shape[:3], kh * kw, groups, cg)
    kernel = w.reshape(kh * kw, cg, groups, out // groups)
    y = jnp.einsum("nhwkgc,kcgo->nhwgo", patches, kernel, preferred_element_type=jnp.result_type(x.dtype, jnp.float32))
    return y.reshape(*y.shape[:3], out).astype(x.dtype)


def _plain(x, w, strides, padding, groups):
    return lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=_DN, feature_group_count=groups)


def materialized(x):
    """`x`, as a buffer XLA cannot fuse `x`'s producer into: the identity branch of a conditional whose predicate is
    always true (NaN included), which XLA cannot prove. XLA:CPU drops an `optimization_barrier` before fusion, and
    its simplifier drops a conditional whose two branches are the same."""
    first = x.reshape(-1)[0]
    return lax.cond((first == first) | (first != first), lambda a: a, lambda a: -a, x)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def dense_conv(x, w, strides, padding):
    """XLA's dense convolution whose derivative in the kernel reads `x` from memory (every autodiff mode)."""
    return _plain(x, w, strides, padding, 1)


def _dense_conv_jvp(strides, padding, primals, tangents):
    x, w = primals
    dx, dw = tangents
    y = dense_conv(x, w, strides, padding)
    parts = []  # symbolic zeros skipped: the image's tangent would cost a forward convolution of zeros
    if not isinstance(dx, SymbolicZero):
        parts.append(dense_conv(dx, w, strides, padding))
    if not isinstance(dw, SymbolicZero):
        parts.append(_plain(materialized(x), dw, strides, padding, 1))
    if not parts:
        return y, lax.zeros_like_array(y)
    return y, parts[0] if len(parts) == 1 else parts[0] + parts[1]


dense_conv.defjvp(_dense_conv_jvp, symbolic_zeros=True)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4))
def grouped_conv(x, w, strides, padding, groups):
    """XLA's grouped convolution whose derivative in the kernel is an im2col GEMM (in every autodiff mode)."""
    return _plain(x, w, strides, padding, groups)


@grouped_conv.defjvp
def _grouped_conv_jvp(strides, padding, groups, primals, tangents):
    x, w = primals
    dx, dw = tangents
    tangent = grouped_conv(dx, w, strides, padding, groups) + im2col_conv(x, dw, strides, padding, groups)
    return grouped_conv(x, w, strides, padding, groups), tangent


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, precision=None, **kw):
    """Drop-in for `lax.conv_general_dilated` as flax's `nn.Conv(conv_general_dilated=...)`: in kdjax's layouts
    (NHWC, HWIO, no dilation, explicit padding) the GEMM forms for tiny maps and grouped kernels and `dense_conv`
    for dense ones; XLA's convolution otherwise."""
    nhwc = (lhs.ndim == 4 and dimension_numbers is not None and
            lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
            == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _DN))
    simple = (nhwc and not any(d != 1 for d in (lhs_dilation or ())) and not any(d != 1 for d in (rhs_dilation or ()))
              and not isinstance(padding, str) and precision is None and not kw)
    if simple:
        strides, padding = tuple(window_strides), tuple(tuple(p) for p in padding)
        ho, wo = _out_hw(lhs.shape[1:3], rhs.shape[:2], strides, padding)
        if ho * wo <= SMALL_OUTPUT_PIXELS:
            return im2col_conv(lhs, rhs, strides, padding, feature_group_count)
        # depthwise kernels measured faster as XLA's convolution than with the GEMM weight gradient
        depthwise = feature_group_count == lhs.shape[-1]
        if feature_group_count > 1 and not depthwise:
            return grouped_conv(lhs, rhs, strides, padding, feature_group_count)
        if feature_group_count == 1:
            return dense_conv(lhs, rhs, strides, padding)
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
                                    rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                                    feature_group_count=feature_group_count, precision=precision, **kw)
