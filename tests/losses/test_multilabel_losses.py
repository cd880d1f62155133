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


# ---- distillation losses (3D, Li & Cheng, and its baselines) ---------------------------------------------------------
def _sig(z):
    return 1 / (1 + np.exp(-z))


def np_mld_reference(zs, zt, eps=1e-8, dtype=np.float32):
    """L2D mld.py: probabilities clamped to [eps, 1 - eps] in the working precision, batchmean."""
    ps = np.clip(_sig(zs.astype(dtype)), dtype(eps), dtype(1 - eps)).astype(dtype)
    pt = np.clip(_sig(zt.astype(dtype)), dtype(eps), dtype(1 - eps)).astype(dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = pt * (np.log(pt) - np.log(ps)) + (1 - pt) * (np.log(1 - pt) - np.log(1 - ps))
    return kl.sum() / zs.shape[0]


def np_pdist(e):
    sq = (e ** 2).sum(1)
    d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * e @ e.T, 1e-12))
    np.fill_diagonal(d, 0)
    return d


def np_huber_dist(s, t):
    """L2D huber_dist.py on the selected rows: pdists normalised by their positive mean, smooth-L1 sum / n."""
    ds, dt = np_pdist(s), np_pdist(t)
    ds, dt = ds / ds[ds > 0].mean(), dt / dt[dt > 0].mean()
    x = ds - dt
    return np.where(np.abs(x) < 1, 0.5 * x ** 2, np.abs(x) - 0.5).sum() / len(s)


def np_cd(es, et, y):
    return sum(np_huber_dist(es[y[:, c] == 1, c], et[y[:, c] == 1, c]) for c in range(y.shape[1])
               if (y[:, c] == 1).sum() >= 2)


def np_id(es, et, y):
    return sum(np_huber_dist(es[b, y[b] == 1], et[b, y[b] == 1]) for b in range(y.shape[0]) if (y[b] == 1).sum() >= 2)


def np_ps(zs, zt, y, tau=1.0, reduction="per_image"):
    """L2D psm.py: per image, per positive j: KL over [negatives..., j] of softmax(z / tau)."""
    total, pairs = 0.0, 0
    for b in range(len(y)):
        negatives = np.flatnonzero(y[b] == 0)
        for j in np.flatnonzero(y[b] == 1):
            idx = np.concatenate([negatives, [j]])
            qs = np.exp(zs[b, idx] / tau - np.logaddexp.reduce(zs[b, idx] / tau))
            qt = np.exp(zt[b, idx] / tau - np.logaddexp.reduce(zt[b, idx] / tau))
            total += np.sum(qt * (np.log(qt) - np.log(qs)))
            pairs += 1
    return total / len(y) if reduction == "per_image" else total / max(pairs, 1)


def np_ndd(zs, zt, y, tau=4.0, reduction="pairs", pair_list=None, predicted=False, form="exact"):
    ps, pt = _sig(zs / tau), _sig(zt / tau)
    neg = (pt < 0.5) if predicted else (y == 0)
    pair_list = pair_list or [(i, j) for i in range(len(y)) for j in range(i + 1, len(y))]
    means, entries = [], []
    for i, j in pair_list:
        shared = neg[i] & neg[j]
        if shared.any():
            if form == "exact":
                d = ((ps[i] - ps[j]) - (pt[i] - pt[j])) ** 2
            else:  # the supplement's bound: per-sample MSEs + L_aux
                d = (ps[i] - pt[i]) ** 2 + (ps[j] - pt[j]) ** 2 + 2 * (ps[i] * pt[j] + ps[j] * pt[i])
            means.append(d[shared].mean())
            entries.extend(d[shared])
    if not means:
        return 0.0
    return {"pairs": np.mean(means), "global": np.mean(entries), "sum": np.sum(means),
            "per_image": np.sum(means) / len(y)}[reduction]


@pytest.fixture
def ml_batch():
    """8 images, 6 labels: one image without positives, one with every label positive, one with a single one."""
    rng = np.random.default_rng(4)
    y = (rng.random((8, 6)) < 0.4).astype(np.float64)
    y[0], y[1], y[2] = 0, 1, 0
    y[2, 3] = 1
    return rng.normal(0, 2, (8, 6)), rng.normal(0, 2, (8, 6)), y


def test_mld_matches_the_reference_and_stays_finite_where_it_saturates(ml_batch):
    zs, zt, _ = ml_batch
    with jax.enable_x64():
        stable = float(losses.mld(jnp.asarray(zs), jnp.asarray(zt)))
    assert stable == pytest.approx(np_mld_reference(zs, zt, dtype=np.float64), rel=1e-9)
    z32s, z32t = zs.astype(np.float32), zt.astype(np.float32)
    clamped = float(losses.mld(jnp.asarray(z32s), jnp.asarray(z32t), clamp_like_reference=True))
    assert clamped == pytest.approx(np_mld_reference(z32s, z32t), rel=1e-5)
    saturated_s, saturated_t = np.array([[30.0, -3.0]], np.float32), np.array([[2.0, 1.0]], np.float32)
    assert not np.isfinite(np_mld_reference(saturated_s, saturated_t))  # log(1 - 1.0) in the reference
    assert not np.isfinite(float(losses.mld(jnp.asarray(saturated_s), jnp.asarray(saturated_t),
                                            clamp_like_reference=True)))
    value = losses.mld(jnp.asarray(saturated_s), jnp.asarray(saturated_t))
    with jax.enable_x64():
        exact = float(losses.mld(jnp.asarray(saturated_s, jnp.float64), jnp.asarray(saturated_t, jnp.float64)))
    assert float(value) == pytest.approx(exact, rel=1e-5)


def test_huber_distance_and_led_match_l2ds_row_selection(ml_batch):
    _, _, y = ml_batch
    rng = np.random.default_rng(5)
    es, et = rng.normal(size=(8, 6, 5)), rng.normal(size=(8, 6, 5))
    with jax.enable_x64():
        hd = float(losses.huber_distance(jnp.asarray(es[:, 0]), jnp.asarray(et[:, 0])))
        cd = float(losses.led_class_aware(jnp.asarray(es), jnp.asarray(et), jnp.asarray(y)))
        idd = float(losses.led_instance_aware(jnp.asarray(es), jnp.asarray(et), jnp.asarray(y)))
        total = float(losses.led(jnp.asarray(es), jnp.asarray(et), jnp.asarray(y)))
        one_row = float(losses.huber_distance(jnp.asarray(es[:, 0]), jnp.asarray(et[:, 0]),
                                              jnp.asarray((np.arange(8) == 3).astype(float))))
    assert hd == pytest.approx(np_huber_dist(es[:, 0], et[:, 0]), rel=1e-9)
    assert cd == pytest.approx(np_cd(es, et, y), rel=1e-9) and cd > 0
    assert idd == pytest.approx(np_id(es, et, y), rel=1e-9) and idd > 0
    assert total == pytest.approx(100 * cd + 1000 * idd, rel=1e-12)
    assert one_row == 0.0  # a class or image with a single positive contributes nothing


def test_led_compares_embeddings_of_different_widths(ml_batch):
    """Each network's distances are its own (L2D's pdist per set), so a 768-wide student under a 128-wide teacher
    is valid; the rows (images, labels) must agree."""
    _, _, y = ml_batch
    rng = np.random.default_rng(6)
    es, et = rng.normal(size=(8, 6, 5)), rng.normal(size=(8, 6, 9))
    with jax.enable_x64():
        cd = float(losses.led_class_aware(jnp.asarray(es), jnp.asarray(et), jnp.asarray(y)))
        idd = float(losses.led_instance_aware(jnp.asarray(es), jnp.asarray(et), jnp.asarray(y)))
    assert cd == pytest.approx(np_cd(es, et, y), rel=1e-9) and idd == pytest.approx(np_id(es, et, y), rel=1e-9)
    with pytest.raises(ValueError, match=r"led_class_aware: student shape \(8, 5, 5\) and teacher shape "
                                         r"\(8, 6, 9\) must share their first 2 axes"):
        losses.led_class_aware(jnp.asarray(es[:, :5]), jnp.asarray(et), jnp.asarray(y))
    with pytest.raises(ValueError, match="huber_distance: .* first 1 axes"):
        losses.huber_distance(jnp.asarray(es[:7, 0]), jnp.asarray(et[:, 0]))


def test_partial_softmax_matches_psm_with_images_without_positives(ml_batch):
    zs, zt, y = ml_batch
    with jax.enable_x64():
        ps = float(losses.partial_softmax(jnp.asarray(zs), jnp.asarray(zt), jnp.asarray(y)))
        pd_as_ps = float(losses.positive_divide(jnp.asarray(zs), jnp.asarray(zt), jnp.asarray(y), temperature=1.0,
                                                reduction="per_image", tau_sq=False))
        pd = float(losses.positive_divide(jnp.asarray(zs), jnp.asarray(zt), jnp.asarray(y)))
    assert ps == pytest.approx(np_ps(zs, zt, y), rel=1e-9) and ps == pd_as_ps
    assert pd == pytest.approx(16 * np_ps(zs, zt, y, tau=4.0, reduction="pairs"), rel=1e-9)


def test_positive_divide_binary_form_and_masks(ml_batch):
    zs, zt, y = ml_batch
    with jax.enable_x64():
        binary = float(losses.positive_divide(jnp.asarray(zs), jnp.asarray(zt), jnp.asarray(y), form="binary"))
        no_positive = float(losses.positive_divide(jnp.asarray(zs), jnp.asarray(zt), jnp.zeros_like(jnp.asarray(y))))
        # another positive of the same image is left out of each partial softmax: changing it does not matter
        zs2 = zs.copy()
        zs2[1, 0] += 5.0     # image 1: every label positive, so each partial softmax holds one label only
        moved = float(losses.positive_divide(jnp.asarray(zs2), jnp.asarray(zt), jnp.asarray(y)))
        base = float(losses.positive_divide(jnp.asarray(zs), jnp.asarray(zt), jnp.asarray(y)))
    pt, ps = _sig(zt / 4), _sig(zs / 4)
    kl = pt * (np.log(pt) - np.log(ps)) + (1 - pt) * (np.log(1 - pt) - np.log(1 - ps))
    assert binary == pytest.approx(16 * (kl * y).sum() / y.sum(), rel=1e-9)
    assert no_positive == 0.0 and moved == pytest.approx(base, rel=1e-12)


@pytest.mark.parametrize("options", [{}, dict(reduction="global"), dict(negatives="predicted"), dict(tau_sq=True),
                                     dict(reduction="sum"), dict(reduction="per_image"), dict(form="bound"),
                                     dict(form="bound", reduction="sum"), dict(form="bound", reduction="global")])
def test_negative_discrepancy_matches_a_loop_over_pairs(ml_batch, options):
    zs, zt, y = ml_batch
    with jax.enable_x64():
        got = float(losses.negative_discrepancy(jnp.asarray(zs), jnp.asarray(zt), jnp.asarray(y), **options))
    want = np_ndd(zs, zt, y, reduction=options.get("reduction", "pairs"), form=options.get("form", "exact"),
                  predicted=options.get("negatives") == "predicted") * (16 if options.get("tau_sq") else 1)
    assert got == pytest.approx(want, rel=1e-9) and got > 0


def test_negative_discrepancy_bound_exceeds_the_exact_form_by_the_dropped_products(ml_batch):
    """The supplement's C.2, Eq. 2: the bound minus the exact pairwise MSE is, per pair, the mean over the shared
    negatives of 2 (p1s p2s + p1t p2t), the products the bound drops; on the two views of each image."""
    zs, zt, y = ml_batch
    rng = np.random.default_rng(7)
    s, t = np.stack([zs, zs + rng.normal(size=zs.shape)]), np.stack([zt, zt + rng.normal(size=zt.shape)])
    with jax.enable_x64():
        exact, bound = (float(losses.negative_discrepancy(jnp.asarray(s), jnp.asarray(t), jnp.asarray(y),
                                                          pairs="views", reduction="sum", form=f))
                        for f in ("exact", "bound"))
    ps, pt = _sig(s / 4), _sig(t / 4)
    dropped = sum(np.mean(2 * (ps[0, b] * ps[1, b] + pt[0, b] * pt[1, b])[y[b] == 0]) for b in range(8)
                  if (y[b] == 0).any())
    assert bound - exact == pytest.approx(dropped, rel=1e-9) and bound > exact


def test_negative_discrepancy_permutation_and_views(ml_batch):
    zs, zt, y = ml_batch
    partner = np.array([3, 2, 1, 0, 5, 4, 7, 6])
    with jax.enable_x64():
        perm = float(losses.negative_discrepancy(jnp.asarray(zs), jnp.asarray(zt), jnp.asarray(y),
                                                 pairs="permutation", partner=jnp.asarray(partner)))
        rng = np.random.default_rng(6)
        zs2, zt2 = zs + rng.normal(size=zs.shape), zt + rng.normal(size=zt.shape)
        views = float(losses.negative_discrepancy(jnp.asarray(np.stack([zs, zs2])), jnp.asarray(np.stack([zt, zt2])),
                                                  jnp.asarray(y), pairs="views"))
    assert perm == pytest.approx(np_ndd(zs, zt, y, pair_list=[(i, int(partner[i])) for i in range(8)]), rel=1e-9)
    ps, pt = _sig(np.stack([zs, zs2]) / 4), _sig(np.stack([zt, zt2]) / 4)
    rho = (ps[0] - ps[1]) - (pt[0] - pt[1])
    per_image = [np.mean(rho[b][y[b] == 0] ** 2) for b in range(8) if (y[b] == 0).any()]
    assert views == pytest.approx(np.mean(per_image), rel=1e-9)


def test_negative_discrepancy_identity_masks_and_shift_invariance(ml_batch):
    """The supplement's Eq. 2 per pair, float64; labels positive in either image are excluded; a per-label constant
    added to both images' student probabilities cancels."""
    zs, zt, y = ml_batch
    tau = 4.0
    ps, pt = _sig(zs / tau), _sig(zt / tau)
    i, j = 3, 4
    shared = (y[i] == 0) & (y[j] == 0)
    s1, s2, t1, t2 = ps[i][shared], ps[j][shared], pt[i][shared], pt[j][shared]
    n = shared.sum()
    lhs = np.mean(((s1 - s2) - (t1 - t2)) ** 2)
    mse1, mse2 = np.mean((s1 - t1) ** 2), np.mean((s2 - t2) ** 2)
    aux = 2 / n * np.sum(s1 * t2 + s2 * t1)
    assert lhs == pytest.approx(mse1 + mse2 + aux - 2 / n * np.sum(s1 * s2 + t1 * t2), rel=1e-12)
    assert lhs < mse1 + mse2 + aux
    with jax.enable_x64():
        ndd = lambda a, b=zt, c=y: float(losses.negative_discrepancy(jnp.asarray(a), jnp.asarray(b),  # noqa: E731
                                                                     jnp.asarray(c)))
        base = ndd(zs)
        # change a label that is positive in every image but one: it is never a shared negative of any pair
        y_one = y.copy()
        y_one[:, 5] = 1
        y_one[7, 5] = 0
        changed = zs.copy()
        changed[:, 5] += 3.0
        assert ndd(changed, zt, y_one) == pytest.approx(ndd(zs, zt, y_one), rel=1e-12)
        # the same constant c_k on both images' student probabilities (every image here) cancels in rho
        c = np.linspace(-0.05, 0.05, 6)
        shifted = tau * np.log((ps + c) / (1 - ps - c))
        assert ndd(shifted) == pytest.approx(base, rel=1e-9)
        assert ndd(zt.copy()) == 0.0  # student == teacher
        # no pair shares a negative: 0
        assert float(losses.negative_discrepancy(jnp.asarray(zs), jnp.asarray(zt), jnp.ones((8, 6)))) == 0.0


@pytest.mark.parametrize("fn", ["pd", "pd_binary", "pd_per_image", "ndd", "ndd_global", "ndd_predicted", "mld", "ps"])
def test_every_option_is_zero_when_the_student_is_the_teacher(ml_batch, fn):
    _, zt, y = ml_batch
    z, y = jnp.asarray(zt, jnp.float32), jnp.asarray(y, jnp.float32)
    call = {"pd": lambda: losses.positive_divide(z, z, y), "pd_binary": lambda: losses.positive_divide(z, z, y, form="binary"),
            "pd_per_image": lambda: losses.positive_divide(z, z, y, reduction="per_image"),
            "ndd": lambda: losses.negative_discrepancy(z, z, y),
            "ndd_global": lambda: losses.negative_discrepancy(z, z, y, reduction="global"),
            "ndd_predicted": lambda: losses.negative_discrepancy(z, z, y, negatives="predicted"),
            "mld": lambda: losses.mld(z, z), "ps": lambda: losses.partial_softmax(z, z, y)}[fn]
    assert abs(float(call())) < 1e-6


def test_distillation_losses_have_finite_values_and_gradients_up_to_fifty():
    z = jnp.asarray(np.linspace(-50, 50, 48, dtype=np.float32).reshape(8, 6))
    zt = -z[::-1]
    y = jnp.asarray((np.arange(48).reshape(8, 6) % 3 == 0).astype(np.float32))
    e = jnp.asarray(np.random.default_rng(0).normal(size=(8, 6, 4)).astype(np.float32))
    fns = [lambda s: losses.mld(s, zt), lambda s: losses.positive_divide(s, zt, y),
           lambda s: losses.positive_divide(s, zt, y, form="binary"), lambda s: losses.negative_discrepancy(s, zt, y),
           lambda s: losses.partial_softmax(s, zt, y), lambda s: losses.multilabel_mse(s, zt, on="probs"),
           lambda s: losses.led(jnp.broadcast_to(s[..., None], (8, 6, 4)) * e, e, y)]
    for fn in fns:
        value, grad = jax.value_and_grad(fn)(z)
        assert np.isfinite(float(value)) and np.all(np.isfinite(grad))


def test_multilabel_mse_and_bad_options_are_named(ml_batch):
    zs, zt, y = ml_batch
    assert float(losses.multilabel_mse(jnp.asarray(zs), jnp.asarray(zt))) == pytest.approx(np.mean((zs - zt) ** 2), rel=1e-6)
    assert float(losses.multilabel_mse(jnp.asarray(zs), jnp.asarray(zt), on="probs")) == pytest.approx(
        np.mean((_sig(zs) - _sig(zt)) ** 2), rel=1e-5)
    z, t = jnp.asarray(zs), jnp.asarray(y)
    with pytest.raises(ValueError, match="pairs='batch'; valid: \\['images', 'permutation', 'views'\\]"):
        losses.negative_discrepancy(z, z, t, pairs="batch")
    with pytest.raises(ValueError, match="reduction='sum'; valid: \\['pairs', 'per_image'\\]"):
        losses.positive_divide(z, z, t, reduction="sum")
    with pytest.raises(ValueError, match="form='kl'"):
        losses.positive_divide(z, z, t, form="kl")
    with pytest.raises(ValueError, match="needs `partner`"):
        losses.negative_discrepancy(z, z, t, pairs="permutation")
    with pytest.raises(ValueError, match="stacked as \\[2, B, C\\]"):
        losses.negative_discrepancy(z, z, t, pairs="views")
    with pytest.raises(ValueError, match="targets shape \\(8, 5\\)"):
        losses.positive_divide(z, z, t[:, :5])


def test_l2d_rkd_distance_term_is_the_huber_distance_of_the_pooled_features():
    rng = np.random.default_rng(7)
    s, t = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    with jax.enable_x64():
        rows = float(losses.rkd(jnp.asarray(s), jnp.asarray(t), distance_weight=1.0, angle_weight=0.0,
                                distance_reduction="rows"))
    assert rows == pytest.approx(np_huber_dist(s, t), rel=1e-9)
    with pytest.raises(ValueError, match="distance_reduction='sum'"):
        losses.rkd(jnp.asarray(s), jnp.asarray(t), distance_reduction="sum")
