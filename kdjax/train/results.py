"""The files a stage leaves in `<workdir>/<stage>/`, and the record of a finished stage.

`results.json` is written when a stage finishes: its status and step, the last and best value of every evaluation
metric (and `final_<metric>` / `best_<metric>` shortcuts), the headline metric, the mean over the run of every
training scalar (`train_mean`), wall time, the code version and the stage's identity (what a relaunch must match
to report it instead of training it again). Reporting a finished stage reads this file and builds nothing.
"""
import json
import os

import jax

from kdjax import provenance


def stage_dir(workdir: str, stage: str) -> str:
    return os.path.join(workdir, stage)


def write_json(path: str, obj) -> None:
    """Atomic (write then rename), process 0 only."""
    if jax.process_index() == 0:
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, default=str)
        os.replace(tmp, path)


def read_json(path: str):
    """The JSON object in `path`, or None when there is none."""
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read(workdir: str, stage: str) -> dict | None:
    """The results of a finished stage, or None."""
    return read_json(os.path.join(stage_dir(workdir, stage), "results.json"))


def train_means(stage_directory: str) -> dict:
    """The mean over the run of every logged training scalar (loss terms, term statistics such as ICD's fired
    anchors), from metrics.jsonl; a step logged twice (a resumed run logs again the steps after its last checkpoint)
    counts once, as its last record."""
    path = os.path.join(stage_directory, "metrics.jsonl")
    if not os.path.exists(path):
        return {}
    by_step = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if "loss/total" in record:
                by_step[record["step"]] = record
    keys = sorted({k for r in by_step.values() for k in r} - {"step", "time"})
    return {k: sum(r[k] for r in by_step.values() if k in r) / sum(k in r for r in by_step.values()) for k in keys}


def record(stage_spec, meta: dict, *, status: str, step: int, total_steps: int, wall_time: float,
           identity: dict, train_mean: dict | None = None) -> dict:
    """The results record of a stage from its checkpoint metadata (best and last evaluations) and the means of its
    training scalars."""
    result = {"stage": stage_spec.name, "status": status, "step": step, "total_steps": total_steps,
              "model": stage_spec.model["name"], "headline": stage_spec.best_metric,
              "best_step": meta["best"].get(stage_spec.best_metric, {}).get("step", 0),
              "final": {k: v for k, v in meta["last_eval"].items() if k != "step"},
              "best": meta["best"], "train_mean": train_mean or {}, "wall_time": wall_time,
              "code": provenance.code_version(), "identity": identity}
    for k, v in result["final"].items():
        result[f"final_{k.removeprefix('eval/')}"] = v
    for k, v in meta["best"].items():
        result[f"best_{k.removeprefix('eval/')}"] = v["value"]
    return result


def preempted(stage: str, step: int | None) -> dict:
    return {"stage": stage, "status": "preempted", "step": step}
