"""Multi-label losses against NumPy restatements, with gradient checks and the saturated range."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from kdjax import losses


def np_focal_bce(z, y, gamma):
    """L2D's BCE-sum with the focal factor, written with probabilities (float64, |z| small enough not to clamp)."""
    p = 1 / (1 + np.exp(-z))
    return -np.sum(y * (1 - p) ** gamma * np.log(p) + (1 - y) * p ** gamma * np.log(1 - p))


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    return rng.normal(0, 3, (16, 20)), (rng.random((16, 20)) < 0.3).astype(np.float64)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_bce_matches_numpy(batch, gamma):
    z, y = batch
    with jax.enable_x64():
        got = float(losses.focal_bce(jnp.asarray(z), jnp.asarray(y), gamma=gamma))
    assert got == pytest.approx(np_focal_bce(z, y, gamma), rel=1e-10)


def test_gamma_zero_is_bce_sum_in_float32(batch):
    z, y = (x.astype(np.float32) for x in batch)
    p = 1 / (1 + np.exp(-z.astype(np.float64)))
    bce_sum = -np.sum(y * np.log(np.maximum(p, 1e-8)) + (1 - y) * np.log(np.maximum(1 - p, 1e-8)))
    got = losses.focal_bce(jnp.asarray(z), jnp.asarray(y), gamma=0.0)
    assert got.dtype == jnp.float32 and float(got) == pytest.approx(bce_sum, rel=1e-5)


@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_gradient_matches_finite_differences(batch, gamma):
    z, y = batch
    with jax.enable_x64():
        check_grads(lambda x: losses.focal_bce(x, jnp.asarray(y[:4]), gamma=gamma), (jnp.asarray(z[:4]),), order=1,
                    modes=["rev"])


@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_values_and_gradients_finite_up_to_fifty(gamma):
    z = jnp.asarray(np.linspace(-50, 50, 41, dtype=np.float32)).reshape(1, -1)
    for y in (jnp.zeros_like(z), jnp.ones_like(z)):
        value, grad = jax.value_and_grad(lambda x: losses.focal_bce(x, y, gamma=gamma))(z)
        assert np.isfinite(float(value)) and np.all(np.isfinite(grad))
    # a confidently wrong label costs |z| (BCE) and is not capped as the reference's clamp would
    wrong = losses.focal_bce(jnp.full((1, 1), 50.0), jnp.zeros((1, 1)), gamma=0.0)
    assert float(wrong) == pytest.approx(50.0, rel=1e-6)


def test_bad_shapes_and_gamma_are_named(batch):
    z, y = batch
    with pytest.raises(ValueError, match=r"targets shape \(16, 19\)"):
        losses.focal_bce(jnp.asarray(z), jnp.asarray(y[:, :19]))
    with pytest.raises(ValueError, match="gamma=-1"):
        losses.focal_bce(jnp.asarray(z), jnp.asarray(y), gamma=-1.0)
