"""ICD (intra-class contrastive teachers) end to end: the teacher term in the trainer (gating, statistics, the cache in the checkpoint and
exact resume), every Table 1-3 cell's config, errors, the Tiny-ImageNet source."""
import json
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from configs.icd import common as icd
from configs.icd import fashion_mnist, student, teacher
from kdjax import data
from kdjax.train import checkpoint as ckpt_lib
from kdjax.train import loop, recipe, terms
from tests import helpers


def _icd_digits(steps=6, **icd_options):
    """A VGG-4 ICD teacher on digits: every sample qualifies (threshold -1 + eps) and a class fires only after
    several steps (capacity 6 with batch 16 over 10 classes), so the cache carries entries across steps."""
    config = helpers.tiny_config(steps=steps, distill=False)
    config.data.views = {"image": "pad_crop(1)|flip", "image_view2": "pad_crop(1)|flip"}
    options = dict(weight=0.5, margin_threshold=-0.999, capacity=6, temperature=0.5)
    options.update(icd_options)
    config.stages.teacher.losses["icd"] = options
    return config


def test_term_gates_by_margin_and_reports_what_fired():
    """The term's statistics against a NumPy count: qualifying = rho > delta on the anchor view's logits."""
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(12, 4)) * 3, jnp.float32)
    labels = jnp.asarray(rng.integers(0, 4, 12), jnp.int32)
    p = np.asarray(jax.nn.softmax(logits))
    rho = np.array([p[i, y] - np.max(np.delete(p[i], y)) for i, y in enumerate(np.asarray(labels))])
    term = terms.build_term("icd", dict(weight=0.02, margin_threshold=0.3, capacity=3)).term
    inputs = terms.TermInputs({"label": labels}, {"image": terms.ViewOutputs(logits, {}),
                                                  "image_view2": terms.ViewOutputs(logits[::-1], {})},
                              None, None, jnp.int32(0), jnp.float32(1), jax.random.key(0))
    _, cache = term.init(jax.random.key(0), inputs)
    loss, new_cache, stats = term(inputs, {}, cache)
    qualifying = rho > 0.3
    assert stats["qualifying"] == qualifying.sum() > 0
    per_class = np.bincount(np.asarray(labels)[qualifying], minlength=4)
    assert stats["classes_fired"] == np.sum(per_class >= 3)
    assert stats["anchors_fired"] == per_class[per_class >= 3].sum()
    np.testing.assert_array_equal(new_cache["count"], np.where(per_class >= 3, 0, per_class))
    assert (float(loss) > 0) == bool(stats["anchors_fired"])


def test_resume_with_a_non_empty_cache_equals_the_uninterrupted_run(tmp_path):
    straight = loop.run(_icd_digits(), str(tmp_path / "straight"))[0]
    records = [json.loads(l) for l in open(tmp_path / "straight" / "teacher" / "metrics.jsonl") if "icd/" in l]
    assert any(r["icd/anchors_fired"] > 0 for r in records) and any(r["icd/cached"] > 0 for r in records)

    def sigterm_at_3(event, **info):
        if event == "step" and info["step"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)
    first = loop.run(_icd_digits(), str(tmp_path / "resumed"), on_event=sigterm_at_3)[0]
    assert first["status"] == "preempted"
    tree, _, step = ckpt_lib.restore_raw(str(tmp_path / "resumed" / "teacher" / "checkpoints"))
    assert step == 3 and int(np.sum(tree["loss_state"]["icd"]["count"])) > 0  # the cache was checkpointed
    resumed = loop.run(_icd_digits(), str(tmp_path / "resumed"))[0]
    assert resumed["final"] == straight["final"]
    a = ckpt_lib.restore_raw(str(tmp_path / "straight" / "teacher" / "checkpoints"))[0]
    b = ckpt_lib.restore_raw(str(tmp_path / "resumed" / "teacher" / "checkpoints"))[0]
    jax.tree.map(np.testing.assert_array_equal, a["params"], b["params"])
    jax.tree.map(np.testing.assert_array_equal, a["loss_state"], b["loss_state"])


def test_joint_bn_forwards_both_views_as_one_batch():
    """joint_bn: one BatchNorm pass over [view 1; view 2]; the per-view outputs equal the halves of that pass."""
    from kdjax import models
    from kdjax.train import step as step_lib
    model = models.get_model("vgg4", num_classes=10, width=0.125)
    x1, x2 = (jax.random.normal(jax.random.key(i), (4, 8, 8, 1)) for i in (1, 2))
    variables = model.init(jax.random.key(0), x1, train=False)
    weighted = terms.build_terms({"icd": dict(weight=0.1, joint_bn=True)})
    inputs, stats = step_lib.forward(step_lib.Networks(model), weighted, variables["params"], variables["batch_stats"],
                                     {}, {"image": x1, "image_view2": x2, "label": jnp.zeros(4, jnp.int32)},
                                     step=0, epoch=1, rng=jax.random.key(3))
    (joint, _), _ = model.apply(variables, jnp.concatenate([x1, x2]), train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(inputs.student, joint[:4], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(inputs.views["image_view2"].student, joint[4:], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("options, message", [
    (dict(capacity=1), "capacity=1; it must be >= 2"),
    (dict(margin_threshold=1.0), r"margin_threshold=1.0; .* must lie in \(-1, 1\)"),
    (dict(embedding="features2"), "embedding='features2'; valid: logits, probs, features"),
    (dict(weight=-0.01), r"weight \(lambda\) -0.01 < 0"),
])
def test_bad_icd_options_fail_before_training(options, message, tmp_path):
    config = _icd_digits()
    config.stages.teacher.losses.icd.update(options)
    with pytest.raises(recipe.ConfigError, match=message):
        loop.run(config, str(tmp_path))
    assert not (tmp_path / "teacher").exists()


def test_icd_without_the_second_view_names_the_data_option(tmp_path):
    config = _icd_digits()
    config.data.views = {"image": "pad_crop(1)|flip"}
    with pytest.raises(recipe.ConfigError, match=r"needs batch view\(s\) \['image_view2'\].*add them to data.views"):
        loop.run(config, str(tmp_path))


def _readme_cells():
    """configs/icd/README.md's tables: {(dataset, pair, method): number or None}."""
    text = open(os.path.join(helpers.REPO, "configs", "icd", "README.md")).read()
    cells, dataset, pairs = {}, None, None
    for line in text.splitlines():
        if line.startswith("#### "):
            dataset = line.split()[1]
        elif line.startswith("| method |"):
            pairs = [c.strip() for c in line.strip("|").split("|")[1:]]
        elif line.startswith("| ") and pairs and not line.startswith("|---"):
            cells_in_row = [c.strip() for c in line.strip("|").split("|")]
            for pair, value in zip(pairs, cells_in_row[1:]):
                cells[(dataset, pair, cells_in_row[0])] = None if value == "-" else float(value.strip("*"))
        elif not line.strip():
            pairs = None
    return cells


def test_every_table_cell_has_a_config_with_the_readme_number():
    readme = _readme_cells()
    count = 0
    for dataset in icd.DATASETS:
        for pair in icd.PAIRS:
            for method in icd.METHODS:
                config = student.get_config(f"dataset={dataset},pair={pair},method={method},teacher_checkpoint=/t")
                stages = [recipe.resolve_stage(config, s) for s in recipe.stage_order(config)]
                spec = stages[-1]
                assert spec.model["name"] == icd.MODELS[pair.split("-")[1]]
                assert config.info.published_top1 == readme[(dataset, pair, method)], (dataset, pair, method)
                assert (spec.teacher is None) == (method == "ce")
                assert spec.schedule == dict(name="multistep", base_lr=0.05, milestones=(30, 60), decay_factor=0.1)
                names = set(spec.losses)
                if method in ("ours", "ours_rkd"):
                    assert {"ce", "kd"} <= names and ("rkd" in names) == (method == "ours_rkd")
                    assert "icd" in spec.teacher.how_to_get and "loss=icd" in spec.teacher.how_to_get
                count += 1
    assert count == 198
    without = student.get_config("dataset=cifar100,pair=vgg13-vgg8,method=ours")
    assert recipe.stage_order(without) == ["teacher", "student"]
    assert "icd" in without.stages.teacher.losses and without.stages.teacher.batch_size == 256


@pytest.mark.parametrize("pair", icd.PAIRS)
def test_every_pair_builds_teacher_student_and_terms(pair):
    """A shape check of every pair (one full step per dataset kind runs below): both networks and every term's
    modules at the pair's layouts, through jax.eval_shape."""
    config = helpers.narrow(student.get_config(f"runlocal,pair={pair},method=ours_rkd"))
    with tfds.testing.mock_data(num_examples=16):
        specs = loop.validate(config)
    assert [s.name for s in specs] == ["teacher", "student"] and "icd" in specs[0].losses


@pytest.mark.trains("configs/icd/student.py")
def test_icd_teacher_and_student_train_on_mock_cifar(tmp_path):
    config = helpers.narrow(student.get_config("runlocal,pair=vgg13-vgg8,method=ours_rkd"))
    with tfds.testing.mock_data(num_examples=32):
        results = loop.run(config, str(tmp_path))
    assert [r["status"] for r in results] == ["done", "done"]
    logged = {k for line in open(tmp_path / "teacher" / "metrics.jsonl") for k in json.loads(line)}
    assert {"loss/icd", "icd/qualifying", "icd/classes_fired", "icd/anchors_fired"} <= logged
    assert {"loss/kd", "loss/rkd"} <= {k for line in open(tmp_path / "student" / "metrics.jsonl")
                                       for k in json.loads(line)}


def _tiny_imagenet(root, classes=3, per_class=4, val=2):
    rng = np.random.default_rng(0)
    wnids = [f"n0{i}" for i in range(classes)]
    (root / "wnids.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "wnids.txt").write_text("\n".join(wnids))
    rows = []
    for w in wnids:
        (root / "train" / w / "images").mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (64, 64, 3), np.uint8)).save(root / "train" / w / "images" /
                                                                                f"{w}_{i}.JPEG")
    (root / "val" / "images").mkdir(parents=True)
    for i in range(classes * val):
        Image.fromarray(rng.integers(0, 255, (64, 64), np.uint8)).save(root / "val" / "images" / f"val_{i}.JPEG")
        rows.append(f"val_{i}.JPEG\t{wnids[(i * 2 + 1) % classes]}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(rows) + "\n")
    return wnids


def test_tiny_imagenet_source_reads_the_archive_layout(tmp_path):
    wnids = _tiny_imagenet(tmp_path / "tiny-imagenet-200")
    name = f"tiny_imagenet:{tmp_path / 'tiny-imagenet-200'}"
    train, val = data.get_split(name, "train"), data.get_split(name, "val")
    assert len(train) == 12 and train.class_names == tuple(wnids) and list(train.labels) == [0] * 4 + [1] * 4 + [2] * 4
    assert [int(v) for v in val.labels] == [(i * 2 + 1) % 3 for i in range(6)]
    d = data.build(dict(name=name, views={"image": "pad_crop(4)|flip"}, eval_split="val", normalization="imagenet"),
                   seed=0, batch_size=4, eval_batch_size=4)
    assert next(d.train.batches())["image"].shape == (4, 64, 64, 3)
    assert next(d.eval.batches())["image"].shape == (4, 64, 64, 3)  # grayscale val images decoded to RGB
    with pytest.raises(FileNotFoundError, match=r"tiny-imagenet-200\.zip, unzip it"):
        data.get_split(f"tiny_imagenet:{tmp_path / 'missing'}", "train")


@pytest.mark.trains("configs/icd/teacher.py")
def test_tiny_imagenet_teacher_config_trains_on_a_miniature_tree(tmp_path):
    _tiny_imagenet(tmp_path / "tiny")
    config = helpers.narrow(teacher.get_config(f"runlocal,dataset=tiny_imagenet,model=vgg13,data_root={tmp_path / 'tiny'}"))
    config.data.eval_split = "val"
    result = loop.run(config, str(tmp_path / "run"))[0]
    assert result["status"] == "done" and result["step"] == 2


def test_offline_study_config_measures_the_teachers_soft_labels():
    config = fashion_mnist.get_config("lam=0.02")
    assert "icd" in config.stages.teacher.losses and "image_view2" in config.stages.teacher.data.views
    assert "icd" not in fashion_mnist.get_config("lam=0").stages.teacher.losses
    assert config.stages.teacher.evals.soft_labels.to_dict() == dict(type="soft_label_diversity", temperature=4.0)
