"""experiments/led_scale.py: the relative spread by hand, the frozen-query LED's dependence on the width, and the
network measurement on the offline L2D config at runlocal size against a saved teacher."""
import os

import jax
import numpy as np
import pytest

from experiments import led_scale
from kdjax import config_files, parallel
from kdjax.losses import multilabel as ml_losses
from kdjax.train import checkpoint as ckpt_lib
from kdjax.train import recipe, stage
from tests import helpers


def test_relative_spread_by_hand():
    assert led_scale.relative_spread(np.eye(5)) == pytest.approx(0.0, abs=1e-12)   # a simplex: equidistant
    # points 0, 1, 3 on a line: distances 1, 3, 2, mean 2, population std sqrt(2/3)
    assert led_scale.relative_spread(np.array([[0.0], [1.0], [3.0]])) == pytest.approx(np.sqrt(2 / 3) / 2)


def test_random_targets_have_the_positives_asked_for():
    y = np.asarray(led_scale.random_targets(jax.random.key(0), 32, 10, 3))
    assert set(np.unique(y)) == {0.0, 1.0} and (y.sum(-1) == 3).all() and y.any(0).sum() > 3
    with pytest.raises(ValueError, match="positives=1: .* 2 <= positives <= labels"):
        led_scale.random_targets(jax.random.key(0), 4, 10, 1)


def test_frozen_query_led_is_the_instance_aware_term_and_falls_with_width():
    # restated: the same draws, LED's instance-aware term on the broadcast queries
    k_s, k_t, k_y = jax.random.split(jax.random.key(3), 3)
    qs, qt = jax.random.normal(k_s, (10, 16)), jax.random.normal(k_t, (10, 16))
    y = led_scale.random_targets(k_y, 8, 10, 3)
    expected = 1000.0 * ml_losses.led_instance_aware(np.broadcast_to(qs, (8, 10, 16)),
                                                     np.broadcast_to(qt, (8, 10, 16)), y)
    assert led_scale.frozen_query_led(16, 10, batch=8, positives=3, seed=3) == pytest.approx(float(expected))
    narrow = np.mean([led_scale.frozen_query_led(32, 10, batch=32, positives=3, seed=s) for s in range(3)])
    wide = np.mean([led_scale.frozen_query_led(512, 10, batch=32, positives=3, seed=s) for s in range(3)])
    assert wide < narrow / 4   # the squared spread of random vectors scales as 1 / width: 16x here


def test_network_terms_at_runlocal_size(tmp_path):
    config_path = "configs/ml_3d/fashion_mnist_mosaic.py:variant=l2d,runlocal"
    config = config_files.load(f"{config_path},teacher_checkpoint={tmp_path}")
    plan = stage.build(recipe.resolve_stage(config, "student"), parallel.make_mesh())
    image = plan.zeros_batch()["image"]
    ckpt_lib.save_model_variables(str(tmp_path), plan.teacher_model.init(jax.random.key(1), image, train=False), {})
    narrow, wide = (led_scale.network_terms(config_path, str(tmp_path), width, seed=0, batches=2)
                    for width in (16, 256))
    for terms in (narrow, wide):
        assert terms["bce"] > 0 and terms["led_class"] >= 0 and terms["led_instance"] >= 0
        assert 1 <= terms["positives"] <= 10
    assert wide["query_spread"] < narrow["query_spread"]


def test_the_readmes_frozen_query_rows_are_this_scripts():
    """configs/ml_3d/README.md's queries-alone table, recomputed (its defaults: batch 64, 3 positives, seeds 0-2)."""
    text = open(os.path.join(helpers.REPO, "configs/ml_3d/README.md")).read()
    text = text[text.index("| queries alone: student / teacher width |"):]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()[2:5]]
    assert [r[0] for r in rows] == ["128 / 128", "768 / 768", "768 / 128"]
    for widths, *cells in rows:
        student, teacher = (int(w) for w in widths.split(" / "))
        for labels, cell in zip((10, 80), cells):
            values = [led_scale.frozen_query_led(student, labels, batch=64, positives=3, seed=s, teacher_width=teacher)
                      for s in (0, 1, 2)]
            assert cell == f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}", (widths, labels)
