"""Every shipped config resolves, and its `:runlocal` variant trains 2 steps per stage (TFDS data mocked)."""
import glob
import importlib
import os
import re

import pytest
import tensorflow_datasets as tfds

from kdjax.train import loop, recipe
from tests import helpers, tfds_fakes
from tests.conftest import RUNLOCAL_PARAM

CONFIGS = sorted(os.path.relpath(p, helpers.REPO) for p in glob.glob(os.path.join(helpers.REPO, "configs", "**", "*.py"),
                                                                        recursive=True)
                 if not os.path.basename(p).startswith(("__", "common", "offline_study")))  # sweeps: tests/sweep/
# Needs an image folder and a converted ImageNet teacher: validated and trained in tests/configs/test_jacobian_matching.py.
FOLDER_CONFIGS = {"configs/jacobian_matching/mit_scenes_table3.py"}
MOCK = dict(num_examples=1000)  # every CIFAR-100 class present, so few-shot subsets exist
# TFDS's random mock cannot encode these builders' bounding boxes: tests/tfds_fakes.py stands in, with fewer images
# than the real splits, so their size assertions are left out here (tests/configs/test_dml.py checks them against the table).
FAKED = {"configs/dml/cub200.py": tfds_fakes.class_dataset("label", 200, {"train": 3, "test": 2}),
         "configs/dml/cars196.py": tfds_fakes.class_dataset("label", 196, {"train": 2, "test": 2}),
         "configs/dml/sop.py": tfds_fakes.class_dataset("class_id", 120, {"train": 2, "test": 2})}
FAKED.update({path.replace("/dml/", "/s2sd/"): fake for path, fake in FAKED.items()})
_VOC = tfds_fakes.detection_dataset(20, {"train": 40, "validation": 40, "test": 16}, with_difficult=True)[0]
_COCO = tfds_fakes.detection_dataset(80, {"train": 80, "validation": 16}, empty_every=5)[0]
FAKED.update({"configs/multilabel/teacher.py": _VOC, "configs/multilabel/student_baseline.py": _VOC,
              "configs/ml_3d/voc.py": _VOC, "configs/ml_3d/coco.py": _COCO})
# Configs whose default arguments are not enough: the ImageNet initialisation is an explicit choice.
VALIDATE_ARGS = {"configs/multilabel/teacher.py": "pretrained=none",
                 "configs/multilabel/student_baseline.py": "pretrained=none",
                 "configs/ml_3d/voc.py": "teacher_pretrained=none,student_pretrained=none"}
# Mock labels are random: ~10 examples per CIFAR-100 class, so the few-shot smoke test takes 1 per class.
RUNLOCAL_ARGS = {"configs/jacobian_matching/cifar100_table1.py": "runlocal,per_class=1",
                 # the cheapest pair to compile; resnet32x4 -> resnet8x4 steps in tests/train/test_zoo_terms.py
                 "configs/baselines/cifar100.py": "runlocal,pair=vgg13-vgg8"}
RUNLOCAL_ARGS.update({path: "runlocal," + args for path, args in VALIDATE_ARGS.items()})
# 3D with both views offline (teacher stage, then a student reading it)
RUNLOCAL_ARGS.update({"configs/ml_3d/fashion_mnist_mosaic.py": "runlocal,views=both,ndd_pairs=views"})


def load(path, arg=None):
    module = importlib.import_module(path[:-3].replace(os.sep, "."))
    return module.get_config(arg)


def _documented_commands(path):
    """The `python -m experiments.main --config=...` commands of a config's docstring, as (file, args)."""
    doc = importlib.import_module(path[:-3].replace(os.sep, ".")).__doc__
    commands = re.findall(r"python -m experiments\.main --config=(\S+?\.py)(?::(\S+))?\s", doc.replace("\\\n", " "))
    return doc, commands


@pytest.mark.parametrize("path", CONFIGS)
def test_config_validates_and_its_docstring_launches_it(path):
    """Every config validates (mock TFDS data), and the launch commands its docstring shows name this file with
    arguments that the config accepts (placeholders such as W or $HOME/... are fine: only get_config runs)."""
    config = load(path, VALIDATE_ARGS.get(path))
    if path in FAKED:
        config.data.expect = None
        with tfds_fakes.mock(FAKED[path]):
            loop.validate(config)
    elif path not in FOLDER_CONFIGS:
        with tfds.testing.mock_data(num_examples=3000):  # >= 10 of every CIFAR-100 class: the few-shot cells exist
            loop.validate(config)
    doc, commands = _documented_commands(path)
    assert commands, f"{path}: the docstring shows no launch command"
    for file, args in commands:
        assert file == path, f"{path}: its docstring launches {file}"
        load(path, args or None)
    assert re.search(r"[Rr]untime[^.]*\d", doc), f"{path}: the docstring states no runtime"


# The runlocal of a config whose recipe another config's runlocal here trains already (the same code path).
SAME_RECIPE = {
    # its teacher + KD student = configs/baselines/cifar100.py's vgg13-vgg8 cell
    "configs/baselines/cifar100.py": ("configs/cifar100_kd.py",),
    # teacher.py's recipe with the full cycle and a student network; ml_3d's cells are that recipe with a teacher and
    # the distillation terms, which tests/train/test_degenerate_inputs.py steps and tests/configs/test_ml_3d.py builds
    "configs/multilabel/teacher.py": ("configs/multilabel/student_baseline.py", "configs/ml_3d/coco.py",
                                      "configs/ml_3d/voc.py"),
}


def _runlocal_params():
    return [pytest.param(path, marks=pytest.mark.trains(*SAME_RECIPE.get(path, ())), id=path)
            for path in sorted(CONFIGS)]


# A config another test trains (marked `@pytest.mark.trains(path)`) is deselected here (tests/conftest.py).
@pytest.mark.parametrize(RUNLOCAL_PARAM, _runlocal_params())
def test_config_runlocal_trains_two_steps_per_stage(runlocal_config, tmp_path):
    path = runlocal_config
    config = helpers.narrow(load(path, RUNLOCAL_ARGS.get(path, "runlocal")))
    with tfds_fakes.mock(FAKED[path]) if path in FAKED else tfds.testing.mock_data(**MOCK):
        for stage in recipe.stage_order(config):
            result = loop.run_stage(config, stage, str(tmp_path))
            assert result["status"] == "done" and result["step"] == 2


def test_cifar100_teacher_checkpoint_argument_skips_the_teacher_stage():
    config = load("configs/cifar100_kd.py", "teacher_checkpoint=/ckpts/teacher")
    assert recipe.stage_order(config) == ["student_kd", "student_ce"]
    spec = recipe.resolve_stage(config, "student_kd")
    assert spec.teacher.checkpoint == "/ckpts/teacher" and spec.teacher.model["name"] == "resnet32x4"
