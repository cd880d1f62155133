"""One API for every public loss: a scalar that `jax.grad` differentiates as it stands (the stateful two with
`has_aux`), nonsensical hyper-parameters refused, per-example values through `reduction='none'`."""
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kdjax import losses

B, C, E = 6, 5, 8
rng = np.random.default_rng(0)
LOGITS_S = jnp.asarray(rng.normal(size=(B, C)) * 2, jnp.float32)
LOGITS_T = jnp.asarray(rng.normal(size=(B, C)) * 2, jnp.float32)
LABELS = jnp.asarray([0, 0, 1, 1, 2, 3], jnp.int32)
MULTI_HOT = jnp.asarray(rng.random((B, C)) < 0.4, jnp.float32).at[:, 0].set(1.0)
MAPS_S = jnp.asarray(rng.normal(size=(B, 4, 4, 3)), jnp.float32)
MAPS_T = jnp.asarray(rng.normal(size=(B, 4, 4, 3)), jnp.float32)
EMB_S = losses.l2_normalize(jnp.asarray(rng.normal(size=(B, E)), jnp.float32))
EMB_T = losses.l2_normalize(jnp.asarray(rng.normal(size=(B, E)), jnp.float32))
LABEL_EMB_S = jnp.asarray(rng.normal(size=(B, C, E)), jnp.float32)
LABEL_EMB_T = jnp.asarray(rng.normal(size=(B, C, E)), jnp.float32)
IMAGES = jnp.asarray(rng.normal(size=(B, 4, 4, 3)), jnp.float32)
NET = {"w": jnp.asarray(rng.normal(size=(3, 3)), jnp.float32), "v": jnp.asarray(rng.normal(size=(3, C)), jnp.float32)}
TEACHER_NET = jax.tree.map(lambda a: a * 0.5, NET)


def _net(params):
    def fn(x):
        feats = jnp.tanh(x @ params["w"])
        return jnp.mean(feats, axis=(1, 2)) @ params["v"], {"feats": [feats]}
    return fn


# name -> (the differentiated argument, a function of it that calls the loss with everything else fixed)
EXAMPLES = {
    "cross_entropy": (LOGITS_S, lambda z: losses.cross_entropy(z, LABELS)),
    "kd": (LOGITS_S, lambda z: losses.kd(z, LOGITS_T)),
    "logit_mse": (LOGITS_S, lambda z: losses.logit_mse(z, LOGITS_T)),
    "dkd": (LOGITS_S, lambda z: losses.dkd(z, LOGITS_T, LABELS)),
    "mlld": (LOGITS_S, lambda z: losses.mlld(z, LOGITS_T, z[::-1], LOGITS_T[::-1])),
    "dist": (LOGITS_S, lambda z: losses.dist(z, LOGITS_T, tau=4.0)),
    "fitnet": (MAPS_S, lambda f: losses.fitnet(f, MAPS_T)),
    "attention_transfer": (MAPS_S, lambda f: losses.attention_transfer([f], [MAPS_T])),
    "ofd": (MAPS_S, lambda f: losses.ofd([f], [MAPS_T], [-jnp.ones(3)])),
    "review_hcl": (MAPS_S, lambda f: losses.review_hcl([f], [MAPS_T])),
    "vid": (MAPS_S, lambda f: losses.vid(f, MAPS_T, jnp.zeros(3))),
    "rkd": (EMB_S, lambda e: losses.rkd(e, EMB_T)),
    "pkt": (EMB_S, lambda e: losses.pkt(e, EMB_T)),
    "similarity_kl": (EMB_S, lambda e: losses.similarity_kl(e, EMB_T)),
    "multi_similarity": (EMB_S, lambda e: losses.multi_similarity(e, LABELS)),
    "margin": (EMB_S, lambda e: losses.margin(e, LABELS, jnp.asarray([[0, 1, 2], [2, 3, 4]]), jnp.ones(4))),
    "proxy_anchor": (EMB_S, lambda e: losses.proxy_anchor(e, LABELS, EMB_T[:4])),
    "focal_bce": (LOGITS_S, lambda z: losses.focal_bce(z, MULTI_HOT)),
    "mld": (LOGITS_S, lambda z: losses.mld(z, LOGITS_T)),
    "led": (LABEL_EMB_S, lambda e: losses.led(e, LABEL_EMB_T, MULTI_HOT)),
    "led_class_aware": (LABEL_EMB_S, lambda e: losses.led_class_aware(e, LABEL_EMB_T, MULTI_HOT)),
    "led_instance_aware": (LABEL_EMB_S, lambda e: losses.led_instance_aware(e, LABEL_EMB_T, MULTI_HOT)),
    "huber_distance": (LABEL_EMB_S[0], lambda e: losses.huber_distance(e, LABEL_EMB_T[0], MULTI_HOT[0])),
    "partial_softmax": (LOGITS_S, lambda z: losses.partial_softmax(z, LOGITS_T, MULTI_HOT)),
    "positive_divide": (LOGITS_S, lambda z: losses.positive_divide(z, LOGITS_T, MULTI_HOT)),
    "negative_discrepancy": (LOGITS_S, lambda z: losses.negative_discrepancy(z, LOGITS_T, MULTI_HOT)),
    "multilabel_mse": (LOGITS_S, lambda z: losses.multilabel_mse(z, LOGITS_T)),
    "jacobian_matching": (NET, lambda p: losses.jacobian_matching(_net(p), _net(TEACHER_NET), IMAGES, LABELS)),
    "jacobian_matching_jvp": (NET, lambda p: losses.jacobian_matching_jvp(_net(p), _net(TEACHER_NET), IMAGES,
                                                                          jax.random.key(0))),
    "jacobian_norm_penalty": (NET, lambda p: losses.jacobian_norm_penalty(_net(p), IMAGES, LABELS)),
    "attention_jacobian_matching": (NET, lambda p: losses.attention_jacobian_matching(
        _net(p), _net(TEACHER_NET), IMAGES, layer=("feats", 0))),
}


def _crd(v):
    state = losses.crd_init_state(jax.random.key(0), 12, E)
    return losses.crd(v, EMB_T, state, jnp.asarray(rng.integers(0, 12, (B, 4))))


def _icd(a):
    cache = losses.icd_init_cache(C, E, capacity=2)
    return losses.icd_intra(a, EMB_T, LABELS, jnp.ones(B, bool), cache)


STATEFUL_EXAMPLES = {"crd": (EMB_S, _crd), "icd_intra": (EMB_S, _icd)}


def test_every_public_name_is_a_loss_a_stateful_loss_or_a_helper():
    public = {n for n, v in vars(losses).items() if callable(v) and not n.startswith("_") and not inspect.ismodule(v)}
    listed = losses.LOSSES + losses.STATEFUL + losses.HELPERS
    assert len(listed) == len(set(listed)) and public == set(listed)
    assert set(EXAMPLES) == set(losses.LOSSES) and set(STATEFUL_EXAMPLES) == set(losses.STATEFUL)


@pytest.mark.parametrize("name", losses.LOSSES)
def test_every_loss_is_a_scalar_that_jax_grad_differentiates(name):
    argument, fn = EXAMPLES[name]
    value = fn(argument)
    assert jnp.shape(value) == () and np.isfinite(float(value)), name
    grad = jax.grad(fn)(argument)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grad)), name
    assert any(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(grad)), f"{name}: zero gradient"


@pytest.mark.parametrize("name", losses.STATEFUL)
def test_stateful_losses_differentiate_with_has_aux(name):
    argument, fn = STATEFUL_EXAMPLES[name]
    (value, state) = fn(argument)
    assert jnp.shape(value) == () and isinstance(state, dict)
    grad, _ = jax.grad(fn, has_aux=True)(argument)
    assert np.all(np.isfinite(grad)) and np.any(grad != 0)


@pytest.mark.parametrize("call, message", [
    (lambda: losses.kd(LOGITS_S, LOGITS_T, temperature=-1.0), "kd: temperature=-1.0 must be > 0"),
    (lambda: losses.kd(LOGITS_S, LOGITS_T, temperature=0), "kd: temperature=0 must be > 0"),
    (lambda: losses.dkd(LOGITS_S, LOGITS_T, LABELS, beta=-8.0), "dkd: beta=-8.0 must be >= 0"),
    (lambda: losses.cross_entropy(LOGITS_S, LABELS, label_smoothing=1.5), "label_smoothing=1.5 must lie in"),
    (lambda: losses.cross_entropy(LOGITS_S, LABELS, label_smoothing=-0.1), "label_smoothing=-0.1 must be >= 0"),
    (lambda: losses.mlld(LOGITS_S, LOGITS_T, LOGITS_S, LOGITS_T, temperatures=(4.0, 0.0)),
     r"temperatures\[1\]=0.0 must be > 0"),
    (lambda: losses.margin(EMB_S, LABELS, jnp.asarray([[0, 1, 2]]), jnp.ones(4), margin=-0.2),
     "margin: margin=-0.2 must be >= 0"),
    (lambda: losses.multi_similarity(EMB_S, LABELS, alpha=-2.0), "alpha=-2.0 must be > 0"),
    (lambda: losses.proxy_anchor(EMB_S, LABELS, EMB_T[:4], delta=-0.1), "delta=-0.1 must be >= 0"),
    (lambda: losses.similarity_kl(EMB_S, EMB_T, temperature=-1.0), "similarity_kl: temperature=-1.0"),
    (lambda: losses.rkd(EMB_S, EMB_T, angle_weight=-50.0), "angle_weight=-50.0 must be >= 0"),
    (lambda: losses.focal_bce(LOGITS_S, MULTI_HOT, gamma=-2.0), "gamma=-2.0 must be >= 0"),
    (lambda: losses.positive_divide(LOGITS_S, LOGITS_T, MULTI_HOT, temperature=0.0), "temperature=0.0 must be > 0"),
    (lambda: losses.negative_discrepancy(LOGITS_S, LOGITS_T, MULTI_HOT, temperature=-4.0), "temperature=-4.0"),
    (lambda: losses.led(LABEL_EMB_S, LABEL_EMB_T, MULTI_HOT, id_weight=-1.0), "id_weight=-1.0 must be >= 0"),
    (lambda: losses.crd_update_memory(losses.crd_init_state(jax.random.key(0), 12, E), EMB_S, EMB_T,
                                      jnp.arange(B), momentum=1.5), "momentum=1.5 must lie in"),
    (lambda: losses.jacobian_matching_jvp(_net(NET), _net(NET), IMAGES, jax.random.key(0), num_tangents=0),
     "num_tangents=0 must be > 0"),
    (lambda: losses.attention_transfer([MAPS_S], [MAPS_T], p=0), "p=0 must be > 0"),
    (lambda: losses.kd(LOGITS_S, LOGITS_T, reduction="batchmean"), r"reduction='batchmean'; valid: \['mean'"),
    (lambda: losses.dist(LOGITS_S, LOGITS_T, gamma=-1.0), "dist: gamma=-1.0 must be >= 0"),
    (lambda: losses.mlld(LOGITS_S, LOGITS_T, LOGITS_S, LOGITS_T, temperatures=(2.0, 3.0)),
     r"temperatures=\(2.0, 3.0\); the official sums take 5"),
    (lambda: losses.ctkd_lambda(3, num_loops=0), "num_loops=0 must be > 0"),
])
def test_nonsensical_hyper_parameters_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_hyper_parameters_given_as_arrays_are_not_checked_under_jit():
    """A traced temperature cannot be inspected; it is the caller's (a CTKD-style learnable temperature)."""
    value = jax.jit(lambda t: losses.kd(LOGITS_S, LOGITS_T, temperature=t))(jnp.float32(2.0))
    np.testing.assert_allclose(value, losses.kd(LOGITS_S, LOGITS_T, temperature=2.0), rtol=1e-6)


PER_EXAMPLE = {  # name -> (call with a reduction, the default reduction)
    "cross_entropy": (lambda r: losses.cross_entropy(LOGITS_S, LABELS, reduction=r), "mean"),
    "kd": (lambda r: losses.kd(LOGITS_S, LOGITS_T, reduction=r), "mean"),
    "logit_mse": (lambda r: losses.logit_mse(LOGITS_S, LOGITS_T, reduction=r), "mean"),
    "dkd": (lambda r: losses.dkd(LOGITS_S, LOGITS_T, LABELS, reduction=r), "mean"),
    "focal_bce": (lambda r: losses.focal_bce(LOGITS_S, MULTI_HOT, reduction=r), "sum"),
    "mld": (lambda r: losses.mld(LOGITS_S, LOGITS_T, reduction=r), "mean"),
    "similarity_kl": (lambda r: losses.similarity_kl(EMB_S, EMB_T, reduction=r), "mean"),
}


@pytest.mark.parametrize("name", sorted(PER_EXAMPLE))
def test_reduction_none_gives_per_example_values_that_reduce_to_the_default(name):
    call, default = PER_EXAMPLE[name]
    per_example = np.asarray(call("none"), np.float64)
    assert per_example.shape == (B,)
    expected = per_example.mean() if default == "mean" else per_example.sum()
    np.testing.assert_allclose(float(getattr(losses, name)(*_default_args(name))), expected, rtol=1e-5)
    np.testing.assert_allclose(float(call("sum")), per_example.sum(), rtol=1e-5)
    np.testing.assert_allclose(float(call("mean")), per_example.mean(), rtol=1e-5)


def _default_args(name):
    return {"cross_entropy": (LOGITS_S, LABELS), "kd": (LOGITS_S, LOGITS_T), "logit_mse": (LOGITS_S, LOGITS_T),
            "dkd": (LOGITS_S, LOGITS_T, LABELS), "focal_bce": (LOGITS_S, MULTI_HOT), "mld": (LOGITS_S, LOGITS_T),
            "similarity_kl": (EMB_S, EMB_T)}[name]


def test_per_example_kd_is_each_rows_scaled_kl():
    """kd's per-example values against a NumPy restatement: T^2 KL(softmax(t/T) || softmax(s/T)) per row."""
    t = 3.0
    p_t = np.exp(np.asarray(LOGITS_T, np.float64) / t)
    p_t /= p_t.sum(1, keepdims=True)
    log_p_s = np.asarray(LOGITS_S, np.float64) / t
    log_p_s -= np.log(np.exp(log_p_s).sum(1, keepdims=True))
    expected = t * t * np.sum(p_t * (np.log(p_t) - log_p_s), axis=1)
    np.testing.assert_allclose(losses.kd(LOGITS_S, LOGITS_T, temperature=t, reduction="none"), expected, rtol=1e-5)
