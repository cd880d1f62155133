"""Logit losses against NumPy restatements of their equations, invariants and gradient checks."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from kdjax import losses


def np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def np_kd(zs, zt, T):
    """T^2 * (1/B) sum_i sum_c p_t (log p_t - log p_s), p = softmax(z/T)."""
    log_ps, log_pt = np_log_softmax(zs / T), np_log_softmax(zt / T)
    pt = np.exp(log_pt)
    return T * T * np.sum(pt * (log_pt - log_ps)) / zs.shape[0]


@pytest.fixture
def logits():
    rng = np.random.default_rng(0)
    return rng.normal(0, 3, (64, 100)).astype(np.float64), rng.normal(0, 3, (64, 100)).astype(np.float64)


@pytest.mark.parametrize("T", [1.0, 4.0, 7.5])
def test_kd_matches_numpy(logits, T):
    zs, zt = logits
    got = losses.kd(jnp.float32(zs), jnp.float32(zt), temperature=T)
    np.testing.assert_allclose(got, np_kd(zs, zt, T), rtol=1e-5)


def test_kd_direction_is_teacher_first():
    """Hand-worked: teacher p_t = (0.5, 0.5, 0), student uniform; KL(p_t||p_s) = log(3/2), KL(p_s||p_t) = inf."""
    zt = jnp.array([[0.0, 0.0, -1e4]])
    zs = jnp.zeros((1, 3))
    np.testing.assert_allclose(losses.kd(zs, zt, temperature=1.0), np.log(1.5), rtol=1e-6)
    np.testing.assert_allclose(losses.kd(zs, zt, temperature=2.0), 4.0 * np.log(1.5), rtol=1e-6)


def test_kd_zero_at_identity_and_t_squared_scaling(logits):
    zs, _ = logits
    assert abs(float(losses.kd(jnp.float32(zs), jnp.float32(zs)))) < 1e-6
    # Scaling the logits by T and the temperature by T leaves the KL unchanged, so the loss scales by T^2.
    a, b = jnp.float32(logits[0]), jnp.float32(logits[1])
    base = losses.kd(a, b, temperature=1.0)
    np.testing.assert_allclose(losses.kd(3.0 * a, 3.0 * b, temperature=3.0), 9.0 * base, rtol=1e-5)


def test_kd_handles_one_hot_teacher():
    """A saturated teacher has p_t = 0 entries: 0 * log 0 must count as 0, not NaN."""
    zs = jnp.zeros((2, 5))
    zt = jnp.array([[1e4, 0, 0, 0, 0], [0, 0, 1e4, 0, 0]], jnp.float32)
    value = losses.kd(zs, zt, temperature=1.0)
    np.testing.assert_allclose(value, np.log(5.0), rtol=1e-6)
    assert np.all(np.isfinite(jax.grad(losses.kd)(zs, zt, temperature=1.0)))


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_cross_entropy_matches_numpy(logits, eps):
    zs, _ = logits
    labels = np.random.default_rng(1).integers(0, 100, 64)
    target = (1 - eps) * np.eye(100)[labels] + eps / 100
    expected = -np.mean(np.sum(target * np_log_softmax(zs), -1))
    got = losses.cross_entropy(jnp.float32(zs), jnp.asarray(labels), label_smoothing=eps)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_logit_mse_matches_numpy(logits):
    zs, zt = logits
    np.testing.assert_allclose(losses.logit_mse(jnp.float32(zs), jnp.float32(zt)), np.mean((zs - zt) ** 2),
                               rtol=1e-5)


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(2)
    zs, zt = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    labels = jnp.array([0, 3, 5, 1])
    with jax.enable_x64():
        zs64, zt64 = jnp.asarray(zs), jnp.asarray(zt)
        check_grads(lambda a, b: losses.kd(a, b, temperature=3.0), (zs64, zt64), order=2, modes=["rev"])
        check_grads(lambda a: losses.cross_entropy(a, labels, label_smoothing=0.1), (zs64,), order=2)
        check_grads(losses.logit_mse, (zs64, zt64), order=2)


def test_losses_compose_with_jit_and_vmap(logits):
    zs, zt = jnp.float32(logits[0]), jnp.float32(logits[1])
    per_group = jax.vmap(lambda a, b: losses.kd(a, b))(zs.reshape(8, 8, 100), zt.reshape(8, 8, 100))
    np.testing.assert_allclose(jnp.mean(per_group), jax.jit(losses.kd)(zs, zt), rtol=1e-5)


def test_bfloat16_inputs_are_computed_in_float32(logits):
    zs, zt = logits
    got = losses.kd(jnp.bfloat16(zs), jnp.bfloat16(zt))
    assert got.dtype == jnp.float32


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        losses.kd(jnp.zeros((2, 3)), jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="labels shape"):
        losses.cross_entropy(jnp.zeros((2, 3)), jnp.zeros((3,), jnp.int32))
