"""Soft-label diversity (the ICD study's measures of a teacher) against a hand computation."""
import numpy as np
import pytest

from kdjax import metrics


def test_distance_and_entropy_of_hand_made_soft_labels():
    # two classes, soft labels at T = 1
    logits = np.log(np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1], [0.1, 0.8, 0.1]]))
    m = metrics.soft_label_diversity(logits, np.array([0, 0, 1, 1]), temperature=1.0)
    # class 0: its two examples are [0.2, -0.2, 0] apart (counted both ways over n(n-1) = 2); class 1: 0 apart
    assert m["intra_class_distance"] == pytest.approx(np.linalg.norm([0.2, -0.2, 0.0]) / 2)
    h = lambda p: -np.sum(p * np.log(p))  # noqa: E731
    assert m["non_target_entropy"] == pytest.approx(np.mean([h(np.array([.5, .5])), h(np.array([.75, .25])),
                                                             h(np.array([.5, .5])), h(np.array([.5, .5]))]))


def test_the_temperature_softens_and_a_lone_example_of_a_class_is_left_out():
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(20, 5)) * 3, np.array([0] * 10 + [1] * 9 + [2])
    sharp = metrics.soft_label_diversity(logits, labels, temperature=1.0)
    soft = metrics.soft_label_diversity(logits, labels, temperature=8.0)
    assert soft["intra_class_distance"] < sharp["intra_class_distance"]
    assert soft["non_target_entropy"] > sharp["non_target_entropy"]
    with pytest.raises(ValueError, match="temperature=0 must be > 0"):
        metrics.soft_label_diversity(logits, labels, temperature=0)
