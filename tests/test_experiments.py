"""End to end through the command line: the quickstart config (runlocal), config errors, the report."""
import json
import os

import pytest
import tensorflow_datasets as tfds

from configs import common
from kdjax.train import recipe
from tests import helpers


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("quickstart")
    proc = helpers.run_python(["-m", "experiments.main", "--config=configs/quickstart.py:runlocal",
                               f"--workdir={workdir}"])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return workdir, proc.stdout


def test_quickstart_runs_all_stages_and_prints_three_accuracies(quickstart_run):
    workdir, stdout = quickstart_run
    table = stdout[stdout.index("Results (test split):"):]
    for stage in ("teacher", "student_kd", "student_ce"):
        row = next(line for line in table.splitlines() if line.startswith(f"| {stage} |"))
        assert 0.0 <= float(row.split("|")[4]) <= 1.0
        results = json.load(open(workdir / stage / "results.json"))
        assert results["status"] == "done" and results["step"] == 2
    assert "steps/s ETA" in stdout
    record = json.load(open(workdir / "config.json"))
    assert record["config"]["stages"]["student_kd"]["losses"]["kd"]["temperature"] == 4.0
    assert len(record["git_commit"]) == 40
    teacher = json.load(open(workdir / "student_kd" / "teacher.json"))
    assert teacher["model"]["name"] == "vgg8"
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(workdir / "teacher"))
    lines = [json.loads(l) for l in open(workdir / "student_kd" / "metrics.jsonl")]
    logged = set().union(*lines)
    for key in ("loss/ce", "loss/kd", "loss/total", "train/l2_grads", "train/l2_params", "train/lr",
                "train/teacher_agreement", "eval/accuracy", "eval/best_accuracy", "steps_per_sec"):
        assert key in logged, key


def test_relaunch_resumes_finished_stages_without_training(quickstart_run):
    workdir, _ = quickstart_run
    proc = helpers.run_python(["-m", "experiments.main", "--config=configs/quickstart.py:runlocal",
                               f"--workdir={workdir}", "--stage=student_ce"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed from step 2" in proc.stdout and "[student_ce] step 1/" not in proc.stdout


def test_report_prints_table_and_writes_png(quickstart_run, tmp_path):
    workdir, _ = quickstart_run
    out = tmp_path / "curves.png"
    proc = helpers.run_python(["-m", "experiments.report", str(workdir), "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| student_kd | 2 |" in proc.stdout
    assert out.stat().st_size > 10_000


@pytest.mark.parametrize("override, message", [
    ("--config.stages.teacher.model.name=resnet1000", "unknown model 'resnet1000'; valid models: .*resnet32x4"),
    ("--config.data.name=cifar1000", "Unknown dataset 'cifar1000'.*cifar100"),
    ("--config.batch_size=12", "batch_size=12 is not divisible by the device count 8"),
    ("--config.stages.student_kd.optimizer.name=lamb", "unknown optimizer 'lamb'; valid: .*sgd"),
    ("--config.stages.teacher.nonsense=1", "nonsense"),
    ("--stage=pupil", "Unknown --stage='pupil'; valid: 'all' or one of .*teacher"),
])
def test_config_errors_fail_before_training(override, message):
    proc = helpers.run_python(["-m", "experiments.main", "--config=configs/quickstart.py:runlocal",
                               "--workdir=/tmp/kdjax_never_created", override], devices=8)
    assert proc.returncode != 0
    import re
    assert re.search(message, proc.stderr), proc.stderr[-2000:]
    assert "steps/s" not in proc.stdout


def test_recipe_validation_messages():
    config = helpers.tiny_config()
    config.stages.student.losses["kdd"] = {"weight": 1.0}
    with pytest.raises(recipe.ConfigError, match=r"stages.student.losses: Unknown loss term 'kdd'; valid loss terms"):
        recipe.validate(config)
    config = helpers.tiny_config()
    config.stages.student.teacher.stage = "student"
    with pytest.raises(recipe.ConfigError, match="must be a stage that runs before 'student'"):
        recipe.validate(config)
    config = helpers.tiny_config()
    del config.stages.student["teacher"]
    with pytest.raises(recipe.ConfigError, match=r"term\(s\) \['kd'\] need a teacher"):
        recipe.validate(config)
    with pytest.raises(ValueError, match=r"Unknown config argument 'runlcoal'; valid arguments: \['runlocal', 'seed'\]"):
        common.parse_arg("runlcoal", runlocal=False, seed=0)
    assert common.parse_arg("runlocal,seed=3", runlocal=False, seed=0).to_dict() == {"runlocal": True, "seed": 3}
