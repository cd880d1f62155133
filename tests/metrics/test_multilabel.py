"""Multi-label metrics: the L2D convention against scikit-learn, ML-GCN's meter against a loop restatement."""
import numpy as np
import pytest
from scipy.special import expit
from sklearn.metrics import average_precision_score, f1_score

from kdjax import metrics


def _data(seed, n=60, c=7, ties=False):
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, c)) < 0.3).astype(np.float32)
    targets[0] = 0            # an image without positive labels
    targets[1] = 1            # an image whose labels are all positive
    logits = rng.normal(size=(n, c)).astype(np.float32) + 1.5 * targets
    if ties:                   # few distinct values, and saturated sigmoids (logits > 17 all give 1.0)
        logits = np.round(logits * 2) / 2
        logits[:5] = 30.0 + np.arange(5)[:, None]
    return logits, targets


def _oracle_top_k_loop(scores, targets):
    predicted = np.zeros_like(targets, dtype=bool)
    for b in range(len(scores)):
        k = int(targets[b].sum())
        if k == scores.shape[1]:
            predicted[b] = True
        else:
            predicted[b] = scores[b] > np.sort(scores[b])[::-1][k]
    return predicted


@pytest.mark.parametrize("ties", [False, True])
def test_l2d_convention_equals_scikit_learn(ties):
    logits, targets = _data(0, ties=ties)
    got = metrics.multilabel_scores(logits, targets, convention="l2d")
    scores = expit(logits)
    aps = [average_precision_score(targets[:, c], scores[:, c]) for c in range(targets.shape[1])]
    predicted = _oracle_top_k_loop(scores, targets)
    assert got["mAP"] == pytest.approx(np.mean(aps), rel=1e-6)
    assert got["OF1"] == pytest.approx(f1_score(targets, predicted, average="micro", zero_division=0), rel=1e-6)
    assert got["CF1"] == pytest.approx(f1_score(targets, predicted, average="macro", zero_division=0), rel=1e-6)
    assert got["classes_without_positives"] == 0


def test_ties_are_grouped_in_l2d_and_ranked_in_mlgcn():
    # one class, scores tied: positive, negative share a score; sklearn AP = 0.5 * 1 ... grouped: P at the group end
    scores = np.array([[2.0], [1.0], [1.0]], np.float32)
    targets = np.array([[0.0], [1.0], [0.0]])
    assert metrics.average_precision(scores, targets, group_ties=True)[0] == pytest.approx(1 / 3)
    assert metrics.average_precision(scores, targets, group_ties=False)[0] == pytest.approx(1 / 2)
    assert average_precision_score(targets[:, 0], scores[:, 0]) == pytest.approx(1 / 3)


def test_a_class_without_positives_is_left_out_of_the_mean_and_counted():
    logits, targets = _data(1)
    targets[:, 3] = 0
    for convention in ("l2d", "mlgcn"):
        got = metrics.multilabel_scores(logits, targets, convention=convention)
        kept = np.delete(np.arange(7), 3)
        alone = metrics.multilabel_scores(logits[:, kept], targets[:, kept], convention=convention)
        assert got["classes_without_positives"] == 1
        assert got["mAP"] == pytest.approx(alone["mAP"], rel=1e-12)


def _mlgcn_meter(logits, targets):
    """ML-GCN's AveragePrecisionMeter + overall / per-class precision-recall, restated with loops."""
    n, c = logits.shape
    aps = []
    for k in range(c):
        order = np.argsort(-logits[:, k], kind="stable")
        pos, hits, total = 0, 0, 0.0
        for i, idx in enumerate(order, start=1):
            if targets[idx, k] == 1:
                pos += 1
                hits += 1
                total += hits / i
        aps.append(total / pos)

    def f1s(predicted):
        nc = np.array([np.sum(predicted[:, k] & (targets[:, k] == 1)) for k in range(c)], float)
        np_ = np.array([max(np.sum(predicted[:, k]), 1) for k in range(c)], float)
        ng = np.array([np.sum(targets[:, k] == 1) for k in range(c)], float)
        op, orr = nc.sum() / np_.sum(), nc.sum() / ng.sum()
        cp, cr = np.mean(nc / np_), np.mean(nc / ng)
        return op, orr, 2 * op * orr / (op + orr), cp, cr, 2 * cp * cr / (cp + cr)

    predicted = logits >= 0
    top3 = np.zeros_like(predicted)
    for b in range(n):
        top3[b, np.argsort(-logits[b], kind="stable")[:3]] = True
    return np.mean(aps), f1s(predicted), f1s(predicted & top3)


@pytest.mark.parametrize("ties", [False, True])
def test_mlgcn_convention_equals_the_meter(ties):
    logits, targets = _data(2, ties=ties)
    got = metrics.multilabel_scores(logits, targets, convention="mlgcn")
    m_ap, full, top3 = _mlgcn_meter(logits, targets)
    assert got["mAP"] == pytest.approx(m_ap, rel=1e-9)
    for suffix, values in (("", full), ("_top3", top3)):
        for name, value in zip(("OP", "OR", "OF1", "CP", "CR", "CF1"), values):
            assert got[name + suffix] == pytest.approx(value, rel=1e-9), name + suffix


def test_perfect_scores_give_one_and_label_statistics_match_their_definition():
    rng = np.random.default_rng(3)
    targets = (rng.random((40, 5)) < 0.4).astype(np.float32)
    targets[:, 0] = 1
    logits = np.where(targets == 1, 4.0, -4.0) + rng.normal(size=targets.shape)
    for convention in ("l2d", "mlgcn"):
        got = metrics.multilabel_scores(logits, targets, convention=convention)
        assert got["mAP"] == pytest.approx(1.0) and got["OF1"] == pytest.approx(1.0)
    stats = metrics.label_statistics(logits, targets)
    s = 1 / (1 + np.exp(-logits))
    assert stats["label_accuracy"] == pytest.approx(np.mean((s >= 0.5) == (targets == 1)))
    assert stats["positive_score"] == pytest.approx(s[targets == 1].mean(), rel=1e-6)
    assert stats["negative_score"] == pytest.approx(s[targets == 0].mean(), rel=1e-6)


def test_bad_input_is_named():
    logits, targets = _data(4)
    with pytest.raises(ValueError, match="unknown convention 'voc'.*'l2d'"):
        metrics.multilabel_scores(logits, targets, convention="voc")
    with pytest.raises(ValueError, match=r"\(60, 6\)"):
        metrics.multilabel_scores(logits[:, :6], targets)
    with pytest.raises(ValueError, match="multi-hot"):
        metrics.multilabel_scores(logits, targets * 2)
