"""Multi-label classification metrics: mAP, overall F1 (OF1) and per-class F1 (CF1), in the two conventions the
multi-label KD literature reports, computed for all labels at once (no per-class Python loop).

- `'l2d'` (Yang et al., ICCV 2023, L2D; reference: penghui-yang/L2D evaluate.py; the convention of the 3D paper):
  scores = sigmoid(logits) in float32; AP_c = scikit-learn's `average_precision_score` (non-interpolated,
  sum_n (R_n - R_{n-1}) P_n over the descending distinct scores: tied scores form one threshold); OF1 / CF1 =
  `f1_score(average='micro' / 'macro', zero_division=0)` of an ORACLE top-k prediction: image b with k_b positive
  labels predicts label c iff s_bc > the (k_b + 1)-th largest score of the image (strict, so ties can predict
  fewer than k_b; k_b = 0 predicts nothing; an image whose labels are all positive predicts all of them, where
  L2D's code raises IndexError).
- `'mlgcn'` (Chen et al., CVPR 2019, ML-GCN's AveragePrecisionMeter; reference: asaxuc/MSKD metrics.py): scores =
  raw logits; AP_c accumulates precision@i at each positive in descending (stable) order, divided by the
  positives, with no tie grouping; predictions = logit >= 0 (sigmoid >= 0.5); OP = sum TP / sum predicted, OR =
  sum TP / sum positives, OF1 = 2 OP OR / (OP + OR); CP, CR = the class means of TP / predicted (0 predicted
  counts as 1) and TP / positives, CF1 = 2 CP CR / (CP + CR): the F1 of the macro averages, not a mean of F1s.
  The `*_top3` values restrict the predictions to each image's 3 highest logits (ML-GCN's top-3 table).

A class without a positive in the evaluation set has no AP: it is left out of the mean in both conventions and
counted in `classes_without_positives` (the references divide by zero there). Values are fractions in [0, 1].
"""
import numpy as np
from scipy.special import expit

CONVENTIONS = ("l2d", "mlgcn")


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    """float32, as the references (saturated scores tie, and L2D's AP groups those ties)."""
    return expit(np.asarray(logits, np.float32))


def _descending(scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column sorted by descending score (stable: ties keep dataset order), the targets in the same order."""
    order = np.argsort(-scores, axis=0, kind="stable")
    return np.take_along_axis(scores, order, axis=0), np.take_along_axis(targets, order, axis=0)


def average_precision(scores: np.ndarray, targets: np.ndarray, *, group_ties: bool = True) -> np.ndarray:
    """AP of every column of `scores` [N, C] against 0/1 `targets` [N, C]; NaN for a column without positives.

    `group_ties=True`: scikit-learn's `average_precision_score` (the precision of a positive is read at the end of
    its group of tied scores); False: ML-GCN's meter (precision at the positive's own rank in a stable sort).
    """
    if scores.shape != targets.shape or scores.ndim != 2:
        raise ValueError(f"average_precision: scores {scores.shape} and targets {targets.shape} must both be [N, C]")
    s, y = _descending(scores, targets.astype(np.float64))
    n = s.shape[0]
    tp = np.cumsum(y, axis=0)
    rank = np.arange(1, n + 1, dtype=np.float64)[:, None]
    precision = tp / rank
    if group_ties:
        # index of the last row of each row's tie group: a reversed running minimum over the group ends
        is_end = np.ones_like(s, dtype=bool)
        is_end[:-1] = s[:-1] != s[1:]
        end_index = np.where(is_end, np.arange(n)[:, None], n)
        end_index = np.minimum.accumulate(end_index[::-1], axis=0)[::-1]
        precision = np.take_along_axis(precision, end_index, axis=0)
    positives = y.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(positives > 0, (y * precision).sum(axis=0) / positives, np.nan)


def _f1(tp, fp, fn) -> np.ndarray:
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def oracle_top_k_predictions(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """L2D's rule: image b predicts the labels scoring strictly above its (k_b + 1)-th largest score, k_b = its
    number of positive labels (every label when k_b = C)."""
    k = targets.sum(axis=1).astype(np.int64)
    ranked = -np.sort(-scores, axis=1)
    threshold = np.take_along_axis(ranked, np.minimum(k, scores.shape[1] - 1)[:, None], axis=1)
    threshold = np.where(k[:, None] >= scores.shape[1], -np.inf, threshold)
    return scores > threshold


def _l2d(logits, targets) -> dict:
    scores = _sigmoid(logits)
    ap = average_precision(scores, targets, group_ties=True)
    predicted = oracle_top_k_predictions(scores, targets)
    positive = targets.astype(bool)
    tp = (predicted & positive).sum(axis=0).astype(np.float64)
    fp = (predicted & ~positive).sum(axis=0).astype(np.float64)
    fn = (~predicted & positive).sum(axis=0).astype(np.float64)
    return {"mAP": float(np.nanmean(ap)), "OF1": float(_f1(tp.sum(), fp.sum(), fn.sum())),
            "CF1": float(np.mean(_f1(tp, fp, fn))), "classes_without_positives": int(np.isnan(ap).sum())}


def _mlgcn_f1s(predicted, positive, suffix="") -> dict:
    tp = (predicted & positive).sum(axis=0).astype(np.float64)
    n_predicted = predicted.sum(axis=0).astype(np.float64)
    n_positive = positive.sum(axis=0).astype(np.float64)
    op = tp.sum() / max(n_predicted.sum(), 1.0)
    orr = tp.sum() / max(n_positive.sum(), 1.0)
    cp = np.mean(tp / np.maximum(n_predicted, 1.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        cr = np.nanmean(np.where(n_positive > 0, tp / n_positive, np.nan))
    f1 = lambda p, r: float(2 * p * r / (p + r)) if p + r > 0 else 0.0  # noqa: E731
    values = {"OP": op, "OR": orr, "OF1": f1(op, orr), "CP": cp, "CR": cr, "CF1": f1(cp, cr)}
    return {k + suffix: float(v) for k, v in values.items()}


def _mlgcn(logits, targets) -> dict:
    logits = logits.astype(np.float32)
    ap = average_precision(logits, targets, group_ties=False)
    positive = targets.astype(bool)
    predicted = logits >= 0
    top3 = np.zeros_like(predicted)
    k = min(3, logits.shape[1])
    np.put_along_axis(top3, np.argsort(-logits, axis=1, kind="stable")[:, :k], True, axis=1)
    return {"mAP": float(np.nanmean(ap)), **_mlgcn_f1s(predicted, positive),
            **_mlgcn_f1s(predicted & top3, positive, "_top3"), "classes_without_positives": int(np.isnan(ap).sum())}


def multilabel_scores(logits: np.ndarray, targets: np.ndarray, *, convention: str = "l2d") -> dict[str, float]:
    """mAP, OF1, CF1 (and ML-GCN's OP/OR/CP/CR and top-3 values) of a model's `logits` [N, C] on multi-hot
    `targets` [N, C] (0/1), in `convention` 'l2d' or 'mlgcn' (see the module docstring). Each convention applies
    its own score transform, so pass logits, not probabilities."""
    if convention not in CONVENTIONS:
        raise ValueError(f"multilabel_scores: unknown convention {convention!r}; valid: {list(CONVENTIONS)}")
    logits, targets = np.asarray(logits), np.asarray(targets)
    if logits.shape != targets.shape or logits.ndim != 2:
        raise ValueError(f"multilabel_scores: logits {logits.shape} and targets {targets.shape} must both be [N, C]")
    if not np.isin(targets, (0, 1)).all():
        raise ValueError("multilabel_scores: targets must be multi-hot (0/1)")
    return (_l2d if convention == "l2d" else _mlgcn)(logits, targets)


def label_statistics(logits: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """The 3D supplement's Table C.4 columns: per-label accuracy of sigmoid >= 0.5 (mean over every image and
    label), the mean sigmoid score on positive labels and on negative labels."""
    scores = _sigmoid(np.asarray(logits))
    positive = np.asarray(targets).astype(bool)
    return {"label_accuracy": float(np.mean((scores >= 0.5) == positive)),
            "positive_score": float(scores[positive].mean()) if positive.any() else float("nan"),
            "negative_score": float(scores[~positive].mean()) if (~positive).any() else float("nan")}
