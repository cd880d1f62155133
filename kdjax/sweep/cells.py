"""What a sweep's cells need before they run, and where each one stands.

- `validate`: every distinct cell config through the trainer's own validation (`loop.validate`), before any trains.
- Shared teachers: a stage that another stage names as its teacher (`teacher=dict(stage='teacher')`) is trained once
  for all the cells whose config gives it the same identity (the same teacher config and seed), in
  `<workdir>/shared/<stage>-<hash>/`; each such cell's `<stage>` folder is a link to it, so the cell's own run finds
  the stage finished and its students read that checkpoint.
- `status`: done (every stage's results.json, under this config), interrupted (a checkpoint, no results), failed
  (the last run exited non-zero; its log is named), or pending.
"""
import dataclasses
import hashlib
import json
import os

from kdjax.errors import ResumeError
from kdjax.train import loop, recipe, results, resume

CELL_RECORD = "sweep_cell.json"   # in a cell's folder: the command of its last run, its exit status and log
SHARED = "shared"


@dataclasses.dataclass(frozen=True)
class SharedStage:
    stage: str
    key: str                      # hash of the stage's identity

    @property
    def folder(self) -> str:      # relative to the sweep's workdir
        return os.path.join(SHARED, f"{self.stage}-{self.key}")


def validate(configs: dict) -> None:
    """`configs`: {cell name: ConfigDict}; each distinct config is validated once."""
    seen = set()
    for config in configs.values():
        text = json.dumps(config.to_dict(), sort_keys=True, default=str)
        if text not in seen:
            seen.add(text)
            loop.validate(config)


def teacher_stages(config) -> list[str]:
    """The stages another stage of `config` names as its teacher, in stage order."""
    order = recipe.stage_order(config)
    named = {config.stages[s].teacher.stage for s in order if config.stages[s].get("teacher")}
    return [s for s in order if s in named]


def shared_stages(config) -> list[SharedStage]:
    out = []
    for stage in teacher_stages(config):
        identity = json.dumps(resume.identity(recipe.resolve_stage(config, stage)), sort_keys=True)
        out.append(SharedStage(stage, hashlib.sha256(identity.encode()).hexdigest()[:12]))
    return out


def link(workdir: str, cell_dir: str, shared: SharedStage) -> None:
    """Makes `cell_dir/<stage>` a relative link to the shared stage's folder (an existing real folder is left:
    a cell trained before the sweep shared its teacher keeps its own)."""
    os.makedirs(cell_dir, exist_ok=True)
    path = os.path.join(cell_dir, shared.stage)
    target = os.path.relpath(os.path.join(workdir, shared.folder, shared.stage), cell_dir)
    if os.path.islink(path) and os.readlink(path) != target:
        os.remove(path)
    if not os.path.lexists(path):
        os.symlink(target, path)


def _checkpoint_step(stage_dir: str) -> int | None:
    directory = os.path.join(stage_dir, "checkpoints")
    steps = [int(n) for n in os.listdir(directory) if n.isdigit()] if os.path.isdir(directory) else []
    return max(steps) if steps else None


def stage_status(workdir: str, config, stage: str) -> str:
    stage_spec = recipe.resolve_stage(config, stage)
    try:
        if loop.finished_results(stage_spec, workdir) is not None:
            return "done"
    except ResumeError:
        return "changed (holds a run of another config: a relaunch refuses it)"
    step = _checkpoint_step(results.stage_dir(workdir, stage))
    return "pending" if step is None else f"interrupted at step {step}"


def read_record(cell_dir: str) -> dict:
    return results.read_json(os.path.join(cell_dir, CELL_RECORD)) or {}


def write_record(cell_dir: str, record: dict) -> None:
    os.makedirs(cell_dir, exist_ok=True)
    results.write_json(os.path.join(cell_dir, CELL_RECORD), record)


def status(cell_dir: str, config) -> tuple[str, dict]:
    """(state, {stage: state}) of one cell: 'done', 'failed', 'interrupted', 'changed' or 'pending'."""
    stages = {s: stage_status(cell_dir, config, s) for s in recipe.stage_order(config)}
    if all(v == "done" for v in stages.values()):
        return "done", stages
    if any(v.startswith("changed") for v in stages.values()):
        return "changed", stages
    if read_record(cell_dir).get("returncode", 0) != 0:
        return "failed", stages
    if any(v.startswith("interrupted") or v == "done" for v in stages.values()):
        return "interrupted", stages
    return "pending", stages
