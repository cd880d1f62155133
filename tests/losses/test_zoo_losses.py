"""The single-label KD zoo losses (mdistiller / RepDistiller formulas) against NumPy restatements, edge cases of
section 6, invariants and gradient checks. NumPy references are written from the equations, in float64."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy.stats import norm as scipy_norm

from kdjax import losses


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64():
        yield


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def kl_rows(p, q):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sum(np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0), axis=-1)


# ---- DKD ----------------------------------------------------------------------------------------------------------
def np_dkd(zs, zt, y, alpha, beta, T):
    B, C = zs.shape
    ps, pt = softmax(zs / T), softmax(zt / T)
    bs = np.stack([ps[np.arange(B), y], 1 - ps[np.arange(B), y]], 1)
    bt = np.stack([pt[np.arange(B), y], 1 - pt[np.arange(B), y]], 1)
    tckd = np.sum(kl_rows(bt, bs)) * T * T / B
    # non-target distributions: renormalised probabilities over the classes != y
    qs, qt = ps.copy(), pt.copy()
    qs[np.arange(B), y] = 0
    qt[np.arange(B), y] = 0
    qs /= qs.sum(1, keepdims=True)
    qt /= qt.sum(1, keepdims=True)
    nckd = np.sum(kl_rows(qt, qs)) * T * T / B
    return alpha * tckd + beta * nckd


def test_dkd_matches_numpy_including_wrong_teacher():
    rng = np.random.default_rng(0)
    zs, zt = rng.normal(0, 3, (64, 100)), rng.normal(0, 3, (64, 100))
    y = rng.integers(0, 100, 64)
    zt[:8, :] -= 10.0
    zt[np.arange(8), (y[:8] + 1) % 100] += 30.0  # teacher confidently wrong on 8 examples
    got = losses.dkd(jnp.asarray(zs), jnp.asarray(zt), jnp.asarray(y), alpha=1.0, beta=8.0, temperature=4.0)
    # softmax(z - 1000 onehot) leaves exp(-1000/...) ~ 0 on the target: the renormalised form agrees to ~1e-10
    np.testing.assert_allclose(got, np_dkd(zs, zt, y, 1.0, 8.0, 4.0), rtol=1e-8)
    np.testing.assert_allclose(losses.dkd(jnp.asarray(zs), jnp.asarray(zs), jnp.asarray(y)), 0.0, atol=1e-10)
    check_grads(lambda a: losses.dkd(a, jnp.asarray(zt[:4, :6]), jnp.asarray(y[:4] % 6)), (jnp.asarray(zs[:4, :6]),),
                order=1, modes=["rev"])


# ---- MLLD ---------------------------------------------------------------------------------------------------------
def np_kd(zs, zt, T):
    return T * T * np.mean(kl_rows(softmax(zt / T), softmax(zs / T)))


def np_mlld_official(zsw, ztw, zss, zts, Ts=(4.0, 3.0, 5.0, 2.0, 6.0), standardize=None):
    """Jin-Ying/Multi-Level-Logit-Distillation mlkd.py's sums; `standardize` applied to the KD terms' logits only,
    as sunshangquan/logit-standardization-KD MLKD.py does with logit_stand."""
    p1 = softmax(ztw)
    conf = p1.max(1)
    mask = (conf <= np.percentile(conf, 50)).astype(float)
    cconf = p1.sum(0)
    cmask = (cconf <= np.percentile(cconf, 50)).astype(float)
    B, C = zsw.shape
    kd = (lambda s, t, T: np_kd(standardize(s), standardize(t), T)) if standardize else np_kd
    total = mask.mean() * sum(kd(zsw, ztw, T) for T in Ts)
    total += kd(zss, zts, Ts[0]) + kd(zss, zts, Ts[1]) + kd(zss, zts, Ts[2]) + kd(zsw, ztw, Ts[3]) + kd(zsw, ztw, Ts[4])
    for T in Ts:
        ps, pt = softmax(zsw / T), softmax(ztw / T)
        total += cmask.mean() * np.sum((pt.T @ pt - ps.T @ ps) ** 2) / C
        total += mask.mean() * np.sum((pt @ pt.T - ps @ ps.T) ** 2) / B
    return total


def test_mlld_official_matches_numpy():
    rng = np.random.default_rng(1)
    zsw, ztw, zss, zts = (rng.normal(0, 2, (64, 100)) for _ in range(4))
    got = losses.mlld(*(jnp.asarray(a) for a in (zsw, ztw, zss, zts)))
    np.testing.assert_allclose(got, np_mlld_official(zsw, ztw, zss, zts), rtol=1e-8)


def test_mlld_paper_variant_selects_with_masks():
    rng = np.random.default_rng(2)
    zsw, ztw, zss, zts = (rng.normal(0, 2, (16, 10)) for _ in range(4))
    p1 = softmax(ztw)
    mask = (p1.max(1) <= np.percentile(p1.max(1), 50)).astype(float)
    cmask = (p1.sum(0) <= np.percentile(p1.sum(0), 50)).astype(float)
    expected = 0.0
    for zs, zt in ((zsw, ztw), (zss, zts)):
        for T in (4.0, 3.0, 5.0, 2.0, 6.0):
            ps, pt = softmax(zs / T), softmax(zt / T)
            expected += T * T * np.sum(mask * kl_rows(pt, ps)) / 16
            expected += np.sum((np.outer(mask, mask) * (pt @ pt.T - ps @ ps.T)) ** 2) / 16
            expected += np.sum((np.outer(cmask, cmask) * (pt.T @ pt - ps.T @ ps)) ** 2) / 10
    got = losses.mlld(*(jnp.asarray(a) for a in (zsw, ztw, zss, zts)), variant="paper")
    np.testing.assert_allclose(got, expected, rtol=1e-8)
    with pytest.raises(ValueError, match="variant='mine'"):
        losses.mlld(*(jnp.asarray(a) for a in (zsw, ztw, zss, zts)), variant="mine")


# ---- RKD ----------------------------------------------------------------------------------------------------------
def huber(x):
    return np.where(np.abs(x) < 1, 0.5 * x * x, np.abs(x) - 0.5)


def np_rkd(fs, ft, eps=1e-12):
    def dist(e):
        d = np.sqrt(np.maximum(((e[:, None, :] - e[None, :, :]) ** 2).sum(-1), eps))
        np.fill_diagonal(d, 0)
        return d / d[d > 0].mean()

    def angle(e):
        diff = e[None, :, :] - e[:, None, :]
        n = np.linalg.norm(diff, axis=-1, keepdims=True)
        u = diff / np.maximum(n, 1e-12)
        return np.einsum("ijd,ikd->ijk", u, u)

    return 25 * huber(dist(fs) - dist(ft)).mean() + 50 * huber(angle(fs) - angle(ft)).mean()


def test_rkd_matches_numpy_with_duplicate_rows():
    rng = np.random.default_rng(3)
    fs, ft = rng.normal(size=(64, 256)), rng.normal(size=(64, 256))
    fs[5] = fs[4]   # zero student distance -> clamped at eps, still counted as positive (reference behaviour)
    ft[10] = ft[11]
    got = losses.rkd(jnp.asarray(fs), jnp.asarray(ft))
    np.testing.assert_allclose(got, np_rkd(fs, ft), rtol=1e-6)
    assert np.isfinite(jax.grad(lambda a: losses.rkd(a, jnp.asarray(ft)))(jnp.asarray(fs))).all()
    np.testing.assert_allclose(losses.rkd(jnp.asarray(ft), jnp.asarray(ft)), 0.0, atol=1e-12)
    # scale invariance of both relational terms
    np.testing.assert_allclose(losses.rkd(jnp.asarray(3 * fs), jnp.asarray(ft)), got, rtol=1e-6)


# ---- PKT ----------------------------------------------------------------------------------------------------------
def np_pkt(fs, ft, eps=1e-7):
    def cond(x):
        x = x / (np.linalg.norm(x, axis=1, keepdims=True) + eps)
        k = (x @ x.T + 1) / 2
        return k / k.sum(1, keepdims=True)
    q, p = cond(fs), cond(ft)
    return np.mean(p * np.log((p + eps) / (q + eps)))


def test_pkt_matches_numpy_with_a_zero_row():
    rng = np.random.default_rng(4)
    fs, ft = rng.normal(size=(32, 64)), rng.normal(size=(32, 64))
    fs[3] = 0.0
    got = losses.pkt(jnp.asarray(fs), jnp.asarray(ft))
    np.testing.assert_allclose(got, np_pkt(fs, ft), rtol=1e-8)
    g = jax.grad(lambda a: losses.pkt(a, jnp.asarray(ft)))(jnp.asarray(fs))
    assert np.isfinite(g).all()
    assert abs(float(losses.pkt(jnp.asarray(ft), jnp.asarray(ft)))) < 1e-9


# ---- features: FitNet, OFD, ReviewKD, VID, adaptive pooling -------------------------------------------------------
def test_fitnet_is_elementwise_mse():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(4, 8, 8, 16)), rng.normal(size=(4, 8, 8, 16))
    np.testing.assert_allclose(losses.fitnet(jnp.asarray(a), jnp.asarray(b)), np.mean((a - b) ** 2), rtol=1e-10)
    with pytest.raises(ValueError, match="fitnet"):
        losses.fitnet(jnp.zeros((2, 4, 4, 8)), jnp.zeros((2, 4, 4, 16)))


def test_ofd_margins_against_scipy():
    rng = np.random.default_rng(6)
    gamma, beta = rng.normal(size=64), rng.normal(0, 2, size=64)
    beta[:4] = [5.0, 8.0, 12.0, -1.0]   # Phi(-beta/|gamma|) <= 1e-3 for the large positive ones
    gamma[:4] = [1.0, 1.0, 1.0, 0.5]
    expected = []
    for g, b in zip(gamma, beta):
        s = abs(g)
        cdf = scipy_norm.cdf(-b / s)
        expected.append(b - s * np.exp(-(b / s) ** 2 / 2) / np.sqrt(2 * np.pi) / cdf if cdf > 1e-3 else -3 * s)
    np.testing.assert_allclose(losses.ofd_margins(jnp.asarray(gamma), jnp.asarray(beta)), expected, rtol=1e-8)


def test_ofd_partial_l2_straddling_the_margin():
    # one channel, margin -1: hand-worked cases
    t = np.array([-2.0, -2.0, -0.5, -0.5, 0.7, 0.7])   # t <= m, t <= m, m < t <= 0, ..., t > 0
    s = np.array([-0.5, -3.0, 0.0, -0.9, 0.2, 1.0])
    expected_sum = (-0.5 + 1) ** 2 + 0.0 + (0.0 + 0.5) ** 2 + 0.0 + (0.2 - 0.7) ** 2 + (1.0 - 0.7) ** 2
    s4, t4 = jnp.asarray(s).reshape(1, 2, 3, 1), jnp.asarray(t).reshape(1, 2, 3, 1)
    got = losses.ofd([s4], [t4], [jnp.array([-1.0])])
    np.testing.assert_allclose(got, expected_sum, rtol=1e-12)
    # two stages: the shallower one is weighted 1/2; per stage the sum is divided by the batch size
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(4, 4, 4, 3)), rng.normal(size=(4, 4, 4, 3))
    m = jnp.asarray(rng.normal(size=3) - 1)
    one = float(losses.ofd([jnp.asarray(a)], [jnp.asarray(b)], [m]))
    two = float(losses.ofd([jnp.asarray(a), jnp.asarray(a)], [jnp.asarray(b), jnp.asarray(b)], [m, m]))
    np.testing.assert_allclose(two, 1.5 * one, rtol=1e-12)


def np_adaptive_pool(x, k):
    b, h, w, c = x.shape
    out = np.zeros((b, k, k, c))
    for i in range(k):
        for j in range(k):
            r0, r1 = i * h // k, -(-(i + 1) * h // k)
            c0, c1 = j * w // k, -(-(j + 1) * w // k)
            out[:, i, j] = x[:, r0:r1, c0:c1].mean(axis=(1, 2))
    return out


@pytest.mark.parametrize("h, k", [(32, 4), (7, 4), (5, 3), (8, 1)])
def test_adaptive_avg_pool_matches_torch_bins(h, k):
    x = np.random.default_rng(8).normal(size=(2, h, h, 3))
    np.testing.assert_allclose(losses.adaptive_avg_pool(jnp.asarray(x), k), np_adaptive_pool(x, k), rtol=1e-12)


def test_review_hcl_matches_numpy():
    rng = np.random.default_rng(9)
    sizes = (32, 16, 8, 1)
    fs = [rng.normal(size=(2, h, h, 4)) for h in sizes]
    ft = [rng.normal(size=(2, h, h, 4)) for h in sizes]
    expected = 0.0
    for a, b in zip(fs, ft):
        loss, cnt, tot = np.mean((a - b) ** 2), 1.0, 1.0
        for k in (4, 2, 1):
            if k >= a.shape[1]:
                continue
            cnt /= 2
            loss += np.mean((np_adaptive_pool(a, k) - np_adaptive_pool(b, k)) ** 2) * cnt
            tot += cnt
        expected += loss / tot
    got = losses.review_hcl([jnp.asarray(a) for a in fs], [jnp.asarray(b) for b in ft])
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_vid_matches_numpy_and_gradient_reaches_log_scale():
    rng = np.random.default_rng(10)
    mu, t = rng.normal(size=(4, 8, 8, 16)), rng.normal(size=(4, 8, 8, 16))
    alpha = np.full(16, np.log(np.exp(5 - 1e-5) - 1))  # sigma^2 starts at 5
    var = np.log1p(np.exp(alpha)) + 1e-5
    np.testing.assert_allclose(var, 5.0, rtol=1e-10)
    expected = np.mean(0.5 * ((mu - t) ** 2 / var + np.log(var)))
    np.testing.assert_allclose(losses.vid(jnp.asarray(mu), jnp.asarray(t), jnp.asarray(alpha)), expected, rtol=1e-10)
    check_grads(lambda a: losses.vid(jnp.asarray(mu[:1, :2, :2]), jnp.asarray(t[:1, :2, :2]), a),
                (jnp.asarray(alpha),), order=1, modes=["rev"])


# ---- CRD ----------------------------------------------------------------------------------------------------------
def test_crd_two_steps_against_numpy():
    """Two consecutive steps: Z fixed from the first step's scores; banks updated after scoring."""
    rng = np.random.default_rng(11)
    N, K, D, B, tau = 1000, 64, 16, 8, 0.07
    state = {k: jnp.asarray(v) if not isinstance(v, bool) else v
             for k, v in losses.crd_init_state(jax.random.key(0), N, D).items()}
    bank_s, bank_t = np.array(state["bank_s"], np.float64), np.array(state["bank_t"], np.float64)
    np.testing.assert_array_less(np.abs(bank_s), 1 / np.sqrt(D / 3) + 1e-7)
    z = None
    for step in range(2):
        vs = rng.normal(size=(B, D)); vs /= np.linalg.norm(vs, axis=1, keepdims=True)
        vt = rng.normal(size=(B, D)); vt /= np.linalg.norm(vt, axis=1, keepdims=True)
        y = rng.choice(N, B, replace=False)
        idx = np.concatenate([y[:, None], rng.integers(0, N, (B, K))], 1)
        s1 = np.exp(np.einsum("bkd,bd->bk", bank_t[idx], vs) / tau)
        s2 = np.exp(np.einsum("bkd,bd->bk", bank_s[idx], vt) / tau)
        if z is None:
            z = (s1.mean() * N, s2.mean() * N)

        def nce(p):
            mpn = K / N
            return -(np.log(p[:, 0] / (p[:, 0] + mpn + 1e-7)).sum() + np.log(mpn / (p[:, 1:] + mpn + 1e-7)).sum()) / B

        expected = nce(s1 / z[0]) + nce(s2 / z[1])
        state = dict(state, bank_s=jnp.asarray(bank_s), bank_t=jnp.asarray(bank_t))
        loss, state = losses.crd(jnp.asarray(vs), jnp.asarray(vt), state, jnp.asarray(idx), temperature=tau)
        np.testing.assert_allclose(loss, expected, rtol=1e-8)
        np.testing.assert_allclose([state["z_s"], state["z_t"]], z, rtol=1e-10)
        state = losses.crd_update_memory(state, jnp.asarray(vs), jnp.asarray(vt), jnp.asarray(y))
        for bank, v in ((bank_s, vs), (bank_t, vt)):
            mixed = 0.5 * bank[y] + 0.5 * v
            bank[y] = mixed / np.linalg.norm(mixed, axis=1, keepdims=True)
        np.testing.assert_allclose(state["bank_s"], bank_s, rtol=1e-10)
        np.testing.assert_allclose(state["bank_t"], bank_t, rtol=1e-10)
    # gradients reach both embeddings, not the banks
    g = jax.grad(lambda a, b: losses.crd(a, b, state, jnp.asarray(idx))[0], argnums=(0, 1))(
        jnp.asarray(vs), jnp.asarray(vt))
    assert all(np.abs(x).sum() > 0 for x in g)
