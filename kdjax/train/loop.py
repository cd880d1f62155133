"""Orchestration of a recipe: validate every stage, then run them in order under one SIGTERM handler.

`run(config, workdir)` is what `experiments.main` calls:
- every stage is validated first (`validate`), so no config error surfaces after an earlier stage has trained;
- a stage whose `results.json` says it finished (under the same trajectory-defining config) is reported, not re-run;
- SIGTERM at any point (start-up, compilation, a step, an evaluation, between stages) is honoured at the next safe
  point: the running stage checkpoints what it has not saved, and `run` returns with status 'preempted';
- each launch appends a record (time, code commit and dirty flag, devices, argv) to `<workdir>/launches.jsonl` and
  writes the resolved config to `<workdir>/config.json`.
"""
import json
import os
import time

import jax

from kdjax import parallel, provenance
from kdjax.train import preemption, recipe
from kdjax.train.stage import NonFiniteError, Stage, check_identity, identity, write_json  # noqa: F401


def stage_dir(workdir: str, stage: str) -> str:
    return os.path.join(workdir, stage)


def validate(config, stages: list[str] | None = None, *, mesh=None) -> list[recipe.StageSpec]:
    """Resolves and abstractly builds the given stages (default: all): keys of every block, data sources and
    views, batch sizes, models and loss terms (`jax.eval_shape`), parameter groups, teacher sources."""
    mesh = mesh or parallel.make_mesh()
    specs = [recipe.resolve_stage(config, s) for s in (stages or recipe.stage_order(config))]
    for stage_spec in specs:
        try:
            Stage(config, stage_spec, None, mesh=mesh).abstract()
        except FileNotFoundError as e:
            raise recipe.ConfigError(str(e)) from e
    return specs


def finished_results(config, stage_spec: recipe.StageSpec, workdir: str) -> dict | None:
    """The stage's results if it finished under this config's trajectory; None if it has not finished."""
    path = os.path.join(stage_dir(workdir, stage_spec.name), "results.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        results = json.load(f)
    stage = Stage(config, stage_spec, workdir)
    stage.build()
    extend = check_identity(stage_spec.name, path, results.get("identity", {}), stage.identity,
                            allow_extend=bool(config.get("allow_extend")))
    return None if extend else results


def record_launch(config, workdir: str, stages: list[str], argv=None) -> None:
    if jax.process_index() != 0:
        return
    os.makedirs(workdir, exist_ok=True)
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **provenance.code_version(), "stages": stages,
              "jax_version": jax.__version__, "devices": [str(d) for d in jax.devices()],
              "process_count": jax.process_count(), "argv": list(argv or [])}
    with open(os.path.join(workdir, "launches.jsonl"), "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    write_json(os.path.join(workdir, "config.json"), dict(record, config=config.to_dict()))


def run_stage(config, stage: str, workdir: str, *, mesh=None, on_event=None) -> dict:
    """Trains one stage to completion (or until SIGTERM); returns its results record ('status': 'done' or
    'preempted'). `on_event(event, **info)` is called at 'start', 'compiled', 'step' and 'eval' (tests use it)."""
    with preemption.handler():
        stage_spec = recipe.resolve_stage(config, stage)
        return Stage(config, stage_spec, workdir, mesh=mesh, on_event=on_event).run()


def run(config, workdir: str, stages: list[str] | None = None, *, mesh=None, on_event=None, argv=None,
        validated: bool = False) -> list[dict]:
    """Validates, then runs `stages` (default: all, in stage order). Returns their results; stops after a
    preempted stage (its record says 'preempted')."""
    on_event = on_event or (lambda event, **info: None)
    with preemption.handler():
        stages = stages or recipe.stage_order(config)
        specs = [recipe.resolve_stage(config, s) for s in stages] if validated else validate(config, stages, mesh=mesh)
        record_launch(config, workdir, stages, argv)
        results = []
        for stage_spec in specs:
            if preemption.should_stop():
                results.append({"stage": stage_spec.name, "status": "preempted", "step": None})
                break
            done = finished_results(config, stage_spec, workdir)
            if done is not None:
                if jax.process_index() == 0:
                    print(f"[{stage_spec.name}] finished earlier (step {done['step']}); reporting its results", flush=True)
                results.append(done)
                continue
            result = Stage(config, stage_spec, workdir, mesh=mesh, on_event=on_event).run()
            results.append(result)
            on_event("stage_done", stage=stage_spec.name)
            if result["status"] == "preempted":
                break
        return results
