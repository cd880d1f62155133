"""Jacobian losses against closed forms, jax.jacrev, finite differences and Proposition 1 of Srinivas & Fleuret (ICML 2018)."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from kdjax import losses
from kdjax.losses import jacobian as jac

D, K, B = 6, 4, 5


def linear(w, b):
    return lambda x: x @ w + b


def relu_net(params):
    w1, b1, w2 = params
    return lambda x: jax.nn.relu(x @ w1 + b1) @ w2


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_input_gradients_linear_closed_form(rng):
    w, b = rng.normal(size=(D, K)), rng.normal(size=K)
    x, idx = rng.normal(size=(B, D)), rng.integers(0, K, B)
    g = losses.input_gradients(linear(jnp.asarray(w), jnp.asarray(b)), jnp.asarray(x), jnp.asarray(idx))
    np.testing.assert_allclose(g, w[:, idx].T, rtol=1e-6)


def test_input_gradients_piecewise_linear_closed_form(rng):
    w1, b1, w2 = rng.normal(size=(D, 8)), rng.normal(size=8), rng.normal(size=(8, K))
    x, idx = rng.normal(size=(B, D)), rng.integers(0, K, B)
    g = losses.input_gradients(relu_net([jnp.asarray(a) for a in (w1, b1, w2)]), jnp.asarray(x), jnp.asarray(idx))
    active = (x @ w1 + b1 > 0).astype(float)                       # [B, 8]
    expected = np.einsum("dh,bh,bh->bd", w1, active, w2[:, idx].T)  # W1 diag(relu') W2[:, c]
    np.testing.assert_allclose(g, expected, rtol=1e-5)


@pytest.mark.parametrize("normalize", [False, True])
def test_jacobian_matching_linear_closed_form(rng, normalize):
    ws, wt = rng.normal(size=(D, K)), rng.normal(size=(D, K))
    x, y = rng.normal(size=(B, D)), rng.integers(0, K, B)
    gs, gt = ws[:, y].T, wt[:, y].T
    if normalize:
        gs = gs / np.linalg.norm(gs, axis=1, keepdims=True)
        gt = gt / np.linalg.norm(gt, axis=1, keepdims=True)
    expected = np.mean(np.sum((gs - gt) ** 2, axis=1))
    got = losses.jacobian_matching(linear(jnp.asarray(ws), 0.0), linear(jnp.asarray(wt), 0.0), jnp.asarray(x),
                                   jnp.asarray(y), normalize=normalize)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    got_mean = losses.jacobian_matching(linear(jnp.asarray(ws), 0.0), linear(jnp.asarray(wt), 0.0),
                                        jnp.asarray(x), jnp.asarray(y), normalize=normalize, reduction="mean")
    np.testing.assert_allclose(got_mean, expected / D, rtol=1e-5)


def test_teacher_top_selects_teacher_argmax(rng):
    ws, wt, bt = rng.normal(size=(D, K)), rng.normal(size=(D, K)), rng.normal(size=K)
    x = rng.normal(size=(B, D))
    top = np.argmax(x @ wt + bt, axis=1)
    expected = np.mean(np.sum((ws[:, top].T - wt[:, top].T) ** 2, axis=1))
    got = losses.jacobian_matching(linear(jnp.asarray(ws), 0.0), linear(jnp.asarray(wt), jnp.asarray(bt)),
                                   jnp.asarray(x), jnp.zeros(B, jnp.int32), select="teacher_top")
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_parameter_gradients_match_finite_differences(rng):
    """Double backprop: d/dparams of a loss built from input gradients, against central differences (fp64)."""
    with jax.enable_x64():
        x = jnp.asarray(rng.normal(size=(B, D)))
        y = jnp.asarray(rng.integers(0, K, B))
        t_params = [jnp.asarray(rng.normal(size=s)) for s in ((D, 7), (7,), (7, K))]
        s_params = [jnp.asarray(rng.normal(size=s)) for s in ((D, 7), (7,), (7, K))]
        smooth = lambda p: (lambda inp: jnp.tanh(inp @ p[0] + p[1]) @ p[2])
        teacher = smooth(t_params)
        for normalize in (False, True):
            loss = lambda *p: losses.jacobian_matching(smooth(p), teacher, x, y, normalize=normalize)
            check_grads(loss, s_params, order=1, modes=["rev"])
        check_grads(lambda *p: losses.jacobian_norm_penalty(smooth(p), x, y), s_params, order=1, modes=["rev"])
        key = jax.random.key(3)
        check_grads(lambda *p: losses.jacobian_matching_jvp(smooth(p), teacher, x, key, num_tangents=3), s_params,
                    order=1, modes=["rev"])


def _exact_frobenius(student, teacher, x):
    js = jax.vmap(jax.jacrev(lambda v: student(v[None])[0]))(x)  # [B, K, D]
    jt = jax.vmap(jax.jacrev(lambda v: teacher(v[None])[0]))(x)
    return jnp.mean(jnp.sum(jnp.square(js - jt), axis=(1, 2)))


def test_jvp_estimator_exact_with_scaled_basis_and_unbiased_with_gaussians(rng):
    with jax.enable_x64():
        s = relu_net([jnp.asarray(rng.normal(size=sh)) for sh in ((D, 8), (8,), (8, K))])
        t = relu_net([jnp.asarray(rng.normal(size=sh)) for sh in ((D, 8), (8,), (8, K))])
        x = jnp.asarray(rng.normal(size=(B, D)))
        exact = _exact_frobenius(s, t, x)
        basis = np.sqrt(D) * np.eye(D)[:, None, :].repeat(B, axis=1)  # [D, B, D]: sqrt(D) e_d for every example
        np.testing.assert_allclose(losses.jacobian_matching_jvp(s, t, x, tangents=jnp.asarray(basis)), exact,
                                   rtol=1e-10)
        mc = losses.jacobian_matching_jvp(s, t, x, jax.random.key(0), num_tangents=4000)
        np.testing.assert_allclose(mc, exact, rtol=0.05)
        # sigma is divided out: the estimate does not depend on the tangent scale
        mc2 = losses.jacobian_matching_jvp(s, t, x, jax.random.key(0), num_tangents=4000, sigma=0.1)
        np.testing.assert_allclose(mc2, mc, rtol=1e-10)


def test_proposition_1_noise_equals_activation_plus_jacobian_matching(rng):
    """E_xi ||T(x+xi) - S(x+xi)||^2 = ||T(x) - S(x)||^2 + sigma^2 ||J_T - J_S||_F^2 for small sigma (ReLU nets)."""
    with jax.enable_x64():
        s = relu_net([jnp.asarray(rng.normal(size=sh)) for sh in ((D, 16), (16,), (16, K))])
        t = relu_net([jnp.asarray(rng.normal(size=sh)) for sh in ((D, 16), (16,), (16, K))])
        x = jnp.asarray(rng.normal(size=(1, D)))
        sigma = 1e-3
        xi = sigma * jax.random.normal(jax.random.key(1), (20000, D), jnp.float64)
        xi = jnp.concatenate([xi, -xi])  # antithetic pairs cancel the first-order term exactly
        noisy = jnp.mean(jnp.sum(jnp.square(t(x + xi) - s(x + xi)), axis=-1))
        activation = jnp.sum(jnp.square(t(x) - s(x)))
        jacobian = _exact_frobenius(s, t, x)
        np.testing.assert_allclose((noisy - activation) / sigma**2, jacobian, rtol=0.03)


def test_jacobian_norm_penalty_all_outputs_is_frobenius(rng):
    with jax.enable_x64():
        w, b = rng.normal(size=(D, K)), rng.normal(size=K)
        x = jnp.asarray(rng.normal(size=(B, D)))
        f = linear(jnp.asarray(w), jnp.asarray(b))
        est = losses.jacobian_norm_penalty(f, x, jnp.zeros(B, jnp.int32), output="all", key=jax.random.key(0),
                                           num_tangents=4000)
        np.testing.assert_allclose(est, np.sum(w**2), rtol=0.05)  # ||J||_F^2 = ||W||_F^2 for every example


def test_jacobian_norm_penalty_closed_forms(rng):
    w, b = rng.normal(size=(D, K)), rng.normal(size=K)
    x, y = rng.normal(size=(B, D)), rng.integers(0, K, B)
    f = linear(jnp.asarray(w), jnp.asarray(b))
    np.testing.assert_allclose(losses.jacobian_norm_penalty(f, jnp.asarray(x), jnp.asarray(y)),
                               np.mean(np.sum(w[:, y].T ** 2, axis=1)), rtol=1e-5)
    # log-prob: grad log softmax_y = W[:, y] - W p
    z = x @ w + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    g = w[:, y].T - p @ w.T
    np.testing.assert_allclose(losses.jacobian_norm_penalty(f, jnp.asarray(x), jnp.asarray(y), output="log_prob"),
                               np.mean(np.sum(g**2, axis=1)), rtol=1e-5)


def test_per_example_gradients_need_running_statistics():
    """Eval-mode BN: example 0's input gradient ignores the rest of the batch; train-mode BN couples them."""
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, train):
            x = nn.Dense(8)(x)
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
            return nn.Dense(K)(nn.relu(x))

    net = Net()
    x = jax.random.normal(jax.random.key(0), (B, D))
    x_other = x.at[1:].set(jax.random.normal(jax.random.key(2), (B - 1, D)))  # same example 0, new batch-mates
    v = net.init(jax.random.key(1), x, train=False)
    idx = jnp.arange(B) % K
    eval_fn = lambda inp: net.apply(v, inp, train=False)
    train_fn = lambda inp: net.apply(v, inp, train=True, mutable=["batch_stats"])[0]
    g, g_other = (losses.input_gradients(eval_fn, inp, idx)[0] for inp in (x, x_other))
    np.testing.assert_allclose(g, g_other, rtol=1e-6)
    np.testing.assert_allclose(g, losses.input_gradients(eval_fn, x[:1], idx[:1])[0], rtol=1e-6)
    g, g_other = (losses.input_gradients(train_fn, inp, idx)[0] for inp in (x, x_other))
    assert not np.allclose(g, g_other, atol=1e-3)


def test_attention_map_and_argmax_pixel_hand_made():
    f = np.zeros((2, 5, 5, 3), np.float32)
    f[0, 1, 3] = [1.0, 2.0, 2.0]      # A = 9 at (1, 3)
    f[1, 4, 0] = [0.0, 3.0, 0.0]      # A = 9 at (4, 0)
    f[1, 2, 2] = [1.0, 1.0, 1.0]      # A = 3 at (2, 2)
    a = losses.attention_map(jnp.asarray(f))
    assert a.shape == (2, 5, 5) and float(a[0, 1, 3]) == 9.0 and float(a[1, 2, 2]) == 3.0
    assert jac.attention_window(5, 0.2) == 1 and jac.attention_window(56, 0.2) == 11
    pooled = jac.pool_attention(a, 2)  # 4x4 windows of 2x2
    np.testing.assert_allclose(pooled[0, 0, 2], 9.0 / 4)
    np.testing.assert_allclose(pooled[1, 1, 1], 3.0 / 4)
    onehot = jac.argmax_pixel(pooled)
    # example 0: windows covering (1, 3) tie at 9/4: the first is (0, 2); example 1: (4,0) is in window (3,0)
    assert np.argwhere(np.asarray(onehot[0])).tolist() == [[0, 2]]
    assert np.argwhere(np.asarray(onehot[1])).tolist() == [[3, 0]]


class _TinyConv(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        f1 = nn.relu(nn.Conv(4, (3, 3))(x))
        f2 = nn.relu(nn.Conv(3, (3, 3))(f1))
        return jnp.mean(f2, axis=(1, 2)) @ jnp.ones((3, 2)), {"feats": [f1, f2]}


def test_attention_jacobian_matching_matches_per_example_gradients():
    x = jax.random.normal(jax.random.key(0), (3, 10, 10, 2))
    s_net, t_net = _TinyConv(), _TinyConv()
    sv, tv = s_net.init(jax.random.key(1), x), t_net.init(jax.random.key(2), x)
    s_fn, t_fn = (lambda v, n: (lambda inp: n.apply(v, inp)))(sv, s_net), (lambda v, n: (lambda inp: n.apply(v, inp)))(tv, t_net)
    got = losses.attention_jacobian_matching(s_fn, t_fn, x, layer=("feats", 1), window_fraction=0.2)

    def pooled(fn, inp):
        a = losses.attention_map(fn(inp)[1]["feats"][1])
        return jac.pool_attention(a, 2)[0]   # window floor(10 * 0.2) = 2

    expected = []
    for i in range(3):
        xi = x[i:i + 1]
        i_star, j_star = np.unravel_index(np.argmax(pooled(t_fn, xi)), (9, 9))
        gs = jax.grad(lambda inp: pooled(s_fn, inp)[i_star, j_star])(xi).ravel()
        gt = jax.grad(lambda inp: pooled(t_fn, inp)[i_star, j_star])(xi).ravel()
        expected.append(np.sum((gs / np.linalg.norm(gs) - gt / np.linalg.norm(gt)) ** 2))
    np.testing.assert_allclose(got, np.mean(expected), rtol=1e-4)
    grads = jax.grad(lambda v: losses.attention_jacobian_matching(
        lambda inp: s_net.apply(v, inp), t_fn, x, layer=("feats", 1)))(sv)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    assert any(np.any(g != 0) for g in jax.tree.leaves(grads))
    with pytest.raises(ValueError, match="differ in shape"):
        losses.attention_jacobian_matching(s_fn, t_fn, x, layer=("feats", 1), teacher_layer=lambda t: t["feats"][0][:, :5])


def _np_at_code(fs, ft, p=2):
    def vec(f):
        a = np.mean(f ** p, axis=-1).reshape(f.shape[0], -1)
        return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    return np.mean((vec(fs) - vec(ft)) ** 2)


def _np_pool(f, size):
    b, h, w, c = f.shape
    return f.reshape(b, size, h // size, size, w // size, c).mean(axis=(2, 4))


def test_attention_transfer_code_and_paper_modes(rng):
    s = [np.abs(rng.normal(size=(4, 32, 32, 8))), np.abs(rng.normal(size=(4, 8, 8, 16)))]
    t = [np.abs(rng.normal(size=(4, 16, 16, 12))), np.abs(rng.normal(size=(4, 8, 8, 4))), rng.normal(size=(4, 2, 2, 1))]
    expected = _np_at_code(_np_pool(s[0], 16), t[0]) + _np_at_code(s[1], t[1])  # third teacher map: no partner
    got = losses.attention_transfer([jnp.asarray(a) for a in s], [jnp.asarray(a) for a in t])
    np.testing.assert_allclose(got, expected, rtol=1e-5)

    def paper(fs, ft):
        def vec(f):
            a = np.sum(f ** 2, axis=-1).reshape(f.shape[0], -1)
            return a / np.linalg.norm(a, axis=1, keepdims=True)
        return np.mean(np.linalg.norm(vec(fs) - vec(ft), axis=1))
    expected = paper(_np_pool(s[0], 16), t[0]) + paper(s[1], t[1])
    got = losses.attention_transfer([jnp.asarray(a) for a in s], [jnp.asarray(a) for a in t], mode="paper")
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # identical maps: zero loss with finite (zero) gradients in both modes
    for mode in ("code", "paper"):
        g = jax.grad(lambda a: losses.attention_transfer([a], [jnp.asarray(t[1])], mode=mode))(jnp.asarray(t[1]))
        assert np.all(np.isfinite(g))
