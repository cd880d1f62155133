"""The sweep runner end to end on configs/quickstart.py:runlocal: a 2-value grid x 2 seeds from the command line
(four cells, shared teachers, tables), a relaunch that trains nothing, an interrupted cell resumed through submitit's
local executor (the SLURM launcher's path), a failed cell reported while the others finish."""
import json
import os
import shutil

import numpy as np
import pytest

from kdjax.sweep import grid, launchers, runner
from tests import helpers

GRID = "stages.student_kd.losses.kd.temperature=2.0,4.0"
COMMAND = ["-m", "experiments.sweep", "--config=configs/quickstart.py:runlocal", "--seeds=0,1", f"--grid={GRID}",
           "--set=checkpoint.every_steps=1", "--baseline=temperature=4.0"]
CELLS = ["temperature-2.0_seed-0", "temperature-4.0_seed-0", "temperature-2.0_seed-1", "temperature-4.0_seed-1"]


@pytest.fixture(scope="module")
def quickstart_sweep(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sweep")
    proc = helpers.run_python(COMMAND + [f"--workdir={workdir}"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return workdir, proc.stdout


def _sweep():
    axes = grid.resolve_axes("configs/quickstart.py:runlocal", [grid.parse_axis(GRID),
                                                                grid.parse_axis("checkpoint.every_steps=1")])
    return grid.Sweep("configs/quickstart.py:runlocal", axes[:1], (0, 1), fixed=axes[1:])


@pytest.mark.trains("configs/quickstart.py")
def test_a_grid_of_two_values_times_two_seeds_gives_four_cells_shared_teachers_and_tables(quickstart_sweep):
    workdir, stdout = quickstart_sweep
    assert sorted(n for n in os.listdir(workdir) if n.startswith("temperature-")) == sorted(CELLS)
    # one teacher per seed, trained once: both temperatures of a seed link to it
    shared = sorted(os.listdir(workdir / "shared"))
    assert len(shared) == 2 and sum(line.startswith("[sweep] shared/teacher-") for line in stdout.splitlines()) == 4
    for seed in (0, 1):
        links = {os.path.realpath(workdir / f"temperature-{t}_seed-{seed}" / "teacher") for t in ("2.0", "4.0")}
        assert len(links) == 1 and os.path.dirname(links.pop()).startswith(str(workdir / "shared"))
    # the table against the cells' own results.json: mean ± std (ddof 1) over the two seeds
    table = (workdir / "table.md").read_text()
    for t in ("2.0", "4.0"):
        values = [100 * json.load(open(workdir / f"temperature-{t}_seed-{s}" / "student_kd" / "results.json"))
                  ["final"]["eval/accuracy"] for s in (0, 1)]
        row = next(line for line in table.splitlines() if line.startswith(f"| {t} | student_kd |"))
        assert f"| {np.mean(values):.2f} ± {np.std(values, ddof=1):.2f} |" in row
    summary = json.loads((workdir / "summary.json").read_text())
    assert len(summary["rows"]) == 6 and summary["baseline"] == {"stages.student_kd.losses.kd.temperature": "4.0"}
    assert (workdir / "temperature.png").exists()


def test_collect_names_a_workdir_that_does_not_exist_and_status_lists_the_cells_to_run(tmp_path):
    nowhere = tmp_path / "nowhere"
    proc = helpers.run_python(COMMAND + [f"--workdir={nowhere}", "--collect"])
    assert proc.returncode == 1 and f"Error: --workdir={nowhere} does not exist" in proc.stderr
    status = helpers.run_python(COMMAND + [f"--workdir={nowhere}", "--status"])
    assert status.returncode == 0 and [line.split(":")[0] for line in status.stdout.splitlines()] == CELLS
    assert all(": pending" in line for line in status.stdout.splitlines()) and not nowhere.exists()


def test_a_relaunch_trains_nothing_again(quickstart_sweep):
    workdir, _ = quickstart_sweep
    proc = helpers.run_python(COMMAND + [f"--workdir={workdir}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("finished earlier; reporting its results") == 4 and "started" not in proc.stdout
    status = helpers.run_python(COMMAND + [f"--workdir={workdir}", "--status"])
    assert status.stdout.count(": done (teacher done, student_kd done, student_ce done)") == 4


def test_an_interrupted_cell_resumes_from_its_checkpoint_through_submitit(quickstart_sweep, tmp_path):
    """A cell killed after step 1 of its last stage (its results and later checkpoint gone): the relaunch, through
    the SLURM launcher's submitit path on the local executor, runs that cell alone, which resumes at step 1 and
    ends with the uninterrupted run's results."""
    original, _ = quickstart_sweep
    workdir = tmp_path / "sweep"
    shutil.copytree(original, workdir, symlinks=True)
    stage = workdir / "temperature-2.0_seed-1" / "student_ce"
    reference = json.load(open(stage / "results.json"))
    os.remove(stage / "results.json")
    shutil.rmtree(stage / "checkpoints" / "2")
    sweep = _sweep()
    assert "interrupted at step 1" in runner.status(sweep, str(workdir))[2]
    outcome = runner.run(sweep, str(workdir), launchers.Slurm(str(workdir / "slurm"), cluster="local"))
    assert outcome["ran"] == ["temperature-2.0_seed-1"] and not outcome["failed"]
    assert "[student_ce] resumed from step 1" in (workdir / "temperature-2.0_seed-1" / "cell.log").read_text()
    resumed = json.load(open(stage / "results.json"))
    assert resumed["final"] == reference["final"] and resumed["step"] == 2


def test_a_failed_cell_is_reported_and_the_others_finish(quickstart_sweep):
    """A learning rate of 1e38 makes the parameters infinite at step 1 (the trainer's non-finite guard stops that
    run); the other cell of the grid finishes, the teacher of the earlier sweep (same identity) is reused, and the
    command exits non-zero naming the failed cell and its log."""
    workdir, _ = quickstart_sweep
    proc = helpers.run_python(["-m", "experiments.sweep", "--config=configs/quickstart.py:runlocal", "--seeds=0",
                               "--grid=stages.student_ce.schedule.base_lr=0.05,1e38", f"--workdir={workdir}"])
    assert proc.returncode != 0 and "shared/teacher-" not in proc.stdout  # the teacher was not trained again
    assert "failed cells:\n  base_lr-1e38_seed-0 (exit 1, log " in proc.stderr, proc.stderr[-2000:]
    record = json.load(open(workdir / "base_lr-1e38_seed-0" / "sweep_cell.json"))
    assert record["returncode"] == 1 and "NonFiniteError" in open(record["log"]).read()
    table = (workdir / "table.md").read_text()
    assert "| 0.05 | student_ce |" in table and "| 1e38 | student_ce |" not in table
