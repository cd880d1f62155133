"""Logit standardization, DIST and CTKD against NumPy restatements of their official code: values and gradients
(central differences of the NumPy function) in float64 and float32, the invariances that define them, and CTKD's
reversed gradient on the temperature worked by hand."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kdjax import losses
from tests.losses.test_zoo_losses import kl_rows, np_dkd, np_mlld_official, softmax

DTYPES = {"float64": (np.float64, 1e-9), "float32": (np.float32, 1e-5)}


@pytest.fixture(params=sorted(DTYPES))
def precision(request):
    """(NumPy dtype, relative tolerance); float64 runs under jax.enable_x64."""
    dtype, rtol = DTYPES[request.param]
    if dtype is np.float64:
        with jax.enable_x64():
            yield dtype, rtol
    else:
        yield dtype, rtol


def np_normalize(z):
    """logit-standardization-KD `normalize`: (z - mean) / (1e-7 + std), torch's unbiased std."""
    return (z - z.mean(-1, keepdims=True)) / (1e-7 + z.std(-1, ddof=1, keepdims=True))


def np_kd(zs, zt, T):
    return T * T * np.mean(kl_rows(softmax(zt / T), softmax(zs / T)))


def np_dist(zs, zt, beta=1.0, gamma=1.0, tau=1.0, eps=1e-8):
    """hunto/image_classification_sota dist_kd.py: 1 - mean Pearson over rows (inter) and over columns (intra)."""
    def pearson(a, b):
        a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
        return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + eps)
    ys, yt = softmax(zs / tau), softmax(zt / tau)
    inter = tau ** 2 * (1 - pearson(ys, yt).mean())
    intra = tau ** 2 * (1 - pearson(ys.T, yt.T).mean())
    return beta * inter + gamma * intra


def numeric_grad(f, x, h=1e-6):
    """Central differences of a float64 NumPy function."""
    x = np.array(x, np.float64)
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += h
        down[idx] -= h
        grad[idx] = (f(up) - f(down)) / (2 * h)
    return grad


def check_value_and_grad(jax_fn, np_fn, args, dtype, rtol, grad_atol=None):
    """jax_fn(*args) against np_fn(*args) and d/d args[0] against central differences of np_fn (float64)."""
    args64 = [np.asarray(a, np.float64) for a in args]
    jargs = [jnp.asarray(a.astype(dtype)) for a in args64]
    value, grad = jax.value_and_grad(jax_fn)(*jargs)
    assert value.dtype == dtype
    np.testing.assert_allclose(value, np_fn(*args64), rtol=rtol)
    expected = numeric_grad(lambda x: np_fn(x, *args64[1:]), args64[0])
    scale = np.abs(expected).max()
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=grad_atol or 1e-6 * scale if dtype is np.float64
                               else 1e-4 * scale)


@pytest.fixture
def logits():
    rng = np.random.default_rng(0)
    return rng.normal(0, 3, (16, 10)), rng.normal(0, 3, (16, 10))


# ---- logit standardization ---------------------------------------------------------------------------------------
def test_logit_standardize_is_the_official_z_score(precision):
    dtype, rtol = precision
    z = np.random.default_rng(1).normal(2.0, 5.0, (8, 10))
    got = losses.logit_standardize(jnp.asarray(z.astype(dtype)))
    np.testing.assert_allclose(got, np_normalize(z), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(np.std(np.asarray(got, np.float64), -1, ddof=1), 1.0, rtol=1e-5)
    check_value_and_grad(lambda a: jnp.sum(losses.logit_standardize(a) * jnp.arange(10.0, dtype=a.dtype)),
                         lambda a: np.sum(np_normalize(a) * np.arange(10.0)), (z,), dtype, rtol)


@pytest.mark.parametrize("T", [2.0, 3.0])
def test_kd_with_logit_stand_matches_numpy(precision, logits, T):
    dtype, rtol = precision
    check_value_and_grad(lambda s, t: losses.kd(s, t, temperature=T, logit_stand=True),
                         lambda s, t: np_kd(np_normalize(s), np_normalize(t), T), logits, dtype, rtol)


def test_dkd_with_logit_stand_matches_numpy(precision, logits):
    dtype, rtol = precision
    y = np.random.default_rng(2).integers(0, 10, 16)
    check_value_and_grad(
        lambda s, t: losses.dkd(s, t, jnp.asarray(y), alpha=9.0, beta=81.0, temperature=4.0, logit_stand=True),
        lambda s, t: np_dkd(np_normalize(s), np_normalize(t), y, 9.0, 81.0, 4.0), logits, dtype, rtol)


def test_mlld_with_logit_stand_standardizes_only_the_kd_terms(precision):
    """logit-standardization-KD MLKD.py: kd_loss(..., logit_stand) on every KD term, cc_loss / bc_loss and the
    confidence masks on the raw logits; the base temperature (2 in its runs) replaces MLLD's 4 everywhere."""
    dtype, rtol = precision
    rng = np.random.default_rng(3)
    views = [rng.normal(0, 2, (16, 10)) for _ in range(4)]
    temperatures = (2.0, 3.0, 5.0, 2.0, 6.0)
    got = losses.mlld(*(jnp.asarray(v.astype(dtype)) for v in views), temperatures=temperatures, logit_stand=True)
    expected = np_mlld_official(*views, Ts=temperatures, standardize=np_normalize)
    np.testing.assert_allclose(got, expected, rtol=rtol)
    # the KD terms moved and the rest did not: the same sum without standardization differs
    assert abs(expected - np_mlld_official(*views, Ts=temperatures)) > 1e-3 * abs(expected)


@pytest.mark.parametrize("loss", ["kd", "dkd", "ctkd"])
@jax.enable_x64()
def test_logit_stand_ignores_a_shift_and_scale_of_the_student_logits(loss, logits):
    """The point of LS: a student whose logits are a * z + b (a > 0, b per example) is as good as one with z, up to
    the 1e-7 in the z-score's denominator (float64, so that float32 rounding does not hide a broken invariance).
    MLLD's KD terms are `kd`'s; its CC / BC terms see the raw logits, as in the official code, so MLLD is not."""
    zs, zt = (jnp.asarray(z) for z in logits)
    shift = jnp.asarray(np.random.default_rng(4).normal(0, 5, (16, 1)))
    y = jnp.asarray(np.random.default_rng(5).integers(0, 10, 16))
    temperature = float(losses.ctkd_temperature(jnp.float32(1.0), -0.5))
    fns = {
        "kd": lambda s, stand: losses.kd(s, zt, temperature=2.0, logit_stand=stand),
        "dkd": lambda s, stand: losses.dkd(s, zt, y, alpha=9.0, beta=81.0, logit_stand=stand),
        "ctkd": lambda s, stand: losses.kd(s, zt, temperature=temperature, logit_stand=stand),
    }
    fn = fns[loss]
    for changed in (3.5 * zs + shift, 0.2 * zs - shift):
        np.testing.assert_allclose(fn(changed, True), fn(zs, True), rtol=1e-6)
        assert abs(float(fn(changed, False)) - float(fn(zs, False))) > 0.05  # without LS the change matters


def test_logit_standardize_refuses_a_single_class():
    with pytest.raises(ValueError, match="1 class"):
        losses.logit_standardize(jnp.zeros((4, 1)))


# ---- DIST --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tau,beta,gamma", [(1.0, 1.0, 1.0), (4.0, 1.0, 1.0), (4.0, 2.0, 0.5)])
def test_dist_matches_numpy(precision, logits, tau, beta, gamma):
    dtype, rtol = precision
    check_value_and_grad(lambda s, t: losses.dist(s, t, beta=beta, gamma=gamma, tau=tau),
                         lambda s, t: np_dist(s, t, beta, gamma, tau), logits, dtype, max(rtol, 1e-6))


def test_dist_is_zero_when_the_student_equals_the_teacher(logits):
    zs = jnp.asarray(logits[0], jnp.float32)
    np.testing.assert_allclose(losses.dist(zs, zs, tau=4.0), 0.0, atol=1e-5)
    grad = jax.grad(losses.dist)(zs, zs, tau=4.0)
    np.testing.assert_allclose(grad, 0.0, atol=1e-4)
    assert float(losses.dist(zs, jnp.asarray(logits[1], jnp.float32), tau=4.0)) > 0.1


def test_dist_is_invariant_to_a_per_example_shift_and_sees_only_relations(logits):
    """Softmax ignores a per-example shift; Pearson ignores a positive scale of the probabilities' deviations, so
    inter-class relation only counts the ranking shape, and a student with the teacher's logits + c is perfect."""
    zs, zt = (jnp.asarray(z, jnp.float32) for z in logits)
    shift = jnp.asarray(np.random.default_rng(6).normal(0, 5, (16, 1)), jnp.float32)
    np.testing.assert_allclose(losses.dist(zs + shift, zt, tau=4.0), losses.dist(zs, zt, tau=4.0), rtol=1e-5)
    np.testing.assert_allclose(losses.dist(zt + shift, zt, tau=4.0), 0.0, atol=1e-5)


def test_dist_refuses_bad_options():
    z = jnp.zeros((4, 5))
    with pytest.raises(ValueError, match="tau=0"):
        losses.dist(z, z, tau=0.0)
    with pytest.raises(ValueError, match="beta=-1"):
        losses.dist(z, z, beta=-1.0)


# ---- CTKD --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("epoch,expected", [(0, 0.0), (1, (np.cos(np.pi / 10) + 1) / 2 - 1), (5, -0.5), (10, -1.0),
                                            (240, -1.0)])
def test_ctkd_lambda_is_the_official_cosine_decay(epoch, expected):
    """CTKD train_student.py CosineDecay(max 0, min -1, loops 10), by hand: lambda(5) = (cos(pi/2) + 1)/2 - 1."""
    np.testing.assert_allclose(losses.ctkd_lambda(epoch), expected, atol=1e-6)


def test_gradient_reversal_is_identity_forward_and_scales_backward():
    x = jnp.array([0.3, -1.2])
    np.testing.assert_array_equal(losses.gradient_reversal(x, -0.7), x)
    grad = jax.grad(lambda a: jnp.sum(losses.gradient_reversal(a, -0.7) * jnp.array([2.0, 3.0])))(x)
    np.testing.assert_allclose(grad, [-1.4, -2.1], rtol=1e-6)


@pytest.mark.parametrize("lam", [0.0, -0.5, -1.0])
def test_ctkd_temperature_gradient_is_reversed_by_lambda(logits, lam):
    """dL/dg by hand: T = 1 + 20 sigmoid(g), so d/dg = lambda * dL/dT * 20 sigmoid(g)(1 - sigmoid(g)), with dL/dT the
    KD loss's own temperature derivative (central differences of the NumPy KD). lambda < 0: the temperature moves to
    raise the distillation loss the student lowers."""
    zs, zt = logits
    g = 1.0
    sig = 1.0 / (1.0 + np.exp(-g))
    t = 1.0 + 20.0 * sig
    dl_dt = (np_kd(zs, zt, t + 1e-5) - np_kd(zs, zt, t - 1e-5)) / 2e-5

    def loss(g_):
        temperature = losses.ctkd_temperature(g_, lam)
        return losses.kd(jnp.asarray(zs, jnp.float32), jnp.asarray(zt, jnp.float32), temperature=temperature)

    value, grad = jax.value_and_grad(loss)(jnp.float32(g))
    np.testing.assert_allclose(value, np_kd(zs, zt, t), rtol=1e-5)
    np.testing.assert_allclose(grad, lam * dl_dt * 20.0 * sig * (1 - sig), rtol=1e-3, atol=1e-7)
    if lam < 0:
        assert np.sign(grad) == -np.sign(dl_dt)


def test_ctkd_temperature_stays_in_its_range():
    g = jnp.array([-50.0, 0.0, 50.0])
    np.testing.assert_allclose(losses.ctkd_temperature(g, -1.0), [1.0, 11.0, 21.0], atol=1e-4)
    with pytest.raises(ValueError, match="t_start=0"):
        losses.ctkd_temperature(g, -1.0, t_start=0.0)


@pytest.mark.parametrize("stand", [False, True])
def test_the_temperature_gradient_of_kd_and_dkd_is_finite_and_matches_numpy(precision, logits, stand):
    """CTKD differentiates the teacher's probabilities through T: DKD's non-target softmax and a saturated teacher
    hold exact zeros there, whose 0 log 0 must not turn the gradient into NaN (torch's kl_div leaves them out)."""
    dtype, rtol = precision
    zs, zt = (np.asarray(z, np.float64) for z in logits)
    zt[0, 3] = 1e3  # saturated: its probabilities are exactly one-hot
    y = np.random.default_rng(7).integers(0, 10, 16)
    prep = np_normalize if stand else (lambda z: z)
    cases = {
        "kd": (lambda t: losses.kd(jnp.asarray(zs, dtype), jnp.asarray(zt, dtype), temperature=t, logit_stand=stand),
               lambda t: np_kd(prep(zs), prep(zt), t)),
        "dkd": (lambda t: losses.dkd(jnp.asarray(zs, dtype), jnp.asarray(zt, dtype), jnp.asarray(y), alpha=1.0,
                                     beta=2.0, temperature=t, logit_stand=stand),
                lambda t: np_dkd(prep(zs), prep(zt), y, 1.0, 2.0, t)),
    }
    for name, (jax_fn, np_fn) in cases.items():
        value, grad = jax.value_and_grad(jax_fn)(jnp.asarray(3.0, dtype))
        expected = (np_fn(3.0 + 1e-5) - np_fn(3.0 - 1e-5)) / 2e-5
        np.testing.assert_allclose(value, np_fn(3.0), rtol=max(rtol, 1e-6), err_msg=name)
        np.testing.assert_allclose(grad, expected, rtol=1e-4, err_msg=name)
    zero = jnp.zeros((4, 10), dtype)
    for fn in (lambda t: losses.dkd(zero, zero, jnp.arange(4), temperature=t, logit_stand=stand),
               lambda t: losses.kd(zero, zero.at[:, 0].set(1e4), temperature=t, logit_stand=stand)):
        assert np.isfinite(jax.grad(fn)(jnp.asarray(3.0, dtype)))
