"""End to end through the command line: the quickstart config (runlocal), config errors, the report."""
import json
import os

import pytest

from configs import common
from kdjax import provenance
from kdjax.train import loop, recipe
from tests import helpers


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("quickstart")
    proc = helpers.run_python(["-m", "experiments.main", "--config=configs/quickstart.py:runlocal",
                               f"--workdir={workdir}"], user_env=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return workdir, proc.stdout, proc.stderr


@pytest.mark.trains("configs/quickstart.py",
                     # the same recipe on Fashion-MNIST
                     "configs/fashion_mnist_kd.py")
def test_quickstart_runs_all_stages_and_prints_three_accuracies(quickstart_run):
    workdir, stdout, _ = quickstart_run
    table = stdout[stdout.index("Results (evaluation split):"):]
    for stage in ("teacher", "student_kd", "student_ce"):
        row = next(line for line in table.splitlines() if line.startswith(f"| {stage} |")).split("|")
        results = json.load(open(workdir / stage / "results.json"))
        assert results["status"] == "done" and results["step"] == 2
        # the table shows the headline metric's last and best values from results.json
        assert row[4].strip() == "eval/accuracy" and float(row[5]) == pytest.approx(results["final_accuracy"], abs=1e-4)
        assert float(row[6].split("(")[0]) == pytest.approx(results["best_accuracy"], abs=1e-4)
        assert len(results["code"]["commit"]) == 40
    assert "steps/s ETA" in stdout
    record = json.load(open(workdir / "config.json"))
    assert record["config"]["stages"]["student_kd"]["losses"]["kd"]["temperature"] == 4.0
    assert len(record["commit"]) == 40 and isinstance(record["dirty"], bool)
    teacher = json.load(open(workdir / "student_kd" / "teacher.json"))
    assert teacher["model"]["name"] == "vgg8"
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(workdir / "teacher"))
    lines = [json.loads(l) for l in open(workdir / "student_kd" / "metrics.jsonl")]
    logged = set().union(*lines)
    for key in ("loss/ce", "loss/kd", "loss/total", "train/l2_grads", "train/l2_params", "train/lr",
                "train/teacher_agreement", "eval/accuracy", "eval/accuracy/best", "steps_per_sec"):
        assert key in logged, key


def test_launch_prints_kdjax_lines_without_tensorflows_start_up_lines(quickstart_run):
    """TensorFlow only feeds data: its C++ start-up notices (absl's pre-initialisation warning, the oneDNN and CPU
    feature notices) must not precede kdjax's lines. Started as a user would, without TF_CPP_MIN_LOG_LEVEL."""
    _, stdout, stderr = quickstart_run
    output = stdout + stderr
    assert stdout.startswith("kdjax: launching") and "steps/s ETA" in stdout
    for notice in ("absl::InitializeLog", "oneDNN custom operations", "This TensorFlow binary is optimized"):
        assert notice not in output, f"{notice!r} in the launch output:\n{output[:2000]}"


def test_relaunch_reports_finished_stages_without_training(quickstart_run):
    workdir, _, _ = quickstart_run
    proc = helpers.run_python(["-m", "experiments.main", "--config=configs/quickstart.py:runlocal",
                               f"--workdir={workdir}", "--stage=student_ce"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "finished earlier (step 2)" in proc.stdout and "[student_ce] step 1/" not in proc.stdout
    launches = [json.loads(line) for line in open(workdir / "launches.jsonl")]  # one record per launch
    assert len(launches) >= 2 and "--stage=student_ce" in launches[-1]["argv"]
    # the launch names its malloc, and a CPU run on glibc's says how to run faster
    assert launches[-1]["malloc"] in ("glibc", provenance.GLIBC_HUGEPAGES) + provenance.ALLOCATORS
    assert ("LD_PRELOAD=libtcmalloc_minimal.so.4" in proc.stdout) == (launches[-1]["malloc"] == "glibc")


def test_report_prints_table_and_writes_png(quickstart_run, tmp_path):
    workdir, _, _ = quickstart_run
    out = tmp_path / "curves.png"
    proc = helpers.run_python(["-m", "experiments.report", str(workdir), "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.load(open(workdir / "student_kd" / "results.json"))
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| student_kd |")).split("|")
    assert row[2].strip() == "2" and row[3].strip() == "eval/accuracy"
    assert float(row[4]) == pytest.approx(100 * results["final_accuracy"], abs=0.006)
    assert float(row[5].split("(")[0]) == pytest.approx(100 * results["best_accuracy"], abs=0.006)
    assert out.stat().st_size > 10_000


@pytest.mark.parametrize("override, message", [
    ("--config.stages.teacher.model.name=resnet1000", "unknown model 'resnet1000'; valid models: .*resnet32x4"),
    ("--config.data.name=cifar1000", "Unknown dataset 'cifar1000'.*cifar100"),
    ("--config.batch_size=12", "batch_size=12 is not divisible by the device count 8"),
    ("--config.stages.student_kd.optimizer.name=lamb", "unknown optimizer 'lamb'; valid optimizers: .*sgd"),
    ("--config.stages.teacher.nonsense=1", "nonsense"),
    ("--config.data.views.image=resize(16)|rotate(3)", "unknown preprocessing op 'rotate'"),
    ("--config.task=segmentation", "unknown task 'segmentation'; valid tasks: classification"),
    ("--stage=pupil", "Unknown --stage='pupil'; valid: 'all' or one of .*teacher"),
])
def test_config_errors_fail_before_training(override, message):
    proc = helpers.run_python(["-m", "experiments.main", "--config=configs/quickstart.py:runlocal",
                               "--workdir=/tmp/kdjax_never_created", override], devices=8)
    assert proc.returncode != 0
    import re
    assert re.search(message, proc.stderr), proc.stderr[-2000:]
    assert "steps/s" not in proc.stdout
    assert "Traceback" not in proc.stderr  # a user error is one line, not a stack


def test_a_refused_relaunch_prints_one_line_and_exits_non_zero(quickstart_run):
    """Relaunching a finished workdir with another trajectory (a KD temperature) is a user error: one line naming
    the changed value, exit status non-zero, nothing trained."""
    workdir, _, _ = quickstart_run
    proc = helpers.run_python(["-m", "experiments.main", "--config=configs/quickstart.py:runlocal",
                               f"--workdir={workdir}", "--config.stages.student_kd.losses.kd.temperature=2.0"])
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("Resume refused: stage 'student_kd'") and "'temperature': 4.0" in last
    assert "'temperature': 2.0" in last and "[student_kd] step 1/" not in proc.stdout


def test_recipe_validation_messages():
    config = helpers.tiny_config()
    config.stages.student.losses["kdd"] = {"weight": 1.0}
    with pytest.raises(recipe.ConfigError, match=r"stages.student.losses: unknown loss term 'kdd'; valid loss terms"):
        loop.validate(config)
    config = helpers.tiny_config()
    config.stages.student.teacher.stage = "student"
    with pytest.raises(recipe.ConfigError, match="must be a stage that runs before 'student'"):
        loop.validate(config)
    config = helpers.tiny_config()
    del config.stages.student["teacher"]
    with pytest.raises(recipe.ConfigError, match=r"term\(s\) \['kd'\] need a teacher"):
        loop.validate(config)
    with pytest.raises(ValueError, match=r"Unknown config argument 'runlcoal'; valid arguments: \['runlocal', 'seed'\]"):
        common.parse_arg("runlcoal", runlocal=False, seed=0)
    assert common.parse_arg("runlocal,seed=3", runlocal=False, seed=0).to_dict() == {"runlocal": True, "seed": 3}


def _errors_in_the_last_stage():
    """Each breaks only the config's last stage (student_ce): nothing may train before the error."""
    def student(c):
        return c.stages.student_ce
    return [
        (lambda c: student(c).model.update(widht=0.5), r"stages.student_ce.model: model 'vgg4'.*widht.*valid options"),
        (lambda c: student(c).update(optimizer=dict(name="adam", momentum=0.9, weight_decay=0.0)),
         r"optimizer \(adam\): unknown key\(s\) \['momentum', 'nesterov'\]"),
        (lambda c: student(c).schedule.update(warmup=5), r"schedule \(cosine\): unknown key\(s\) \['warmup'\]"),
        (lambda c: student(c).optimizer.update(weight_deacy=5e-4), r"unknown key\(s\) \['weight_deacy'\]"),
        (lambda c: (student(c).data.update(per_class=1), student(c).update(batch_size=16)),
         r"per_class=1 x 10 classes = 10 training examples, fewer than one global batch of 16"),
        (lambda c: student(c).data.update(normalization="cifar"), r"Unknown normalization 'cifar'"),
        (lambda c: student(c).losses.ce.update(label_smothing=0.1), r"unknown option\(s\) \['label_smothing'\]"),
        (lambda c: student(c).update(evals={"eval": dict(type="retrieval", k=3)}), r"unknown option\(s\) \['k'\]"),
        (lambda c: student(c).update(init_from="/nonexistent"), r"init_from"),
    ]


@pytest.mark.parametrize("change, message", _errors_in_the_last_stage())
def test_every_config_error_fails_before_any_stage_trains(change, message, tmp_path):
    from configs import quickstart
    config = quickstart.get_config("runlocal")
    with config.unlocked():
        change(config)
    with pytest.raises((recipe.ConfigError, FileNotFoundError), match=message):
        loop.run(config, str(tmp_path))
    assert not (tmp_path / "teacher").exists()


def test_sigterm_during_start_up_exits_zero_and_the_relaunch_completes(tmp_path):
    """SIGTERM right after launch (validation, data and compilation still ahead): exit code 0, nothing lost; the
    relaunch runs every stage."""
    import signal
    import subprocess
    import sys
    args = [sys.executable, "-u", "-m", "experiments.main", "--config=configs/quickstart.py:runlocal",
            f"--workdir={tmp_path}"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=helpers.REPO)
    proc = subprocess.Popen(args, cwd=helpers.REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    first = proc.stdout.readline()
    assert first.startswith("kdjax: launching")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-2000:]
    assert "Preempted during stage 'teacher'" in out and not (tmp_path / "teacher" / "results.json").exists()
    again = helpers.run_python(args[2:])
    assert again.returncode == 0, again.stderr[-3000:]
    assert all((tmp_path / s / "results.json").exists() for s in ("teacher", "student_kd", "student_ce"))


def _readme_commands():
    """(file, module, long flags) of every `python -m kdjax-module ...` line in the repository's READMEs."""
    import glob
    import re
    found = []
    for path in ["README.md"] + sorted(glob.glob(os.path.join(helpers.REPO, "configs", "*", "README.md")) +
                                      glob.glob(os.path.join(helpers.REPO, "benchmarks", "README.md"))):
        text = open(os.path.join(helpers.REPO, path)).read().replace("\\\n", " ")
        for module, args in re.findall(r"python -m ((?:experiments|benchmarks)\.\w+)([^`\n]*)", text):
            found.append((os.path.relpath(path, helpers.REPO), module, sorted(set(re.findall(r"(--\w+)", args)))))
    return found


def test_every_readme_command_names_a_module_and_flags_that_exist():
    """Each README command's module runs (`--help`) and accepts the flags the README passes it. The commands that
    train run elsewhere with :runlocal (the quickstart, the report, reproduce); here only their interfaces."""
    import subprocess
    import sys
    commands = _readme_commands()
    assert len(commands) >= 8
    modules = sorted({m for _, m, _ in commands})
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=helpers.REPO)
    procs = {m: subprocess.Popen([sys.executable, "-m", m, "--help"], cwd=helpers.REPO, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for m in modules}
    helps = {m: p.communicate(timeout=300)[0] for m, p in procs.items()}
    for m, p in procs.items():  # absl's --help exits 1 when required flags are unset; argparse's exits 0
        assert p.returncode in (0, 1) and "Traceback" not in helps[m], f"{m} --help failed: {helps[m][-1500:]}"
    for path, module, flags in commands:
        for flag in flags:
            assert flag in helps[module], f"{path}: `python -m {module}` is shown with {flag}, which it does not accept"


def test_reproduce_is_the_sweep_without_a_grid():
    """`experiments.reproduce` keeps the commands of earlier READMEs working by translating them to
    `experiments.sweep` (whose resume and tables tests/sweep/ checks)."""
    from experiments import reproduce
    argv = ["--config=configs/quickstart.py:runlocal", "--stage=student_ce", "--seeds=1,2", "--workdir=W",
            "--set", "batch_size=16", "--set", "stages.teacher.num_steps=3"]
    assert reproduce.translate(argv) == ["--config=configs/quickstart.py:runlocal", "--stages=student_ce",
                                         "--seeds=1,2", "--workdir=W", "--set=batch_size=16",
                                         "--set=stages.teacher.num_steps=3"]
    assert reproduce.translate(["--stage=all", "--workdir=W"]) == ["--workdir=W"]
