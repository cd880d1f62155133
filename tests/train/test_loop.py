"""The training loop: sharding invariance, exact resume after SIGTERM, the non-finite guard, teacher handling."""
import json
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kdjax.train import checkpoint as ckpt_lib
from kdjax.train import loop, terms
from tests import helpers


def _final_state(workdir, stage):
    checkpointer = ckpt_lib.Checkpointer(os.path.join(workdir, stage, "checkpoints"))
    tree, meta, step = checkpointer.restore_raw()
    checkpointer.close()
    return tree, meta, step


def _losses(workdir, stage):
    with open(os.path.join(workdir, stage, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    return {r["step"]: r["loss/total"] for r in records if "loss/total" in r}


def test_eight_devices_match_one_device(tmp_path):
    """Same config on 8 CPU devices (this process) and on 1 device (a subprocess): same losses and parameters."""
    assert jax.device_count() == 8
    config = helpers.tiny_config(steps=3)
    loop.run_stage(config, "teacher", str(tmp_path / "eight"))
    loop.run_stage(config, "student", str(tmp_path / "eight"))
    code = (
        "import jax; assert jax.device_count() == 1\n"
        "from kdjax.train import loop\nfrom tests import helpers\n"
        "c = helpers.tiny_config(steps=3)\n"
        f"loop.run_stage(c, 'teacher', {str(tmp_path / 'one')!r})\n"
        f"loop.run_stage(c, 'student', {str(tmp_path / 'one')!r})\n")
    proc = helpers.run_python(code, devices=1)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for stage in ("teacher", "student"):
        eight, _, _ = _final_state(str(tmp_path / "eight"), stage)
        one, _, _ = _final_state(str(tmp_path / "one"), stage)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), eight["params"],
                     one["params"])
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), eight["batch_stats"],
                     one["batch_stats"])
        l8, l1 = _losses(str(tmp_path / "eight"), stage), _losses(str(tmp_path / "one"), stage)
        assert sorted(l8) == [1, 2, 3]
        np.testing.assert_allclose([l8[s] for s in sorted(l8)], [l1[s] for s in sorted(l1)], rtol=1e-5)


def test_sigterm_then_resume_equals_uninterrupted_run(tmp_path):
    config = helpers.tiny_config(steps=5)
    loop.run_stage(config, "teacher", str(tmp_path / "straight"))

    def preempt_at_step_2(step):
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    first = loop.run_stage(config, "teacher", str(tmp_path / "resumed"), on_step=preempt_at_step_2)
    assert first["status"] == "preempted" and first["step"] == 2
    assert not os.path.exists(tmp_path / "resumed" / "teacher" / "results.json")
    second = loop.run_stage(config, "teacher", str(tmp_path / "resumed"))
    assert second["status"] == "done" and second["step"] == 5

    straight, _, _ = _final_state(str(tmp_path / "straight"), "teacher")
    resumed, meta, step = _final_state(str(tmp_path / "resumed"), "teacher")
    assert step == 5 and meta["data_epoch"] == 5 // 89 and meta["data_batch_in_epoch"] == 5
    jax.tree.map(np.testing.assert_array_equal, straight, resumed)
    # the JSONL log was appended, not restarted: one record per step
    assert sorted(_losses(str(tmp_path / "resumed"), "teacher")) == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(list(_losses(str(tmp_path / "resumed"), "teacher").values()),
                               list(_losses(str(tmp_path / "straight"), "teacher").values()), rtol=1e-6)


if "nan_from_step_3" not in terms.REGISTRY:
    @terms.register("nan_from_step_3")
    class _NanFromStep3(terms.Term):
        def loss(self, inputs):
            return jnp.where(inputs.step >= 2, jnp.nan, 0.0) + 0.0 * jnp.sum(inputs.student_logits)


def test_non_finite_loss_stops_with_step_and_terms_and_keeps_good_checkpoint(tmp_path):
    config = helpers.tiny_config(steps=6, distill=False)
    config.stages.teacher.losses["nan_from_step_3"] = {"weight": 1.0}
    with pytest.raises(loop.NonFiniteLossError, match=r"step 3: ce=[0-9.]+, nan_from_step_3=nan, total=nan"):
        loop.run_stage(config, "teacher", str(tmp_path))
    tree, _, step = _final_state(str(tmp_path), "teacher")
    assert step == 2
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(tree["params"]))


def test_student_stage_records_teacher_and_never_checkpoints_it(tmp_path):
    config = helpers.tiny_config(steps=2)
    loop.run_stage(config, "teacher", str(tmp_path))
    result = loop.run_stage(config, "student", str(tmp_path))
    with open(tmp_path / "student" / "teacher.json") as f:
        record = json.load(f)
    assert record["checkpoint"] == str(tmp_path / "teacher" / "checkpoints") and record["step"] == 2
    teacher_results = json.load(open(tmp_path / "teacher" / "results.json"))
    assert abs(record["eval"]["accuracy"] - teacher_results["final_accuracy"]) < 1e-6
    student, _, _ = _final_state(str(tmp_path), "student")
    teacher, _, _ = _final_state(str(tmp_path), "teacher")
    # the student checkpoint holds only the student: its conv widths are the student's (width 0.0625 vs 0.125)
    s_shapes = [x.shape for x in jax.tree.leaves(student["params"]["model"])]
    t_shapes = [x.shape for x in jax.tree.leaves(teacher["params"]["model"])]
    assert s_shapes != t_shapes
    assert sum(np.size(x) for x in jax.tree.leaves(student["params"])) == \
        sum(np.size(x) for x in jax.tree.leaves(student["params"]["model"]))
    assert result["status"] == "done" and "final_accuracy" in result


def test_student_without_teacher_checkpoint_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `--stage=teacher` first"):
        loop.run_stage(helpers.tiny_config(steps=1), "student", str(tmp_path))


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path):
    config = helpers.tiny_config(steps=2, distill=False)
    loop.run_stage(config, "teacher", str(tmp_path))
    config.stages.teacher.losses.ce.label_smoothing = 0.1
    config.stages.teacher.num_steps = 4
    with pytest.raises(RuntimeError, match=r"different config \(losses: checkpoint .* vs config .*label_smoothing"):
        loop.run_stage(config, "teacher", str(tmp_path))
