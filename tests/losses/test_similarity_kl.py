"""similarity_kl (S2SD's embedding-space distillation) against a NumPy restatement of the reference's reduction."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from kdjax import losses


def similarity_kl_reference(source, target, temperature):
    """torch kl_div(log_softmax(S_s / T), softmax(S_t / T), reduction='sum') * T^2 / B, in float64 with loops."""
    def similarities(e):
        e = e / np.linalg.norm(e, axis=1, keepdims=True)
        return e @ e.T / temperature
    total = 0.0
    for s_row, t_row in zip(similarities(source), similarities(target)):
        log_q = s_row - np.log(np.sum(np.exp(s_row)))
        p = np.exp(t_row) / np.sum(np.exp(t_row))
        total += np.sum(p * (np.log(p) - log_q))
    return temperature ** 2 * total / len(source)


@pytest.mark.parametrize("temperature", [0.2, 1.0, 4.0])
def test_similarity_kl_matches_the_restatement(temperature):
    rng = np.random.default_rng(0)
    source = rng.normal(size=(12, 8)).astype(np.float32)   # unnormalised: normalised inside
    target = rng.normal(size=(12, 32)).astype(np.float32)  # another width
    got = losses.similarity_kl(source, target, temperature=temperature)
    np.testing.assert_allclose(got, similarity_kl_reference(source.astype(np.float64), target.astype(np.float64),
                                                            temperature), rtol=1e-5)


def test_similarity_kl_is_zero_for_the_same_geometry_and_differentiable():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 5))
    rotation = np.linalg.qr(rng.normal(size=(5, 5)))[0]
    assert float(losses.similarity_kl(x, 3.0 * x @ rotation)) == pytest.approx(0.0, abs=1e-6)
    with jax.enable_x64():
        check_grads(lambda s, t: losses.similarity_kl(s, t, temperature=0.5),
                    (jnp.asarray(x), jnp.asarray(rng.normal(size=(6, 7)))), order=1, modes=["rev"])


def test_similarity_kl_detached_target_gets_no_gradient_and_shapes_are_checked():
    rng = np.random.default_rng(2)
    s, t = jnp.asarray(rng.normal(size=(4, 3))), jnp.asarray(rng.normal(size=(4, 9)))
    grad = jax.grad(lambda t: losses.similarity_kl(s, jax.lax.stop_gradient(t)))(t)
    assert np.all(grad == 0)
    assert np.any(jax.grad(lambda t: losses.similarity_kl(s, t))(t) != 0)
    with pytest.raises(ValueError, match=r"\(4, 3\) and \(5, 9\) must be \[B, D\] with the same B"):
        losses.similarity_kl(s, jnp.zeros((5, 9)))
