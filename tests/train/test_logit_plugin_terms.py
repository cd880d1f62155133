"""The DIST and CTKD terms and the logit_stand option of the logit terms, called as the trainer calls them: their
values are the losses' at the term's options, CTKD's temperature parameter gets the reversed gradient of the epoch's
lambda, and its logs carry the temperature's trajectory."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kdjax import losses
from kdjax.train import terms

B, C = 8, 10


def _inputs(epoch, seed=0):
    rng = np.random.default_rng(seed)
    zs, zt = (jnp.asarray(rng.normal(0, 3, (B, C)), jnp.float32) for _ in range(2))
    labels = jnp.asarray(rng.integers(0, C, B))
    view = terms.ViewOutputs(zs, {}, zt, {})
    return terms.TermInputs({"label": labels}, {"image": view, "image_strong": view}, None, None,
                            jnp.int32(0), jnp.float32(epoch), jax.random.key(0))


def _term(name, **options):
    (weighted,) = terms.build_terms({name: dict(weight=1.0, **options)})
    return weighted.term


@pytest.mark.parametrize("name,options,loss", [
    ("kd", dict(temperature=2.0, logit_stand=True),
     lambda i: losses.kd(i.student, i.teacher, temperature=2.0, logit_stand=True)),
    ("dkd", dict(alpha=9.0, beta=81.0, logit_stand=True),
     lambda i: losses.dkd(i.student, i.teacher, i.labels, alpha=9.0, beta=81.0, logit_stand=True)),
    ("mlld", dict(temperatures=(2, 3, 5, 2, 6), logit_stand=True),
     lambda i: losses.mlld(i.student, i.teacher, i.student, i.teacher, temperatures=(2.0, 3.0, 5.0, 2.0, 6.0),
                           logit_stand=True)),
    ("dist", dict(tau=4.0, beta=2.0), lambda i: losses.dist(i.student, i.teacher, tau=4.0, beta=2.0)),
])
def test_terms_pass_their_options_to_the_loss(name, options, loss):
    inputs = _inputs(epoch=1)
    term = _term(name, **options)
    params, state = term.init(jax.random.key(0), inputs)
    value, _, _ = term(inputs, params, state)
    np.testing.assert_allclose(value, loss(inputs), rtol=1e-6)
    if "logit_stand" in options:  # the option reaches the loss
        plain, _, _ = _term(name, **dict(options, logit_stand=False))(inputs, params, state)
        assert abs(float(value) - float(plain)) > 1e-3


@pytest.mark.parametrize("kd_type", ["kd", "dkd"])
@pytest.mark.parametrize("epoch", [1.0, 5.0, 30.0])
def test_ctkd_term_learns_its_temperature_through_the_reversed_gradient(kd_type, epoch):
    inputs = _inputs(epoch)
    term = _term("ctkd", kd_type=kd_type)
    params, state = term.init(jax.random.key(0), inputs)
    assert params["global_t"].shape == (1,) and float(params["global_t"][0]) == 1.0  # the official init

    def at_temperature(t):
        if kd_type == "kd":
            return losses.kd(inputs.student, inputs.teacher, temperature=t)
        return losses.dkd(inputs.student, inputs.teacher, inputs.labels, alpha=1.0, beta=2.0, temperature=t)

    def loss_and_logs(p):
        value, _, logs = term(inputs, p, state)
        return value, logs

    (value, logs), grad = jax.value_and_grad(loss_and_logs, has_aux=True)(params)
    lam = (np.cos(min(epoch, 10.0) * np.pi / 10) + 1) / 2 * (0.0 - -1.0) + -1.0
    sig = 1 / (1 + np.exp(-1.0))
    t = 1.0 + 20.0 * sig
    np.testing.assert_allclose(logs["lambda"], lam, atol=1e-6)
    np.testing.assert_allclose(logs["temperature"], t, rtol=1e-6)
    np.testing.assert_allclose(value, at_temperature(t), rtol=1e-6)
    dl_dt = jax.grad(at_temperature)(jnp.float32(t))
    np.testing.assert_allclose(grad["global_t"][0], lam * dl_dt * 20 * sig * (1 - sig), rtol=1e-4, atol=1e-8)


def test_ctkd_refuses_an_unknown_kd_type_and_a_bad_range():
    with pytest.raises(ValueError, match="kd_type='mlld'; valid: kd, dkd"):
        _term("ctkd", kd_type="mlld")
    with pytest.raises(ValueError, match="t_start=0"):
        _term("ctkd", t_start=0.0)
