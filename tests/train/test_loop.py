"""The training loop: sharding invariance, exact resume after SIGTERM at every safe point and after a crash, the
non-finite guard (loss, gradients, parameters), changed-trajectory refusal, teacher handling, best checkpoints."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kdjax.train import checkpoint as ckpt_lib
from kdjax.train import loop, terms, train_loop
from kdjax.train.state import model_variables
from tests import helpers


def final_state(workdir, stage, which="checkpoints"):
    return ckpt_lib.restore_raw(os.path.join(workdir, stage, which))


def logged_losses(workdir, stage):
    with open(os.path.join(workdir, stage, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    return {r["step"]: r["loss/total"] for r in records if "loss/total" in r}


def assert_same_params(a, b, **tol):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **tol) if tol else np.testing.assert_array_equal(x, y),
                 a["params"], b["params"])
    jax.tree.map(np.testing.assert_array_equal if not tol else lambda x, y: np.testing.assert_allclose(x, y, **tol),
                 a["batch_stats"], b["batch_stats"])


def test_eight_devices_match_one_device(tmp_path):
    """Same config on 8 CPU devices (this process) and on 1 device (a subprocess): same losses and parameters."""
    assert jax.device_count() == 8
    config = helpers.tiny_config(steps=3)
    loop.run(config, str(tmp_path / "eight"))
    code = ("import jax; assert jax.device_count() == 1\n"
            "from kdjax.train import loop\nfrom tests import helpers\n"
            f"loop.run(helpers.tiny_config(steps=3), {str(tmp_path / 'one')!r})\n")
    proc = helpers.run_python(code, devices=1)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for stage in ("teacher", "student"):
        eight, _, _ = final_state(str(tmp_path / "eight"), stage)
        one, _, _ = final_state(str(tmp_path / "one"), stage)
        assert_same_params(eight, one, rtol=1e-5, atol=1e-5)
        l8, l1 = logged_losses(str(tmp_path / "eight"), stage), logged_losses(str(tmp_path / "one"), stage)
        assert sorted(l8) == [1, 2, 3]
        np.testing.assert_allclose([l8[s] for s in sorted(l8)], [l1[s] for s in sorted(l1)], rtol=1e-5)


def _resumable_config():
    """Both stages on a 50-image subset: 3 steps per epoch, so 7 steps cross two epoch boundaries; evaluation every
    epoch, checkpoints every 2 steps."""
    config = helpers.tiny_config(steps=7)
    config.data.per_class = 5
    config.eval_every_epochs = 1.0
    config.checkpoint.every_steps = 2
    return config


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("straight"))
    results = loop.run(_resumable_config(), workdir)
    assert [r["status"] for r in results] == ["done", "done"]
    return workdir, results


@pytest.mark.parametrize("event, stage, step", [
    ("start", "student", None),      # start-up of a stage: before its data, teacher and state exist
    ("compiled", "teacher", None),   # after compiling, before the first step
    ("eval", "teacher", 6),          # during an evaluation (epoch 2)
    ("stage_done", "teacher", None),  # between stages
    ("step", "student", 4),           # after a step that is no save and no evaluation
])
def test_sigterm_anywhere_then_resume_equals_uninterrupted_run(straight_run, tmp_path, event, stage, step):
    reference, ref_results = straight_run
    workdir = str(tmp_path)
    first = loop.run(_resumable_config(), workdir, on_event=helpers.sigterm_at(event, stage, step))
    assert first[-1]["status"] == "preempted"
    assert not os.path.exists(os.path.join(workdir, first[-1]["stage"], "results.json"))
    second = loop.run(_resumable_config(), workdir)
    assert [r["status"] for r in second] == ["done", "done"]
    for s in ("teacher", "student"):
        assert_same_params(final_state(reference, s)[0], final_state(workdir, s)[0])
        ref = json.load(open(os.path.join(reference, s, "results.json")))
        got = json.load(open(os.path.join(workdir, s, "results.json")))
        assert got["best"] == ref["best"] and got["final"] == ref["final"]
        # the JSONL log was appended, not restarted: one record per step
        assert sorted(logged_losses(workdir, s)) == list(range(1, 8))


def test_crash_between_checkpoints_resumes_from_the_last_save_with_the_best_metric(straight_run, tmp_path):
    """A crash at step 5 (checkpoints at 2 and 4, evaluations at 3 and 6): the relaunch restarts from step 4 with the
    best-so-far record of step 3's evaluation and ends equal to the uninterrupted run."""
    reference, _ = straight_run

    def crash(name, **info):
        if name == "step" and info["step"] == 5:
            raise KeyboardInterrupt("simulated crash")
    with pytest.raises(KeyboardInterrupt):
        loop.run_stage(_resumable_config(), "teacher", str(tmp_path), on_event=crash)
    _, meta, step = final_state(str(tmp_path), "teacher")
    assert step == 4 and meta["best"]["eval/accuracy"]["step"] == 3
    loop.run_stage(_resumable_config(), "teacher", str(tmp_path))
    assert_same_params(final_state(reference, "teacher")[0], final_state(str(tmp_path), "teacher")[0])
    ref = json.load(open(os.path.join(reference, "teacher", "results.json")))
    got = json.load(open(os.path.join(str(tmp_path), "teacher", "results.json")))
    assert got["best"] == ref["best"]


def test_best_checkpoint_holds_the_state_at_the_best_evaluation(straight_run):
    reference, results = straight_run
    teacher = results[0]
    best_step = teacher["best"]["eval/accuracy"]["step"]
    tree, meta, step = final_state(reference, "teacher", "checkpoints_best")
    assert step == best_step and meta["best"]["eval/accuracy"]["value"] == teacher["best_accuracy"]
    assert teacher["final_accuracy"] == teacher["final"]["eval/accuracy"]
    assert teacher["code"]["commit"] and "dirty" in teacher["code"]


if "nan_from_step_3" not in terms.TERMS:
    @terms.register("nan_from_step_3")
    class _NanFromStep3(terms.Term):
        def loss(self, inputs):
            return jnp.where(inputs.step >= 2, jnp.nan, 0.0) + 0.0 * jnp.sum(inputs.student)

    @terms.register("nan_gradient_from_step_3")
    class _NanGradientFromStep3(terms.Term):
        """A finite loss (0) with a NaN gradient: the norm of an all-zero vector, as `attention_transfer` had."""
        def loss(self, inputs):
            zero = jnp.where(inputs.step >= 2, 0.0, 1.0) * inputs.student
            return 0.0 * jnp.linalg.norm(zero)


@pytest.mark.parametrize("term, message", [
    ("nan_from_step_3", r"step 3: ce=[0-9.]+, nan_from_step_3=nan, total=nan"),
    ("nan_gradient_from_step_3", r"step 3: ce=[0-9.]+, nan_gradient_from_step_3=0.0, total=[0-9.]+; l2 of gradients nan"),
])
def test_non_finite_loss_or_gradient_stops_without_saving(term, message, tmp_path):
    config = helpers.tiny_config(steps=6, distill=False)
    config.stages.teacher.losses[term] = {"weight": 1.0}
    with pytest.raises(train_loop.NonFiniteError, match=message):
        loop.run_stage(config, "teacher", str(tmp_path))
    tree, _, step = final_state(str(tmp_path), "teacher")
    assert step == 2
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(tree["params"]))


def test_student_stage_records_teacher_and_never_checkpoints_it(straight_run):
    workdir, results = straight_run
    with open(os.path.join(workdir, "student", "teacher.json")) as f:
        record = json.load(f)
    assert record["checkpoint"] == os.path.join(workdir, "teacher", "checkpoints") and record["step"] == 7
    assert abs(record["eval"]["eval/accuracy"] - results[0]["final_accuracy"]) < 1e-6
    assert record["fingerprint"] == ckpt_lib.fingerprint(model_variables(final_state(workdir, "teacher")[0]))
    student, _, _ = final_state(workdir, "student")
    teacher, _, _ = final_state(workdir, "teacher")
    # the student checkpoint holds only the student: its conv widths are the student's (width 0.0625 vs 0.125)
    s_shapes = [x.shape for x in jax.tree.leaves(student["params"]["model"])]
    t_shapes = [x.shape for x in jax.tree.leaves(teacher["params"]["model"])]
    assert s_shapes != t_shapes
    assert sum(np.size(x) for x in jax.tree.leaves(student["params"])) == \
        sum(np.size(x) for x in jax.tree.leaves(student["params"]["model"]))


def test_finished_stages_are_reported_not_rerun(straight_run, capsys):
    workdir, results = straight_run
    again = loop.run(_resumable_config(), workdir)
    assert [r["final"] for r in again] == [r["final"] for r in results]
    out = capsys.readouterr().out
    assert "finished earlier (step 7)" in out and "step 1/" not in out
    launches = [json.loads(l) for l in open(os.path.join(workdir, "launches.jsonl"))]
    assert len(launches) >= 2 and all(len(r["commit"]) == 40 and "dirty" in r for r in launches)


def test_student_without_teacher_checkpoint_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `--stage=teacher` first"):
        loop.run_stage(helpers.tiny_config(steps=1), "student", str(tmp_path))


@pytest.mark.parametrize("change, message", [
    (lambda c: c.stages.teacher.losses.ce.update(label_smoothing=0.1), r"losses: checkpoint .* vs config .*label_smoothing"),
    (lambda c: c.stages.teacher.schedule.update(base_lr=5.0), r"schedule: checkpoint .*0\.05.* vs config .*5\.0"),
    (lambda c: c.stages.teacher.update(num_steps=4), r"num_steps: checkpoint 2 vs config 4.*allow_extend=True"),
])
def test_resume_refuses_a_changed_trajectory(tmp_path, change, message):
    config = helpers.tiny_config(steps=2, distill=False)
    loop.run(config, str(tmp_path))
    change(config)
    with pytest.raises(RuntimeError, match=r"different config \(" + message):
        loop.run(config, str(tmp_path))


def test_resume_refuses_a_changed_teacher_and_allow_extend_continues(straight_run, tmp_path):
    workdir, _ = straight_run
    import shutil
    run_dir = str(tmp_path / "run")
    shutil.copytree(workdir, run_dir)
    config = _resumable_config()  # the same weights, named as another teacher: its identity differs
    shutil.copytree(os.path.join(run_dir, "teacher", "checkpoints"), str(tmp_path / "other_teacher"))
    config.stages.student.teacher = dict(stage="", checkpoint=str(tmp_path / "other_teacher"), how_to_get="",
                                         model=config.stages.teacher.model.to_dict())
    with pytest.raises(RuntimeError, match=r"teacher: checkpoint .*'stage': 'teacher'.* vs config .*other_teacher"):
        loop.run(config, run_dir, ["student"])
    config = _resumable_config()
    config.stages.student.num_steps = 9
    config.allow_extend = True
    result = loop.run(config, run_dir, ["student"])[0]
    assert result["status"] == "done" and result["step"] == 9
    assert any("run/extended_to_steps" in line for line in open(os.path.join(run_dir, "student", "metrics.jsonl")))
    # a teacher whose weights changed since the student's checkpoint (retrained in place): the student refuses
    tree, meta, step = final_state(run_dir, "teacher")
    checkpointer = ckpt_lib.Checkpointer(os.path.join(run_dir, "teacher", "checkpoints"))
    checkpointer.save(step + 1, jax.tree.map(lambda x: x * 1.01 if np.issubdtype(np.asarray(x).dtype, np.floating)
                                             else x, tree), meta)
    checkpointer.close()
    os.remove(os.path.join(run_dir, "student", "results.json"))
    with pytest.raises(RuntimeError, match="the teacher's weights changed since the checkpoint"):
        loop.run(config, run_dir, ["student"])


def test_a_crash_between_the_best_and_the_last_checkpoint_of_a_step_resumes(tmp_path):
    """The best checkpoint of the last step is written before the last checkpoint of that step: a crash in between
    leaves `checkpoints_best/` a step ahead. The relaunch resumes from the step before, reaches the step again and
    replaces that best checkpoint (Orbax refuses a second save of one step) and ends as the uninterrupted run."""
    config = helpers.tiny_config(steps=2, distill=False)
    config.checkpoint.every_steps = 1
    reference = loop.run(config, str(tmp_path / "straight"))[0]
    crashed = tmp_path / "crashed"
    import shutil
    shutil.copytree(tmp_path / "straight", crashed)
    os.remove(crashed / "teacher" / "results.json")
    shutil.rmtree(crashed / "teacher" / "checkpoints" / "2")
    assert ckpt_lib.restore_raw(str(crashed / "teacher" / "checkpoints_best"))[2] == 2
    resumed = loop.run(config, str(crashed))[0]
    assert resumed["final"] == reference["final"] and resumed["step"] == 2
    assert_same_params(final_state(str(tmp_path / "straight"), "teacher")[0],
                        final_state(str(crashed), "teacher", "checkpoints_best")[0])
