"""A sweep's results as a researcher reads them: `table.md`, `summary.json` and one plot per grid axis.

Per grid point and stage: the stage's headline metric (and any `metrics` asked for) as mean ± std (ddof 1) over the
seeds that finished, last and best, with n, the code commits and the wall time; optionally the difference to a
baseline grid point on the same seed (paired: seed-to-seed spread that both share cancels), as mean ± std. Rates
(accuracies, mAP, recall, F1, NMI) are shown x100; other values (losses, distances) as they are; a metric is
an evaluation metric of the stage's results or the run's mean of a training scalar (`train_mean`).
"""
import dataclasses
import json
import os

import numpy as np

from kdjax.sweep.grid import Cell, Sweep


@dataclasses.dataclass(frozen=True)
class Row:
    point: tuple[tuple[str, str], ...]
    stage: str
    headline: str
    runs: dict            # seed -> that stage's results.json


RATES = ("accuracy", "top5", "recall", "map", "mAP", "F1", "nmi", "OP", "OR", "CP", "CR")


def scale(metric: str) -> float:
    """x100 for rates (accuracy, recall, mAP, F1, NMI, ...); other values (losses, distances) as they are."""
    name = metric.rsplit("/", 1)[-1]
    return 100.0 if any(name.startswith(r) or r in name for r in RATES) and "loss" not in name else 1.0


def mean_std(values, expected_n: int | None = None, factor: float = 100.0) -> str:
    """'mean ± std' (ddof 1) of `values` x factor; one value alone; '(n=k)' when fewer than expected."""
    v = factor * np.asarray(values, float)
    text = f"{v.mean():.2f} ± {v.std(ddof=1):.2f}" if len(v) > 1 else f"{v[0]:.2f}"
    return text if expected_n in (None, len(v)) else f"{text} (n={len(v)})"


def rows(sweep: Sweep, results_of) -> list[Row]:
    """`results_of(cell) -> {stage: results}` for the finished stages of a cell."""
    grouped = {}
    for cell in sweep.cells():
        for stage, result in results_of(cell).items():
            if sweep.stages and stage not in sweep.stages:
                continue
            key = (cell.point, stage)
            grouped.setdefault(key, (result.get("headline"), {}))[1][cell.seed] = result
    return [Row(point, stage, headline, runs) for (point, stage), (headline, runs) in grouped.items()]


def _baseline_point(sweep: Sweep, point):
    replaced = dict(point)
    replaced.update(dict(sweep.baseline))
    return tuple((k, replaced[k]) for k, _ in point)


def paired(sweep: Sweep, row: Row, by_key: dict) -> list[float] | None:
    """Per seed, the row's headline minus the baseline point's (same stage), where both finished."""
    base_point = _baseline_point(sweep, row.point) if sweep.baseline else None
    base = by_key.get((base_point, row.stage))
    if base is None or base_point == row.point or all(row.runs[s] == base.runs.get(s) for s in row.runs):
        return None  # no baseline, or the same runs (a teacher both grid points share)
    return [row.runs[s]["final"][row.headline] - base.runs[s]["final"][row.headline]
            for s in sorted(row.runs) if s in base.runs and row.headline in base.runs[s]["final"]]


def summarise(sweep: Sweep, all_rows: list[Row], metrics=()) -> dict:
    by_key = {(r.point, r.stage): r for r in all_rows}
    out = []
    for row in all_rows:
        names = [row.headline] + [m for m in metrics if m != row.headline]
        entry = {"point": dict(row.point), "stage": row.stage, "headline": row.headline, "seeds": sorted(row.runs),
                 "last": {}, "best": {}, "wall_time_s": sum(r.get("wall_time", 0.0) for r in row.runs.values()),
                 "commits": sorted({r.get("code", {}).get("commit", "?")[:10]
                                    + ("-dirty" if r.get("code", {}).get("dirty") else "") for r in row.runs.values()})}
        for name in names:
            entry["last"][name] = [value(row.runs[s], name) for s in entry["seeds"] if value(row.runs[s], name)
                                   is not None]
            entry["best"][name] = [row.runs[s]["best"][name]["value"] for s in entry["seeds"]
                                   if name in row.runs[s].get("best", {})]
        delta = paired(sweep, row, by_key)
        if delta:
            entry["paired_delta"] = {"metric": row.headline, "baseline": dict(sweep.baseline), "values": delta}
        out.append(entry)
    return {"config": sweep.config, "seeds": list(sweep.seeds), "axes": [a.key for a in sweep.axes],
            "baseline": dict(sweep.baseline), "rows": out}


def value(result: dict, metric: str):
    """A metric's final value in a stage's results: an evaluation metric ('eval/accuracy') or the run's mean of a
    training scalar ('icd/fired_per_example', 'loss/kd')."""
    final = result.get("final", {})
    return final[metric] if metric in final else result.get("train_mean", {}).get(metric)


def _cell(values, n, factor) -> str:
    return mean_std(values, n, factor) if values else "n/a"


def markdown(summary: dict, axes_short: list[str], metrics=()) -> str:
    n = len(summary["seeds"])
    extra = [m for m in metrics]
    head = (axes_short + ["stage", "headline", "last (mean ± std)", "best (mean ± std)"] + extra + ["n"]
            + (["vs baseline, same seed"] if summary["baseline"] else []) + ["wall (min)", "commits"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in summary["rows"]:
        h = e["headline"]
        cells = [str(e["point"][k]) for k in summary["axes"]] + [e["stage"], h, _cell(e["last"][h], n, scale(h)),
                                                                  _cell(e["best"][h], n, scale(h))]
        cells += [_cell(e["last"].get(m, []), n, scale(m)) for m in extra]
        cells.append(str(len(e["seeds"])))
        if summary["baseline"]:
            d = e.get("paired_delta")
            cells.append(("+" if np.mean(d["values"]) >= 0 else "") + mean_std(d["values"], None, scale(h))
                         if d else "")
        cells += [f"{e['wall_time_s'] / 60:.1f}", ", ".join(e["commits"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(f"\nMean ± std (ddof 1) over seeds {summary['seeds']}; rates x100; `last` is the final evaluation, "
                 "`best` the best one during training.")
    return "\n".join(lines) + "\n"


def plot(summary: dict, axis_key: str, path: str) -> None:
    """The headline metric against one grid axis: one line per stage and combination of the other axes, seed
    standard deviation as error bars, the individual seeds as dots."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    values = list(dict.fromkeys(e["point"][axis_key] for e in summary["rows"]))
    try:
        xs = {v: float(v) for v in values}
    except ValueError:
        xs = {v: float(i) for i, v in enumerate(values)}
    lines = {}
    for e in summary["rows"]:
        others = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in e["point"].items() if k != axis_key)
        lines.setdefault((e["stage"], others, e["headline"]), []).append(e)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for (stage, others, headline), entries in sorted(lines.items()):
        entries = sorted(entries, key=lambda e: xs[e["point"][axis_key]])
        x = [xs[e["point"][axis_key]] for e in entries]
        ys = [scale(headline) * np.asarray(e["last"][headline]) for e in entries]
        label = f"{stage} {headline}" + (f" ({others})" if others else "")
        ax.errorbar(x, [y.mean() for y in ys], yerr=[y.std(ddof=1) if len(y) > 1 else 0 for y in ys], marker="o",
                    capsize=4, label=label)
        for xi, y in zip(x, ys):
            ax.scatter([xi] * len(y), y, s=10, color="0.6", zorder=3)
    ax.set(xlabel=axis_key.rsplit(".", 1)[-1], ylabel="last evaluation (x100 for rates)")
    if not all(_is_number(v) for v in values):
        ax.set_xticks(list(xs.values()))
        ax.set_xticklabels(values, rotation=30, ha="right")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def write(workdir: str, sweep: Sweep, results_of, command: str, metrics=()) -> dict:
    """Writes table.md, summary.json and one `<axis>.png` per grid axis; returns the summary."""
    summary = summarise(sweep, rows(sweep, results_of), metrics)
    summary["command"] = command
    table = f"`{command}`\n\n" + markdown(summary, [a.short for a in sweep.axes], metrics)
    with open(os.path.join(workdir, "table.md"), "w", encoding="utf-8") as f:
        f.write(table)
    with open(os.path.join(workdir, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    if summary["rows"]:
        for axis in sweep.axes:
            plot(summary, axis.key, os.path.join(workdir, f"{axis.short}.png"))
    return summary


def cell_results(workdir: str, stages_of) -> callable:
    """`results_of(cell)` reading `<workdir>/<cell>/<stage>/results.json` for the stages `stages_of(cell)` lists."""
    def results_of(cell: Cell) -> dict:
        found = {}
        for stage in stages_of(cell):
            path = os.path.join(workdir, cell.name, stage, "results.json")
            if os.path.exists(path):
                with open(path, encoding="utf-8") as f:
                    found[stage] = json.load(f)
        return found
    return results_of
