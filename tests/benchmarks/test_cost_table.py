"""benchmarks/cost_table.py's pieces on the quickstart: the view sizes it infers, the steps its shapes-only data
give, and a stage row whose teacher share equals the teacher's own forward cost, counted independently."""
import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from benchmarks import cost_table  # noqa: E402
from kdjax import config_files, parallel  # noqa: E402
from kdjax.train import recipe, stage  # noqa: E402
from kdjax.train import teacher as teacher_lib  # noqa: E402


@pytest.mark.parametrize("view,native,size", [("resize(16)|pad_crop(2)", 8, (16, 16)), ("", 32, (32, 32)),
                                              ("random_resized_crop(224)|flip", 500, (224, 224)),
                                              ("resize(256)|center_crop(224, 200)", 300, (224, 200))])
def test_view_size_follows_the_last_op_that_sets_it(view, native, size):
    assert cost_table.view_size(view, native) == size


def _quickstart_stage(name):
    return recipe.resolve_stage(config_files.load("configs/quickstart.py"), name)


def test_shapes_only_data_give_the_samplers_steps():
    spec = _quickstart_stage("student_kd")
    data = cost_table.shapes_only_data(spec)
    assert data.num_examples == 20 * 10 and data.num_classes == 10  # per_class=20 on digits
    assert data.train.steps_per_epoch == 200 // spec.batch_size  # the epoch sampler drops the last partial batch
    assert data.train.element_spec()["image"] == ((spec.batch_size, 16, 16, 1), np.float32)


def test_stage_row_teacher_share_is_the_teachers_forward():
    mesh = parallel.make_mesh()
    spec = _quickstart_stage("student_kd")
    row = cost_table.stage_row(spec, mesh)
    assert row["steps"] == 100 * (200 // spec.batch_size) and row["teacher_model"] == "vgg8"
    plan = stage.build(spec, mesh, data=cost_table.shapes_only_data(spec))
    teacher_vars = teacher_lib.abstract_variables(plan.teacher_model, plan.batch_spec["image"])
    forward = jax.jit(lambda v, x: plan.teacher_model.apply(v, x, train=False)).lower(
        teacher_vars, plan.batch_spec["image"]).cost_analysis()["flops"]
    np.testing.assert_allclose(row["pass_flops"], forward, rtol=0.02)
    assert 0 < row["teacher"] < 1
    assert row["cache_gb"] == pytest.approx(row["steps"] * spec.batch_size * 10 * 4 / 1e9)  # float32 logits
    no_teacher = cost_table.stage_row(_quickstart_stage("student_ce"), mesh)
    assert no_teacher["cached"] is None and no_teacher["teacher"] is None
    # the cached KD step costs what the CE student costs, plus the KD loss's few element-wise ops
    np.testing.assert_allclose(row["cached"], no_teacher["flops"], rtol=0.02)
