"""Losses of multi-label classifiers: per-label logits [B, C] against multi-hot targets [B, C] (0/1)."""
import jax
import jax.numpy as jnp

from kdjax.losses.common import check_non_negative, check_positive, check_same_shape, reduce, upcast


def focal_bce(logits: jax.Array, targets: jax.Array, *, gamma: float = 2.0, reduction: str = "sum") -> jax.Array:
    """Focal binary cross-entropy, SUM over the batch and the labels:

      -sum_{b,c} [ y (1 - p)^gamma log p + (1 - y) p^gamma log(1 - p) ],  p = sigmoid(z).

    gamma = 0 is L2D's task loss, BCE with reduction 'sum' (reference: penghui-yang/L2D criterion; the teacher and
    student objectives of Yang et al., ICCV 2023); gamma = 2 is kdjax's reading of the 3D paper's task loss (Li &
    Cheng: the supplement names a hyper-parameter gamma_b = 2 without its equation; kdjax reads it as a focal
    exponent on the BCE, which the public text does not confirm). The logs are log-sigmoids, so values and gradients stay finite for any logit; the reference
    clamps p at 1e-8 before the log instead, which differs only where |z| > 18 (it caps the loss at 18.4 per label).

    Args:
      logits: [B, C].
      targets: [B, C] multi-hot (0/1; soft targets in [0, 1] are accepted).
      gamma: focusing exponent >= 0.
      reduction: 'sum' over the batch (the reference's), 'mean' over the batch, or 'none' ([B] per-image sums over
        the labels).
    Returns:
      Scalar ([B] for reduction='none'), float32 (float64 for float64 inputs).
    """
    if logits.shape != targets.shape:
        raise ValueError(f"focal_bce: targets shape {targets.shape} does not match logits {logits.shape}")
    check_non_negative("focal_bce", gamma=gamma)
    z = upcast(logits)
    y = targets.astype(z.dtype)
    log_p, log_not_p = jax.nn.log_sigmoid(z), jax.nn.log_sigmoid(-z)
    if gamma:
        positive = jnp.exp(gamma * log_not_p) * log_p
        negative = jnp.exp(gamma * log_p) * log_not_p
    else:
        positive, negative = log_p, log_not_p
    return reduce(-jnp.sum(y * positive + (1.0 - y) * negative, axis=-1), reduction, "focal_bce")


def _check_targets(student, targets, what):
    if targets.shape != student.shape[-targets.ndim:]:
        raise ValueError(f"{what}: targets shape {targets.shape} does not match logits {student.shape}")


def mld(student_logits: jax.Array, teacher_logits: jax.Array, *, eps: float = 1e-8,
        clamp_like_reference: bool = False, reduction: str = "mean") -> jax.Array:
    """MLD, multi-label logit distillation (Yang et al., ICCV 2023; reference: penghui-yang/L2D
    criterion/distiller_zoo/logits_based/mld.py): per label the binary KL from the teacher's sigmoid to the
    student's, SUM over labels, MEAN over the batch ('batchmean'); no temperature.

      KL_bc = p^t (log p^t - log p^s) + (1 - p^t)(log(1 - p^t) - log(1 - p^s)),  p = sigmoid(z)

    Default: the logs are log-sigmoids (finite for any logit). `clamp_like_reference=True` computes it as the
    reference does, p clamped to [eps, 1 - eps] in the logits' precision (in float32 the upper clamp is a no-op, so
    a logit above ~17 saturates p to 1 and the loss can be inf / NaN): for parity tests only. `reduction`: 'mean'
    over the batch of the per-image sums (the reference's), 'sum', or 'none' ([B]).
    """
    check_same_shape(student_logits, teacher_logits, "mld")
    check_positive("mld", eps=eps)
    zs, zt = upcast(student_logits), upcast(teacher_logits)
    if clamp_like_reference:
        ps = jnp.clip(jax.nn.sigmoid(zs), eps, 1 - eps)
        pt = jnp.clip(jax.nn.sigmoid(zt), eps, 1 - eps)
        kl = pt * (jnp.log(pt) - jnp.log(ps)) + (1 - pt) * (jnp.log(1 - pt) - jnp.log(1 - ps))
    else:
        pt = jax.nn.sigmoid(zt)
        log_pt, log_not_pt = jax.nn.log_sigmoid(zt), jax.nn.log_sigmoid(-zt)
        kl = pt * (log_pt - jax.nn.log_sigmoid(zs)) + (1 - pt) * (log_not_pt - jax.nn.log_sigmoid(-zs))
    return reduce(jnp.sum(kl, axis=-1), reduction, "mld")


def _check_same_rows(student, teacher, leading: int, what: str) -> None:
    """Relational terms compare the networks' rows, not their features: the leading axes must agree, the widths
    need not (a 768-wide student under a 128-wide teacher)."""
    if student.ndim != leading + 1 or teacher.ndim != leading + 1 or student.shape[:leading] != teacher.shape[:leading]:
        raise ValueError(f"{what}: student shape {student.shape} and teacher shape {teacher.shape} must share their "
                         f"first {leading} axes (rows) and have one feature axis")


def huber_distance(student_rows: jax.Array, teacher_rows: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """L2D's relational "Huber distance" between two sets of n row vectors (reference: penghui-yang/L2D
    criterion/distiller_zoo/le_based/huber_dist.py; RKD's distance term, Park et al. 2019):
    D[a, b] = sqrt(max(|x_a|^2 + |x_b|^2 - 2 <x_a, x_b>, 1e-12)) with a zero diagonal, divided by the mean of its
    off-diagonal entries; HD = (1/n) sum_{a,b} smooth_l1(D~s[a, b] - D~t[a, b]) (beta 1, SUM over the n^2 entries,
    divided by the number of rows n).

    `mask` [n] (0/1) selects rows (static shapes for the class- and instance-aware terms of LED): only pairs of
    selected rows count and n = the number selected; fewer than 2 selected rows give 0. The two sets' widths may
    differ (each set's distances are its own), as in the reference.
    """
    _check_same_rows(student_rows, teacher_rows, 1, "huber_distance")
    n_rows = student_rows.shape[0]
    m = jnp.ones(n_rows) if mask is None else mask.astype(jnp.float32)
    pair = (m[:, None] * m[None, :]) * (1.0 - jnp.eye(n_rows))
    count, selected = jnp.sum(pair), jnp.sum(m)

    def normalised(x):
        x = upcast(x)
        sq = jnp.sum(x * x, axis=-1)
        d = jnp.sqrt(jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 1e-12)) * (1.0 - jnp.eye(n_rows))
        return d / jnp.where(count > 0, jnp.sum(d * pair) / jnp.maximum(count, 1.0), 1.0)

    diff = normalised(student_rows) - normalised(teacher_rows)
    huber = jnp.where(jnp.abs(diff) < 1.0, 0.5 * diff * diff, jnp.abs(diff) - 0.5)
    return jnp.where(selected >= 2, jnp.sum(huber * pair) / jnp.maximum(selected, 1.0), 0.0)


def led_class_aware(student_embeddings: jax.Array, teacher_embeddings: jax.Array, targets: jax.Array) -> jax.Array:
    """LED's class-aware term (L2D cd.py): for every class with at least 2 positive images in the batch, the Huber
    distance between those images' label-wise embeddings of that class; SUM over classes. Embeddings [B, C, E_s]
    and [B, C, E_t]."""
    _check_same_rows(student_embeddings, teacher_embeddings, 2, "led_class_aware")
    per_class = jax.vmap(huber_distance, in_axes=(1, 1, 1))(student_embeddings, teacher_embeddings, targets)
    return jnp.sum(per_class)


def led_instance_aware(student_embeddings: jax.Array, teacher_embeddings: jax.Array,
                       targets: jax.Array) -> jax.Array:
    """LED's instance-aware term (L2D id.py): for every image with at least 2 positive labels, the Huber distance
    between its positive labels' embeddings; SUM over images. Embeddings [B, C, E_s] and [B, C, E_t]."""
    _check_same_rows(student_embeddings, teacher_embeddings, 2, "led_instance_aware")
    return jnp.sum(jax.vmap(huber_distance)(student_embeddings, teacher_embeddings, targets))


def led(student_embeddings: jax.Array, teacher_embeddings: jax.Array, targets: jax.Array, *,
        cd_weight: float = 100.0, id_weight: float = 1000.0) -> jax.Array:
    """LED, label-wise embedding distillation (Yang et al., ICCV 2023; reference: penghui-yang/L2D
    criterion/distiller_zoo/le_based/led.py): cd_weight * class-aware + id_weight * instance-aware.

    The reference selects rows by zeroing the negatives and dropping all-zero rows, which equals selecting the
    positive rows unless an embedding is exactly zero; kdjax selects by the targets (static shapes)."""
    if targets.shape != student_embeddings.shape[:2]:
        raise ValueError(f"led: targets shape {targets.shape} does not match embeddings {student_embeddings.shape}")
    check_non_negative("led", cd_weight=cd_weight, id_weight=id_weight)
    return (cd_weight * led_class_aware(student_embeddings, teacher_embeddings, targets)
            + id_weight * led_instance_aware(student_embeddings, teacher_embeddings, targets))


def _partial_kl(zs, zt, targets):
    """[B, C] KL(softmax_t || softmax_s) over the label subset {j} u N_b of every (image b, label j); the value at
    (b, j) is meaningful where j is positive."""
    y = targets.astype(bool)
    subset = (~y)[:, None, :] | jnp.eye(y.shape[1], dtype=bool)[None]   # [B, j, k]: k negative, or k == j
    neg_inf = jnp.finfo(zs.dtype).min

    def log_softmax(z):
        return jax.nn.log_softmax(jnp.where(subset, z[:, None, :], neg_inf), axis=-1)

    log_qs, log_qt = log_softmax(zs), log_softmax(zt)
    return jnp.sum(jnp.where(subset, jnp.exp(log_qt) * (log_qt - log_qs), 0.0), axis=-1)


def partial_softmax(student_logits: jax.Array, teacher_logits: jax.Array, targets: jax.Array) -> jax.Array:
    """PS, the partial-softmax distiller (reference: penghui-yang/L2D criterion/distiller_zoo/logits_based/psm.py):
    for every image b and positive label j, KL between the teacher's and the student's softmax over {j} and all of
    b's negative labels (no temperature); SUM over those (image, positive) pairs, divided by the batch size B
    (images without positives count in B)."""
    return positive_divide(student_logits, teacher_logits, targets, temperature=1.0, reduction="per_image",
                           tau_sq=False)


PD_REDUCTIONS, PD_FORMS = ("pairs", "per_image"), ("softmax", "binary")


def positive_divide(student_logits: jax.Array, teacher_logits: jax.Array, targets: jax.Array, *,
                    temperature: float = 4.0, reduction: str = "pairs", tau_sq: bool = True,
                    form: str = "softmax") -> jax.Array:
    """PD, the 3D paper's positive-divide term (Li & Cheng; kdjax's reconstruction from the supplement: the main
    paper is not public). Each positive label j of image b is distilled on its own: the softmax at temperature tau
    over {j} and the image's negative labels, KL(teacher || student), times tau^2 (`tau_sq`).

    reduction='pairs' (default): mean over all (image, positive) pairs of the batch, 0 if there is none;
    'per_image': sum divided by B (PS's reduction; tau = 1, tau_sq=False gives `partial_softmax`).
    form='binary': per positive, the binary KL between Bern(sigmoid(z^t / tau)) and Bern(sigmoid(z^s / tau)) instead
    (an alternative reading). Logits and targets [B, C].
    """
    check_same_shape(student_logits, teacher_logits, "positive_divide")
    _check_targets(student_logits, targets, "positive_divide")
    check_positive("positive_divide", temperature=temperature)
    if reduction not in PD_REDUCTIONS:
        raise ValueError(f"positive_divide: reduction={reduction!r}; valid: {list(PD_REDUCTIONS)}")
    if form not in PD_FORMS:
        raise ValueError(f"positive_divide: form={form!r}; valid: {list(PD_FORMS)}")
    zs, zt = upcast(student_logits) / temperature, upcast(teacher_logits) / temperature
    y = targets.astype(zs.dtype)
    if form == "softmax":
        per_pair = _partial_kl(zs, zt, targets)
    else:
        pt = jax.nn.sigmoid(zt)
        per_pair = (pt * (jax.nn.log_sigmoid(zt) - jax.nn.log_sigmoid(zs))
                    + (1 - pt) * (jax.nn.log_sigmoid(-zt) - jax.nn.log_sigmoid(-zs)))
    total = jnp.sum(per_pair * y)
    value = total / zs.shape[0] if reduction == "per_image" else total / jnp.maximum(jnp.sum(y), 1.0)
    return value * temperature ** 2 if tau_sq else value


NDD_PAIRS, NDD_NEGATIVES = ("images", "permutation", "views"), ("labels", "predicted")
NDD_REDUCTIONS, NDD_FORMS = ("pairs", "global", "sum", "per_image"), ("exact", "bound")


def negative_discrepancy(student_logits: jax.Array, teacher_logits: jax.Array, targets: jax.Array, *,
                         temperature: float = 4.0, pairs: str = "images", reduction: str = "pairs",
                         tau_sq: bool = False, negatives: str = "labels", form: str = "exact",
                         partner: jax.Array | None = None) -> jax.Array:
    """NDD, the 3D paper's negative-discrepancy term (Li & Cheng; kdjax's reconstruction from the supplement's C.2):
    for a pair of predictions (1, 2) over their shared negative labels S, rho = p~_1 - p~_2 with p~ = sigmoid(z / tau),
    and the loss is the mean over S of (rho^s - rho^t)^2.

    pairs='images' (default): every unordered pair of distinct images of the batch, S = N_i n N_j;
    'permutation': the pairs (i, partner[i]) for a given permutation `partner` [B];
    'views': the two views of each image, logits stacked as [2, B, C], S = N_i.
    reduction='pairs': mean over pairs with |S| > 0 of each pair's mean (0 if none); 'global': mean over every
    (pair, shared negative) entry; 'sum': the sum of the pairs' means; 'per_image': that sum divided by the batch
    size B (the two batch reductions of L2D's code, next to a task loss summed over the batch, where the mean over
    pairs makes NDD ~1e-2 of it). negatives='labels' (ground truth) or 'predicted' (the teacher's p~ < 0.5).
    tau_sq multiplies by tau^2.

    form='exact' (default): the pairwise MSE above. 'bound': the upper bound the supplement's C.2 (Eq. 2, the
    reformulated Eq. 15) says NDD "can be computed as": per pair, the mean over S of
    (p~_1^s - p~_1^t)^2 + (p~_2^s - p~_2^t)^2 + 2 (p~_1^s p~_2^t + p~_2^s p~_1^t), i.e. the per-sample MSEs plus
    L_aux, which exceeds the exact form by the mean over S of 2 (p~_1^s p~_2^s + p~_1^t p~_2^t) >= 0. kdjax keeps
    Eq. 2's 1/|S| on L_aux (the printed bound writes it as a bare dot product, which would not follow from Eq. 2).
    """
    if pairs not in NDD_PAIRS:
        raise ValueError(f"negative_discrepancy: pairs={pairs!r}; valid: {list(NDD_PAIRS)}")
    if reduction not in NDD_REDUCTIONS:
        raise ValueError(f"negative_discrepancy: reduction={reduction!r}; valid: {list(NDD_REDUCTIONS)}")
    if negatives not in NDD_NEGATIVES:
        raise ValueError(f"negative_discrepancy: negatives={negatives!r}; valid: {list(NDD_NEGATIVES)}")
    if form not in NDD_FORMS:
        raise ValueError(f"negative_discrepancy: form={form!r}; valid: {list(NDD_FORMS)}")
    check_same_shape(student_logits, teacher_logits, "negative_discrepancy")
    _check_targets(student_logits, targets, "negative_discrepancy")
    check_positive("negative_discrepancy", temperature=temperature)
    if pairs == "views" and student_logits.ndim != 3:
        raise ValueError(f"negative_discrepancy: pairs='views' needs logits of both views stacked as [2, B, C], "
                         f"got {student_logits.shape}")
    if pairs == "permutation" and partner is None:
        raise ValueError("negative_discrepancy: pairs='permutation' needs `partner`, a permutation of the batch")
    ps, pt = jax.nn.sigmoid(upcast(student_logits) / temperature), jax.nn.sigmoid(upcast(teacher_logits) / temperature)
    negative = (pt < 0.5) if negatives == "predicted" else (targets.astype(bool) == 0)
    if pairs == "views":
        shared = negative[0] & negative[1] if negatives == "predicted" else negative
        (ps1, ps2), (pt1, pt2) = ps, pt                                           # [B, C] each
        weight = jnp.ones(ps1.shape[0])
    elif pairs == "permutation":
        shared = negative & negative[partner]
        ps1, ps2, pt1, pt2 = ps, ps[partner], pt, pt[partner]
        weight = (jnp.arange(ps.shape[0]) != partner).astype(ps.dtype)          # an image paired with itself: no pair
    else:
        b = ps.shape[0]
        shared = negative[:, None, :] & negative[None, :, :]                      # [B, B, C]
        ps1, ps2, pt1, pt2 = ps[:, None], ps[None, :], pt[:, None], pt[None, :]
        weight = jnp.triu(jnp.ones((b, b)), k=1)                                  # unordered pairs i < j
    if form == "exact":
        entry = jnp.square((ps1 - ps2) - (pt1 - pt2))
    else:
        entry = jnp.square(ps1 - pt1) + jnp.square(ps2 - pt2) + 2.0 * (ps1 * pt2 + ps2 * pt1)
    shared = shared.astype(entry.dtype) * weight[..., None]
    squared = entry * shared
    if reduction == "global":
        value = jnp.sum(squared) / jnp.maximum(jnp.sum(shared), 1.0)
    else:
        sizes = jnp.sum(shared, axis=-1)
        per_pair = jnp.sum(squared, axis=-1) / jnp.maximum(sizes, 1.0)          # 0 for a pair without shared S
        if reduction == "sum":
            value = jnp.sum(per_pair)
        elif reduction == "per_image":
            value = jnp.sum(per_pair) / ps.shape[-2]
        else:
            valid = (sizes > 0).astype(entry.dtype)
            value = jnp.sum(per_pair) / jnp.maximum(jnp.sum(valid), 1.0)
    return value * temperature ** 2 if tau_sq else value


def ndd_valid_pairs(targets: jax.Array) -> jax.Array:
    """Unordered pairs of distinct images sharing at least one negative label (what NDD's default averages over)."""
    negative = (targets == 0).astype(jnp.float32)
    shared = negative @ negative.T
    return jnp.sum(jnp.triu(shared > 0, k=1))


def multilabel_mse(student_logits: jax.Array, teacher_logits: jax.Array, *, on: str = "logits") -> jax.Array:
    """The multi-label MSE baseline (not in L2D's code; kdjax's definition after Kim et al., IJCAI 2021): mean over
    the batch and labels of the squared difference of the logits, or of the sigmoid probabilities (`on='probs'`)."""
    check_same_shape(student_logits, teacher_logits, "multilabel_mse")
    if on not in ("logits", "probs"):
        raise ValueError(f"multilabel_mse: on={on!r}; valid: ['logits', 'probs']")
    zs, zt = upcast(student_logits), upcast(teacher_logits)
    if on == "probs":
        zs, zt = jax.nn.sigmoid(zs), jax.nn.sigmoid(zt)
    return jnp.mean(jnp.square(zs - zt))
