"""kdjax's XLA:CPU options: CPU only, same results, and YNNPACK kept for reductions but not convolutions."""
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kdjax import models, ops, parallel
from kdjax.ops import xla_cpu_options

pytestmark = pytest.mark.skipif(not xla_cpu_options.supported(), reason="this jaxlib lacks the YNNPACK option")


CHANNELS = 32  # at this size jaxlib 0.10's defaults give the convolutions to YNNPACK


def _conv_bn_loss(params, x):
    conv = nn.Conv(CHANNELS, (3, 3), padding=((1, 1), (1, 1)), use_bias=False)
    bn = nn.BatchNorm(use_running_average=False, epsilon=1e-5)
    h, _ = bn.apply({"params": params["bn"], "batch_stats": params["stats"]},
                    conv.apply({"params": params["conv"]}, x), mutable=["batch_stats"])
    return jnp.sum(jnp.tanh(h) ** 2)


def _setup():
    x = jax.random.normal(jax.random.key(0), (2, 32, 32, CHANNELS))
    conv = nn.Conv(CHANNELS, (3, 3), use_bias=False).init(jax.random.key(1), x)
    bn = nn.BatchNorm(use_running_average=False).init(jax.random.key(2), jnp.zeros((2, 32, 32, CHANNELS)))
    return {"conv": conv["params"], "bn": bn["params"], "stats": bn["batch_stats"]}, x


def test_ops_jit_adds_the_options_on_cpu_only(monkeypatch):
    seen = []
    monkeypatch.setattr(ops.jax, "jit", lambda fn, **kw: seen.append(kw.get("compiler_options")) or fn)
    ops.jit(abs, mesh=parallel.make_mesh())
    ops.jit(abs, run_once=True)
    gpu_mesh = type("Mesh", (), {"devices": np.array([type("Device", (), {"platform": "gpu"})()])})()
    ops.jit(abs, mesh=gpu_mesh)
    monkeypatch.setenv(ops.ENV_SWITCH, "0")
    ops.jit(abs)
    assert seen == [xla_cpu_options.OPTIONS, {**xla_cpu_options.OPTIONS, **xla_cpu_options.RUN_ONCE_OPTIONS},
                    None, None]


def test_run_once_initialisation_equals_the_optimised_one():
    model = models.get_model("vgg4", num_classes=10, width=0.125)
    x = jnp.zeros((2, 8, 8, 1))
    init = lambda rng: model.init(rng, x, train=False)  # noqa: E731
    ref = jax.jit(init)(jax.random.key(3))
    fast = jax.jit(init, compiler_options=xla_cpu_options.compiler_options(run_once=True))(jax.random.key(3))
    assert jax.tree.structure(fast) == jax.tree.structure(ref)
    for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_same_values_and_gradients_as_xla_defaults():
    params, x = _setup()
    fn = jax.value_and_grad(_conv_bn_loss)
    ref_value, ref_grad = jax.jit(fn)(params, x)
    value, grad = jax.jit(fn, compiler_options=xla_cpu_options.compiler_options())(params, x)
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(grad), jax.tree.leaves(ref_grad)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * float(jnp.max(jnp.abs(b))))


def _ynn_computations(compiled_text):
    """Bodies of the fused computations that XLA handed to YNNPACK."""
    called = re.findall(r"calls=%([\w.]+), [^\n]*__ynn_fusion", compiled_text)
    return [re.search(r"%" + re.escape(c) + r" \(.*?\n\}", compiled_text, re.S).group(0) for c in called]


def test_convolutions_stay_xla_and_reductions_go_to_ynnpack():
    params, x = _setup()
    text = jax.jit(jax.grad(_conv_bn_loss), compiler_options=xla_cpu_options.compiler_options()).lower(
        params, x).compile().as_text()
    ynn = _ynn_computations(text)
    assert ynn and all(" reduce(" in body for body in ynn)
    assert not any(" convolution(" in body for body in ynn)
    assert " convolution(" in text
