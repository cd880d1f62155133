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
from kdjax.train import preemption, recipe, results, resume
from kdjax.train import stage as stage_lib


def validate(config, stages: list[str] | None = None, *, mesh=None) -> list[recipe.StageSpec]:
    """Resolves and abstractly builds the given stages (default: all): keys of every block, data sources and
    views, batch sizes, models and loss terms (`jax.eval_shape`), parameter groups, teacher sources."""
    mesh = mesh or parallel.make_mesh()
    specs = [recipe.resolve_stage(config, s) for s in (stages or recipe.stage_order(config))]
    for stage_spec in specs:
        stage_lib.abstract_state(stage_lib.build(stage_spec, mesh))
    return specs


def finished_results(stage_spec: recipe.StageSpec, workdir: str) -> dict | None:
    """The stage's results if it finished under this config's trajectory; None if it has not finished (or is to be
    extended). Reads the stage's results.json; builds nothing."""
    done = results.read(workdir, stage_spec.name)
    if done is None:
        return None
    where = os.path.join(results.stage_dir(workdir, stage_spec.name), "results.json")
    extend = resume.check_identity(stage_spec.name, where, done.get("identity", {}), resume.identity(stage_spec),
                                   allow_extend=stage_spec.allow_extend)
    return None if extend else done


def record_launch(config, workdir: str, stages: list[str], argv=None) -> None:
    if jax.process_index() != 0:
        return
    os.makedirs(workdir, exist_ok=True)
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **provenance.code_version(), "stages": stages,
              "jax_version": jax.__version__, "devices": [str(d) for d in jax.devices()],
              "process_count": jax.process_count(), "malloc": provenance.allocator(), "argv": list(argv or [])}
    with open(os.path.join(workdir, "launches.jsonl"), "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    results.write_json(os.path.join(workdir, "config.json"), dict(record, config=config.to_dict()))


def _ignore(event, **info):
    del event, info


def run_stage(config, stage: str, workdir: str, *, mesh=None, on_event=None) -> dict:
    """Trains one stage to completion (or until SIGTERM); returns its results record ('status': 'done' or
    'preempted'). `on_event(event, **info)` is called at 'start', 'compiled', 'step' and 'eval' (tests use it)."""
    with preemption.handler():
        stage_spec = recipe.resolve_stage(config, stage)
        return _run_one(stage_spec, workdir, mesh or parallel.make_mesh(), on_event or _ignore)


def _run_one(stage_spec, workdir, mesh, on_event) -> dict:
    def tagged(event, **info):
        on_event(event, stage=stage_spec.name, **info)
    return stage_lib.run(stage_spec, workdir, mesh=mesh, on_event=tagged)


def run(config, workdir: str, stages: list[str] | None = None, *, mesh=None, on_event=None, argv=None,
        validated: bool = False) -> list[dict]:
    """Validates, then runs `stages` (default: all, in stage order). Returns their results; stops after a
    preempted stage (its record says 'preempted')."""
    on_event, mesh = on_event or _ignore, mesh or parallel.make_mesh()
    with preemption.handler():
        stages = stages or recipe.stage_order(config)
        specs = [recipe.resolve_stage(config, s) for s in stages] if validated else validate(config, stages, mesh=mesh)
        record_launch(config, workdir, stages, argv)
        done = []
        for stage_spec in specs:
            if preemption.should_stop():
                done.append(results.preempted(stage_spec.name, None))
                break
            finished = finished_results(stage_spec, workdir)
            if finished is not None:
                if jax.process_index() == 0:
                    print(f"[{stage_spec.name}] finished earlier (step {finished['step']}); reporting its results",
                          flush=True)
                done.append(finished)
                continue
            done.append(_run_one(stage_spec, workdir, mesh, on_event))
            on_event("stage_done", stage=stage_spec.name)
            if done[-1]["status"] == "preempted":
                break
        return done
