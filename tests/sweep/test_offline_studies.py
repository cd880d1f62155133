"""The five offline studies are sweep specifications (configs/<paper>/offline_study.py) run by experiments.sweep.
Every specification builds a valid sweep; and on the cell results the earlier study scripts stored (each paper's
offline_summary.json), the runner's tables hold the numbers of the papers' READMEs."""
import glob
import json
import os
import re

import pytest

from kdjax.sweep import aggregate, grid
from tests import helpers

SPECIFICATIONS = {
    "configs/icd/offline_study.py": [""],
    "configs/s2sd/offline_study.py": ["", "ablation=attached", "ablation=gamma"],
    "configs/jacobian_matching/offline_study.py": ["table=1", "table=2"],
    "configs/baselines/offline_study.py": [""],
    "configs/ml_3d/offline_study.py": [""],
}


def test_every_offline_study_is_a_specification_listed_here():
    found = sorted(os.path.relpath(p, helpers.REPO)
                   for p in glob.glob(os.path.join(helpers.REPO, "configs", "*", "offline_study.py")))
    assert found == sorted(SPECIFICATIONS)
    assert not glob.glob(os.path.join(helpers.REPO, "experiments", "*_offline.py"))  # the scripts are gone


@pytest.mark.parametrize("path, args", [(p, a) for p, arguments in SPECIFICATIONS.items() for a in arguments])
def test_every_specification_builds_a_sweep_whose_cells_configure(path, args):
    spec = grid.load_specification(f"{path}:{args}" if args else path)
    sweep = grid.build(spec)
    cells = sweep.cells()
    assert len(cells) == len(sweep.seeds) * len(list(__import__("itertools").product(*[a.values
                                                                                      for a in sweep.axes])))
    sweep.config_of(cells[-1])  # the last cell's config builds (its arguments and overrides apply)
    assert sweep.baseline and all(k in {a.key for a in sweep.axes} for k, _ in sweep.baseline)
    doc = open(os.path.join(helpers.REPO, path)).read()
    assert f"python -m experiments.sweep --sweep={path}" in doc and re.search(r"Runtime[^.]*\d", doc)


def _result(final, train_mean=None):
    return {"headline": next(iter(final)), "final": final, "best": {}, "train_mean": train_mean or {},
            "wall_time": 1.0, "code": {"commit": "stored", "dirty": False}}


def _table(sweep, results_of, metrics=()) -> str:
    summary = aggregate.summarise(sweep, aggregate.rows(sweep, results_of), metrics)
    return aggregate.markdown(summary, [a.short for a in sweep.axes], metrics)


def _row(table, *prefix):
    start = "| " + " | ".join(prefix) + " |"
    return next(line for line in table.splitlines() if line.startswith(start))


def _readme_rows(path, first_cell, after="## Offline"):
    """The cells of the README rows that start with `first_cell`, below the heading `after`."""
    text = open(os.path.join(helpers.REPO, path)).read()
    text = text[text.index(after):]
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines()
            if line.startswith(f"| {first_cell} |")]


def _stored(path):
    return json.load(open(os.path.join(helpers.REPO, path)))


def test_the_icd_table_from_stored_cells_equals_the_readme():
    sweep = grid.build(grid.load_specification("configs/icd/offline_study.py"))
    stored = _stored("configs/icd/offline_summary.json")
    metrics = grid.load_specification("configs/icd/offline_study.py")["metrics"]

    def results_of(cell):
        c = stored.get(f"{cell.point[0][1]}/{cell.seed}")
        if c is None:
            return {}
        teacher = _result({"eval/accuracy": c["teacher"], "soft_labels/intra_class_distance":
                           c["intra_class_distance"], "soft_labels/non_target_entropy": c["non_target_entropy"]},
                          {"icd/fired_per_example": c["fired"]} if c["fired"] else {})
        return {"teacher": teacher, "student_kd": _result({"eval/accuracy": c["student_kd"]}),
                "student_kd_rkd": _result({"eval/accuracy": c["student_kd_rkd"]})}
    table = _table(sweep, results_of, tuple(metrics))
    checked = 0
    for lam, teacher, fired, distance, entropy, kd, kd_rkd in (r for r in _readme_rows("configs/icd/README.md", "0")
                                                               + [r for v in ("0.01", "0.02", "0.03", "0.3")
                                                                  for r in _readme_rows("configs/icd/README.md", v)]):
        row = _row(table, lam, "teacher").split(" | ")
        assert row[3] == teacher and row[5] == distance and row[6] == entropy, (lam, row)
        assert row[7] == (fired if lam != "0" else "n/a")  # the CE teacher has no ICD term to fire
        assert _row(table, lam, "student_kd").split(" | ")[3] == kd
        assert _row(table, lam, "student_kd_rkd").split(" | ")[3] == kd_rkd
        checked += 1
    assert checked == 5


@pytest.mark.parametrize("ablation", ["", "ablation=attached"])
def test_the_s2sd_table_from_stored_cells_equals_the_readme(ablation):
    spec = grid.load_specification("configs/s2sd/offline_study.py" + (f":{ablation}" if ablation else ""))
    sweep = grid.build(spec)
    stored = _stored("configs/s2sd/offline_summary.json")

    def results_of(cell):
        point = dict(cell.point)
        c = stored.get(f"{point['loss']}/{point['variant']}/{cell.seed}")
        return {} if c is None else {"model": _result({k: c[k] for k in ("eval/recall@1", "eval/map_at_r",
                                                                         "eval/nmi")})}
    table = _table(sweep, results_of, tuple(spec["metrics"]))
    checked = 0
    for loss in ("multisimilarity", "margin"):
        for readme in _readme_rows("configs/s2sd/README.md", loss):
            variant, r1, map_r, nmi = readme[1:5]
            if variant not in sweep.axes[1].values:
                continue
            row = _row(table, loss, variant, "model").split(" | ")
            assert (row[4], row[6], row[7]) == (r1, map_r, nmi), (loss, variant, row)
            checked += 1
    assert checked == (8 if not ablation else 4)


ROWS = {"CE": "ce", "CE + match act.": "ce_act", "CE + match Jac.": "ce_jac", "CE + act. + Jac.": "ce_act_jac",
        "match act.": "act", "act. + Jac.": "act_jac"}


def test_the_jacobian_tables_from_stored_cells_equal_the_readme():
    stored = _stored("configs/jacobian_matching/offline_summary.json")
    readme = "configs/jacobian_matching/README.md"
    sweep = grid.build(grid.load_specification("configs/jacobian_matching/offline_study.py:table=1"))

    def table1(cell):
        point = dict(cell.point)
        values = stored["table1"].get(f"{point['method']}/{point['per_class']}", [])
        return {"student": _result({"eval/accuracy": values[cell.seed]})} if cell.seed < len(values) else {}
    table = _table(sweep, table1)
    for label, method in ROWS.items():
        readme_row = _readme_rows(readme, label)[0]
        for per_class, expected in zip(("1", "5", "10", "50"), readme_row[1:]):
            assert _row(table, method, per_class, "student").split(" | ")[4] == expected, (method, per_class)
    spec = grid.load_specification("configs/jacobian_matching/offline_study.py:table=2")
    sweep = grid.build(spec)
    keys = ("eval/accuracy",) + tuple(spec["metrics"])

    def table2(cell):
        runs = stored["table2"][dict(cell.point)["lam"]]
        return {"model": _result(dict(zip(keys, runs[cell.seed])))} if cell.seed < len(runs) else {}
    table = _table(sweep, table2, tuple(spec["metrics"]))
    for lam in ("0", "0.1", "1", "10"):
        readme_row = _readme_rows(readme, lam)[0]
        row = _row(table, lam, "model").split(" | ")
        assert [row[3]] + row[5:9] == readme_row[1:6], (lam, row, readme_row)


def test_the_logit_methods_table_equals_its_stored_summary():
    """configs/baselines/README.md's logit-method rows: mean ± std, the seeds and the KD-paired difference,
    recomputed from the stored summary.json (the sweep's own output) with the sweep's formatting."""
    import numpy as np
    spec = grid.load_specification("configs/baselines/offline_study_logit.py")
    sweep = grid.build(spec)
    stored = _stored("configs/baselines/offline_logit_summary.json")
    assert stored["baseline"] == {"method": "kd", "logit_stand": "False"} and stored["seeds"] == list(sweep.seeds)
    assert sorted((r["point"]["method"], r["point"]["logit_stand"]) for r in stored["rows"]) == sorted(
        (dict(c.point)["method"], str(dict(c.point)["logit_stand"])) for c in sweep.cells() if c.seed == 0)
    readme = {(r[0], r[1]): r[2:] for m in ("kd", "dkd", "mlld", "ctkd", "dist")
              for r in _readme_rows("configs/baselines/README.md", m, after="### Today's logit")}
    kd = next(r for r in stored["rows"] if r["point"] == stored["baseline"])["last"]["eval/accuracy"]
    for row in stored["rows"]:
        values = row["last"]["eval/accuracy"]
        mean_std, per_seed, delta = readme[(row["point"]["method"], row["point"]["logit_stand"])]
        assert mean_std == aggregate.mean_std(values, 3)
        assert per_seed == " / ".join(f"{100 * v:.2f}" for v in values)
        paired = np.subtract(values, kd)
        if row["point"] == stored["baseline"]:
            assert delta == ""
        else:
            assert delta == ("+" if paired.mean() >= 0 else "") + aggregate.mean_std(list(paired), None)
            assert row["paired_delta"]["values"] == pytest.approx(list(paired), abs=1e-9)
    assert len(readme) == len(stored["rows"]) == 9


def test_the_s2sd_gamma_table_equals_its_stored_summary():
    """configs/s2sd/README.md's gamma rows, recomputed from the stored summary.json with the sweep's formatting:
    the base embedding's R@1, MAP@R and NMI, the branch's and the pooled feature's R@1, the paired R@1 difference."""
    import numpy as np
    spec = grid.load_specification("configs/s2sd/offline_study.py:ablation=gamma")
    stored = _stored("configs/s2sd/offline_gamma_summary.json")
    assert stored["baseline"] == {"gamma": "0.0"} and tuple(stored["seeds"]) == tuple(spec["seeds"])
    readme = {r[0]: r[1:] for g in ("0", "1", "5", "20", "50")
              for r in _readme_rows("configs/s2sd/README.md", g, after="### The distillation weight gamma")}
    columns = ("eval/recall@1", "eval/map_at_r", "eval/nmi", "eval/s2sd/target_0/recall@1",
               "eval/s2sd/pooled/recall@1")
    base = next(r for r in stored["rows"] if r["point"] == stored["baseline"])["last"]["eval/recall@1"]
    for row in stored["rows"]:
        cells = readme[f"{float(row['point']['gamma']):g}"]
        assert cells[:5] == [aggregate.mean_std(row["last"][c], 3) for c in columns]
        paired = list(np.subtract(row["last"]["eval/recall@1"], base))
        assert cells[5] == ("" if row["point"] == stored["baseline"]
                            else ("+" if np.mean(paired) >= 0 else "") + aggregate.mean_std(paired, None))
    assert len(readme) == len(stored["rows"]) == len(spec["grid"]["gamma"])


def test_the_s2sd_margin_row_at_gamma_1_equals_its_stored_summary():
    """The margin row below the gamma table: the stored sweep's metrics, and its R@1 minus margin alone's (the
    first S2SD table's stored cells) on the same seed."""
    import numpy as np
    stored = _stored("configs/s2sd/offline_gamma_margin_summary.json")
    (row,) = stored["rows"]
    assert row["point"] == {"gamma": "1.0"} and row["seeds"] == [0, 1, 2]
    alone = _stored("configs/s2sd/offline_summary.json")
    base = [alone[f"margin/base/{s}"]["eval/recall@1"] for s in row["seeds"]]
    (cells,) = _readme_rows("configs/s2sd/README.md", "DSD, gamma 1", after="Margin at the best gamma")
    columns = ("eval/recall@1", "eval/map_at_r", "eval/nmi", "eval/s2sd/target_0/recall@1",
               "eval/s2sd/pooled/recall@1")
    assert cells[1:6] == [aggregate.mean_std(row["last"][c], 3) for c in columns]
    paired = np.subtract(row["last"]["eval/recall@1"], base)
    assert cells[6] == ("+" if paired.mean() >= 0 else "") + aggregate.mean_std(list(paired), None)


def test_the_jacobian_first_maximum_rows_equal_their_stored_summary():
    """configs/jacobian_matching/README.md's Table 1 rerun with the first-maximum max-pool: each row's accuracy
    (mean ± std over seeds) and its seed-paired difference to CE, from the stored summary.json."""
    import numpy as np
    stored = _stored("configs/jacobian_matching/offline_table1_first_max_summary.json")
    assert stored["baseline"] == {"method": "ce"} and stored["seeds"] == [0, 1, 2]
    cells = {(r["point"]["method"], r["point"]["per_class"]): r["last"]["eval/accuracy"] for r in stored["rows"]}
    after = "### Table 1's Jacobian rows with the first-maximum max-pool"
    labels = {"CE": "ce", "CE + match Jac.": "ce_jac", "CE + act. + Jac.": "ce_act_jac", "act. + Jac.": "act_jac"}
    for label, method in labels.items():
        found = _readme_rows("configs/jacobian_matching/README.md", label, after=after)
        accuracy = found[0][1:]
        assert accuracy == [aggregate.mean_std(cells[(method, n)], 3) for n in ("1", "5", "10", "50")], label
        if method != "ce":
            paired = [np.subtract(cells[(method, n)], cells[("ce", n)]) for n in ("1", "5", "10", "50")]
            assert found[1][1:] == [("+" if p.mean() >= 0 else "") + aggregate.mean_std(list(p)) for p in paired]
    assert len(cells) == 16


def test_the_3d_open_choices_table_equals_its_stored_summary():
    """configs/ml_3d/README.md's open-choices rows: mAP / OF1 / CF1 (mean ± std over the seeds) and mAP minus the
    student alone of the same seed, from the stored summary.json; every variant named is a variant of the config."""
    import numpy as np
    from configs.ml_3d import fashion_mnist_mosaic
    stored = _stored("configs/ml_3d/offline_open_choices_summary.json")
    assert stored["baseline"] == {"variant": "student"} and stored["seeds"] == [0, 1, 2]
    students = {r["point"]["variant"]: r for r in stored["rows"] if r["stage"] == "student"}
    after = "| open choice / control |"
    base = dict(zip(students["student"]["seeds"], students["student"]["last"]["eval/mAP"]))
    for variant, row in students.items():
        assert variant in fashion_mnist_mosaic.VARIANTS and row["seeds"] == [0, 1, 2], variant
        (cells,) = _readme_rows("configs/ml_3d/README.md", variant, after=after)
        assert cells[1:4] == [aggregate.mean_std(row["last"][k], 3) for k in ("eval/mAP", "eval/OF1", "eval/CF1")]
        paired = np.subtract(row["last"]["eval/mAP"], [base[s] for s in row["seeds"]])
        assert cells[4] == ("" if variant == "student"
                            else ("+" if paired.mean() >= 0 else "") + aggregate.mean_std(list(paired)))
    assert len(students) == 8
