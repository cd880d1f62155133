"""The sweep's grid (parsing, argument vs field, validation errors) and its tables (against a hand computation);
no training here."""
import json

import numpy as np
import pytest

from kdjax.errors import ConfigError
from kdjax.sweep import aggregate, grid

QUICKSTART = "configs/quickstart.py:runlocal"


def test_axes_parse_and_cells_are_the_product_times_seeds_seed_major():
    a, b = grid.parse_axis("method=kd,dkd"), grid.parse_axis("stages.s.losses.kd.temperature=2.0,4.0")
    assert a == grid.Axis("method", ("kd", "dkd")) and b.short == "temperature"
    sweep = grid.Sweep("c.py", (a, b), (0, 1))
    cells = sweep.cells()
    assert len(cells) == 8 and [c.seed for c in cells] == [0] * 4 + [1] * 4
    assert cells[1].name == "method-kd_temperature-4.0_seed-0" and cells[1].point_name == "method-kd_temperature-4.0"
    assert grid.Cell((("x.teacher", "/w/a b:c"),), 2).name == "teacher-+w+a+b+c_seed-2"  # a folder-safe name


@pytest.mark.parametrize("text, message", [
    ("temperature", "write KEY=V1,V2"), ("=1,2", "write KEY=V1,V2"), ("t=1,,2", "write KEY=V1,V2"),
    ("t=1,1", "a value appears twice"),
])
def test_bad_axes_are_refused(text, message):
    with pytest.raises(ConfigError, match=message):
        grid.parse_axis(text)


def test_axes_resolve_to_config_arguments_or_fields():
    axes = grid.resolve_axes(QUICKSTART, [grid.parse_axis("stages.student_kd.losses.kd.temperature=2.0,4.0")])
    assert not axes[0].is_argument
    baselines = "configs/baselines/fashion_mnist.py"
    axes = grid.resolve_axes(baselines, [grid.parse_axis("method=kd,dkd")])
    assert axes[0].is_argument
    sweep = grid.Sweep(baselines, axes, (3,), fixed=grid.resolve_axes(baselines, [grid.parse_axis("batch_size=32")]))
    arguments, overrides = sweep.arguments_and_overrides(sweep.cells()[1])
    assert arguments == "method=dkd,seed=3" and overrides == [("batch_size", "32")]
    config = sweep.config_of(sweep.cells()[1])
    assert config.seed == 3 and config.batch_size == 32 and "dkd" in config.stages.student.losses


@pytest.mark.parametrize("axis, message", [
    ("stages.student_kd.losses.kd.temprature=2.0", r"stages.student_kd.losses.kd has no key 'temprature'; "
                                                   r"valid keys: \['temperature', 'weight'\]"),
    ("stages.pupil.num_steps=2", r"stages has no key 'pupil'; valid keys: \['student_ce', 'student_kd', 'teacher'\]"),
    ("batch_size=16,sixteen", r"batch_size=sixteen"),
    ("seed=0,1", "give the seeds with --seeds"),
])
def test_unknown_keys_and_bad_values_fail_naming_them(axis, message):
    with pytest.raises(ConfigError, match=message):
        grid.resolve_axes(QUICKSTART, [grid.parse_axis(axis)])


def test_a_bad_config_argument_value_fails_with_the_configs_own_message():
    with pytest.raises(ConfigError, match="Unknown method 'kdd'; valid methods"):
        grid.resolve_axes("configs/baselines/fashion_mnist.py", [grid.parse_axis("method=kd,kdd")])


def test_a_grid_list_is_the_union_of_its_products():
    """configs/baselines/offline_study_logit.py: KD, DKD, MLLD, CTKD x logit_stand, and DIST only without it."""
    specification = grid.load_specification("configs/baselines/offline_study_logit.py")
    sweep = grid.build(specification, seeds="0")
    points = [dict(c.point) for c in sweep.cells()]
    expected = [{"method": m, "logit_stand": ls} for m in ("kd", "dkd", "mlld", "ctkd") for ls in ("False", "True")]
    assert points == expected + [{"method": "dist", "logit_stand": "False"}]
    assert [a.values for a in sweep.axes] == [("kd", "dkd", "mlld", "ctkd", "dist"), ("False", "True")]
    assert sweep.baseline == (("method", "kd"), ("logit_stand", "False"))
    crossed = grid.build(specification, seeds="0", axes=["batch_size=32,64"])  # a --grid crosses every grid
    assert len(crossed.cells()) == 18
    with pytest.raises(ConfigError, match=r"different keys: \['method'\] and \['seed_offset'\]"):
        grid.build({"config": QUICKSTART, "grid": [{"method": "kd"}, {"seed_offset": "1"}]})


def _result(accuracy, best, commit="abc", wall=60.0):
    return {"headline": "eval/accuracy", "final": {"eval/accuracy": accuracy, "eval/loss": 1.0 - accuracy},
            "best": {"eval/accuracy": {"value": best, "step": 3}}, "wall_time": wall,
            "code": {"commit": commit, "dirty": False}}


def test_table_means_stds_and_paired_differences_against_a_hand_computation(tmp_path):
    axis = grid.Axis("method", ("kd", "ce"), True)
    sweep = grid.Sweep("c.py", (axis,), (0, 1, 2), baseline=(("method", "ce"),))
    accuracies = {("kd", 0): 0.80, ("kd", 1): 0.70, ("kd", 2): 0.75, ("ce", 0): 0.70, ("ce", 1): 0.66,
                  ("ce", 2): 0.71}
    results_of = lambda cell: {"student": _result(accuracies[(cell.point[0][1], cell.seed)],  # noqa: E731
                                                  accuracies[(cell.point[0][1], cell.seed)] + 0.01)}
    summary = aggregate.write(str(tmp_path), sweep, results_of, "python -m experiments.sweep ...")
    kd = next(r for r in summary["rows"] if r["point"] == {"method": "kd"})
    assert kd["last"]["eval/accuracy"] == [0.80, 0.70, 0.75] and kd["seeds"] == [0, 1, 2]
    np.testing.assert_allclose(kd["paired_delta"]["values"], [0.10, 0.04, 0.04], atol=1e-12)
    assert kd["wall_time_s"] == 180.0 and kd["commits"] == ["abc"]
    table = (tmp_path / "table.md").read_text()
    kd_row = next(line for line in table.splitlines() if line.startswith("| kd |"))
    # 100 x mean and sample std of (0.80, 0.70, 0.75): 75.00 ± 5.00; best + 1 point: 76.00 ± 5.00
    # paired: 100 x (0.10, 0.04, 0.04) -> mean 6.00, std (ddof 1) 3.46
    assert "| 75.00 ± 5.00 | 76.00 ± 5.00 | 3 | +6.00 ± 3.46 | 3.0 | abc |" in kd_row
    ce_row = next(line for line in table.splitlines() if line.startswith("| ce |"))
    assert "| 69.00 ± 2.65 |" in ce_row and ce_row.count("|  |") == 1  # no difference to itself
    assert json.loads((tmp_path / "summary.json").read_text())["rows"][0]["point"] == {"method": "kd"}
    assert (tmp_path / "method.png").stat().st_size > 10_000


def test_missing_seeds_are_marked_and_a_shared_run_has_no_difference_to_itself(tmp_path):
    axis = grid.Axis("t", ("1", "2"))
    sweep = grid.Sweep("c.py", (axis,), (0, 1), baseline=(("t", "1"),))
    shared = {0: _result(0.5, 0.5), 1: _result(0.6, 0.6)}  # one teacher run behind both grid points

    def results_of(cell):
        out = {"teacher": shared[cell.seed]}
        if not (cell.point == (("t", "2"),) and cell.seed == 1):
            out["student"] = _result(0.4 + 0.1 * cell.seed, 0.5)
        return out
    summary = aggregate.summarise(sweep, aggregate.rows(sweep, results_of))
    table = aggregate.markdown(summary, ["t"])
    assert "(n=1)" in next(line for line in table.splitlines() if line.startswith("| 2 | student |"))
    teacher_row = next(r for r in summary["rows"] if r["point"] == {"t": "2"} and r["stage"] == "teacher")
    assert "paired_delta" not in teacher_row
