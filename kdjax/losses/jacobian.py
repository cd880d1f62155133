"""Jacobian losses (Srinivas & Fleuret, "Knowledge Transfer with Jacobian Matching", ICML 2018).

The networks are arguments: `fn(x) -> logits` or `fn(x) -> (logits, taps)`. Input gradients come from `jax.vjp`
(one reverse pass per network) or, for the full-Jacobian estimator, `jax.jvp`; an outer `jax.grad` over the student's
parameters differentiates through them (double backprop / reverse-over-forward). The teacher side is constant
inside every loss here (`stop_gradient`), as a teacher's Jacobian is a target.

Per-example Jacobians: a batched VJP of the batch-summed selected outputs gives each example's own input gradient
only if the network does not couple the examples of a batch. BatchNorm in train mode does (batch statistics), so
callers pass networks whose BatchNorm uses running statistics (kdjax's trainer does: `TermInputs.student_fn` runs in
eval mode); then each Jacobian is exactly per-example.
"""
from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from kdjax.losses.common import check_positive, upcast

Selector = str | Sequence | Callable

EPS = 1e-12


def _logits(out):
    return out[0] if isinstance(out, tuple) else out


def _flat(x):
    return x.reshape(x.shape[0], -1)


def _sum_per_example(x):
    return jnp.sum(_flat(x), axis=-1)


def _l2_normalize(x):
    x = _flat(x)
    # sqrt(sum + tiny) keeps the gradient finite for an all-zero gradient map (a dead ReLU network)
    return x / (jnp.sqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True) + EPS * EPS) + EPS)


def input_gradients(fn: Callable, x: jax.Array, index: jax.Array) -> jax.Array:
    """Per-example gradient of logit `index[i]` w.r.t. input `x[i]`, via one VJP.

    Args:
      fn: batched network, x [B, ...] -> logits [B, K] (or (logits, taps)); must not couple examples.
      x: inputs [B, ...].
      index: [B] integer output index per example.
    Returns:
      [B, ...] gradients, same shape as x; differentiable w.r.t. whatever `fn` closes over.
    """
    logits, vjp_fn = jax.vjp(lambda inp: upcast(_logits(fn(inp))), x)
    if index.shape != logits.shape[:1]:
        raise ValueError(f"input_gradients: index shape {index.shape} does not match batch size {logits.shape[0]}")
    (grads,) = vjp_fn(jax.nn.one_hot(index, logits.shape[-1], dtype=logits.dtype))
    return grads


def _select_index(select, labels, teacher_logits):
    if select == "label":
        return labels
    if select == "teacher_top":
        return jnp.argmax(teacher_logits, axis=-1)
    raise ValueError(f"select={select!r}; valid: 'label', 'teacher_top'")


def jacobian_matching(student_fn: Callable, teacher_fn: Callable, x: jax.Array, labels: jax.Array, *,
                      select: str = "label", normalize: bool = False, reduction: str = "sum") -> jax.Array:
    """Squared distance between the student's and the teacher's input gradients of one selected logit.

    L = (1/B) sum_i || g_s(x_i) - g_t(x_i) ||^2 with g = grad_x z_c (paper Sec 4.1, 10.2), c = the true class
    (`select='label'`) or the teacher's arg-max class (`'teacher_top'`, label-free). `normalize=True` divides each
    flattened gradient by its L2 norm (+1e-12) first (Eq. 10). `reduction='sum'` sums over the D input elements
    per example (Prop. 1's form, kdjax default); `'mean'` averages over all B*D elements (PyTorch MSELoss style).
    The paper states no reduction.
    """
    teacher_logits = jax.lax.stop_gradient(_logits(teacher_fn(x)))
    index = _select_index(select, labels, teacher_logits)
    g_s = input_gradients(student_fn, x, index)
    g_t = jax.lax.stop_gradient(input_gradients(teacher_fn, x, index))
    if normalize:
        g_s, g_t = _l2_normalize(g_s), _l2_normalize(g_t)
    sq = jnp.square(_flat(g_s) - _flat(g_t))
    if reduction == "sum":
        return jnp.mean(jnp.sum(sq, axis=-1))
    if reduction == "mean":
        return jnp.mean(sq)
    raise ValueError(f"reduction={reduction!r}; valid: 'sum', 'mean'")


def jacobian_matching_jvp(student_fn: Callable, teacher_fn: Callable, x: jax.Array, key: jax.Array | None = None, *,
                          num_tangents: int = 1, sigma: float = 1.0, tangents: jax.Array | None = None) -> jax.Array:
    """Unbiased forward-mode estimate of the full Jacobian match (1/B) sum_i ||J_s(x_i) - J_t(x_i)||_F^2.

    kdjax extension, not in the paper. For tangents v ~ N(0, sigma^2 I) of the input's shape,
    E ||J_s v - J_t v||^2 = sigma^2 ||J_s - J_t||_F^2 over all K outputs; one `jax.jvp` per network and tangent.
    Returns mean over batch and tangents of ||J_s v - J_t v||^2 / sigma^2. Tangents are not normalised per example
    (unit tangents would estimate ||.||_F^2 / D).

    Args:
      key: PRNG key for the Gaussian tangents (ignored when `tangents` is given).
      num_tangents: tangents per example (vectorised: memory grows with it like the batch size).
      tangents: optional explicit [T, *x.shape] tangents (e.g. sqrt(D)-scaled basis vectors: exact Frobenius).
    """
    check_positive("jacobian_matching_jvp", num_tangents=num_tangents, sigma=sigma)
    if tangents is None:
        if key is None:
            raise ValueError("jacobian_matching_jvp needs a PRNG key or explicit tangents")
        tangents = sigma * jax.random.normal(key, (num_tangents,) + x.shape, x.dtype)
    elif tangents.shape[1:] != x.shape:
        raise ValueError(f"tangents shape {tangents.shape} must be [T, *x.shape] with x.shape {x.shape}")

    def one(v):
        _, jv_s = jax.jvp(lambda inp: upcast(_logits(student_fn(inp))), (x,), (v,))
        _, jv_t = jax.jvp(lambda inp: upcast(_logits(teacher_fn(inp))), (x,), (v,))
        return jnp.mean(_sum_per_example(jnp.square(jv_s - jax.lax.stop_gradient(jv_t))))

    # `vmap` over the tangents, not `lax.map`: inside a while loop XLA:CPU ran the gradient of this term 50x slower
    # (VGG-4 at batch 32: 10.0 s vs 0.21 s; benchmarks/README.md).
    return jnp.mean(jax.vmap(one)(tangents)) / (sigma * sigma)


def jacobian_norm_penalty(fn: Callable, x: jax.Array, labels: jax.Array, *, output: str = "label",
                          key: jax.Array | None = None, num_tangents: int = 1) -> jax.Array:
    """(1/B) sum_i ||grad_x o(x_i)||^2, the noise-robustness regulariser of Sec 4 / Table 2.

    `output='label'`: o = z_y, the true-class logit (kdjax default; the paper does not say which output);
    `'log_prob'`: o = log softmax(z)_y (the cross-entropy form of Eq. 3);
    `'all'`: ||J||_F^2 over all K logits, estimated forward-mode with Gaussian tangents (`jacobian_matching_jvp`; needs `key`).
    """
    if output == "all":
        zero = lambda inp: jax.lax.stop_gradient(jnp.zeros_like(upcast(_logits(fn(inp)))))
        return jacobian_matching_jvp(fn, zero, x, key, num_tangents=num_tangents)
    if output == "label":
        g = input_gradients(fn, x, labels)
    elif output == "log_prob":
        g = input_gradients(lambda inp: jax.nn.log_softmax(upcast(_logits(fn(inp))), axis=-1), x, labels)
    else:
        raise ValueError(f"output={output!r}; valid: 'label', 'log_prob', 'all'")
    return jnp.mean(_sum_per_example(jnp.square(g)))


# ---- attention maps -------------------------------------------------------------------------------------------
def attention_map(features: jax.Array) -> jax.Array:
    """A = sum over channels of squared activations (Eq. 8): [B, H, W, C] -> [B, H, W]."""
    return jnp.sum(jnp.square(upcast(features)), axis=-1)


def pool_attention(attention: jax.Array, window: int) -> jax.Array:
    """Average pool [B, H, W] with a window x window kernel, stride 1, no padding."""
    pooled = jax.lax.reduce_window(attention, 0.0, jax.lax.add, (1, window, window), (1, 1, 1), "VALID")
    return pooled / (window * window)


def attention_window(size: int, window_fraction: float) -> int:
    """Pool window "feature size / 5" (Sec 5.2.1): max(1, floor(size * window_fraction)), window_fraction in (0, 1]."""
    if not 0.0 < window_fraction <= 1.0:
        raise ValueError(f"attention_jacobian_matching: window_fraction={window_fraction} must lie in (0, 1]")
    return max(1, int(size * window_fraction))


def argmax_pixel(pooled: jax.Array) -> jax.Array:
    """One-hot [B, H', W'] marking each example's maximum of a pooled attention map (first one on ties)."""
    flat = pooled.reshape(pooled.shape[0], -1)
    return jax.nn.one_hot(jnp.argmax(flat, axis=-1), flat.shape[-1], dtype=pooled.dtype).reshape(pooled.shape)


def select_tap(taps: dict, selector: Selector) -> jax.Array:
    """A feature map from a taps dict: a key ('pooled'), a path (('feats', 2)), or a callable."""
    if callable(selector):
        return selector(taps)
    if isinstance(selector, str):
        return taps[selector]
    out = taps
    for part in selector:
        out = out[part]
    return out


def attention_jacobian_matching(student_fn: Callable, teacher_fn: Callable, x: jax.Array, *, layer: Selector,
                                teacher_layer: Selector | None = None, window_fraction: float = 0.2) -> jax.Array:
    """Attention-map Jacobian matching (Sec 5.2.1, Eq. 10).

    For each example: pool the teacher's attention map A_t (Eq. 8) with window floor(H/5), stride 1; take its
    maximum pixel (i*, j*) (constant); the scalar a^m = pooled A^m at (i*, j*) for m in {s, t}; J^m = grad_x a^m.
    L = (1/B) sum_i || J_s/||J_s|| - J_t/||J_t|| ||^2 (normalised, squared; +1e-12 in the norms).

    Args:
      student_fn, teacher_fn: x -> (logits, taps).
      layer: the student's tap selector (see `select_tap`); also the teacher's unless `teacher_layer` is given.
        The two attention maps must have the same spatial size (the paper pairs layers of equal resolution).
    """
    s_sel, t_sel = layer, (layer if teacher_layer is None else teacher_layer)

    def pooled_attention(fn, sel):
        def f(inp):
            a = attention_map(select_tap(fn(inp)[1], sel))
            return pool_attention(a, attention_window(a.shape[1], window_fraction))
        return f

    t_pooled, t_vjp = jax.vjp(pooled_attention(teacher_fn, t_sel), x)
    s_pooled, s_vjp = jax.vjp(pooled_attention(student_fn, s_sel), x)
    if s_pooled.shape != t_pooled.shape:
        raise ValueError(f"attention_jacobian_matching: pooled attention maps differ in shape: student "
                         f"{s_pooled.shape} vs teacher {t_pooled.shape}; pick layers of equal spatial size")
    pixel = jax.lax.stop_gradient(argmax_pixel(t_pooled))
    (j_t,) = t_vjp(pixel)
    (j_s,) = s_vjp(pixel)
    diff = _l2_normalize(j_s) - jax.lax.stop_gradient(_l2_normalize(j_t))
    return jnp.mean(jnp.sum(jnp.square(diff), axis=-1))
