"""Runs a sweep: validate every cell, train the shared teachers, run the cells that have not finished, tabulate.

    run(sweep, workdir, launcher)

1. Every cell's config is built and validated (`loop.validate`): a bad value fails before anything trains.
2. Teacher stages shared by several cells (same identity) run once, in `<workdir>/shared/`; cells link to them.
3. Cells run as ordinary `experiments.main` runs in `<workdir>/<cell>/`, skipping those whose every stage finished
   under this config; an interrupted one resumes from its checkpoint (that is what `experiments.main` does); a
   failed one is recorded in its `sweep_cell.json` and does not stop the others.
4. `table.md`, `summary.json` and the plots are written from every cell that has finished.
All runs share one JAX compilation cache (`<workdir>/jax_cache`): cells that differ only in a seed or a loss weight
compile once.
"""
import os

import kdjax
from kdjax.errors import ConfigError
from kdjax.sweep import aggregate, cells, launchers
from kdjax.sweep.grid import Sweep
from kdjax.train import recipe, results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(kdjax.__file__)))


def configs_of(sweep: Sweep) -> dict:
    """{cell name: its ConfigDict}."""
    out = {}
    for cell in sweep.cells():
        try:
            out[cell.name] = sweep.config_of(cell)
        except ConfigError as e:
            raise ConfigError(f"cell {cell.name}: {e}") from e
    return out


def _env(workdir: str) -> tuple:
    return (("JAX_COMPILATION_CACHE_DIR", os.path.join(os.path.abspath(workdir), "jax_cache")),
            ("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0"),
            ("PYTHONPATH", os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))))


def _job(sweep, cell, workdir, folder, stage="all", multihost=False) -> launchers.Job:
    arguments, overrides = sweep.arguments_and_overrides(cell)
    path, args = sweep.config.partition(":")[::2]
    config_arg = f"{os.path.abspath(path)}:{','.join(filter(None, [args, arguments]))}"
    run_dir = os.path.abspath(os.path.join(workdir, folder))
    command = launchers.main_command(config_arg, run_dir, overrides, stage, multihost)
    return launchers.Job(folder, command, os.path.join(run_dir, f"{stage}.log" if stage != "all" else "cell.log"),
                         _env(workdir), REPO)


def _shared_jobs(sweep, workdir, configs, multihost) -> list[launchers.Job]:
    """One job per shared teacher stage not finished yet (the first cell that uses it trains it)."""
    jobs = {}
    for cell in sweep.cells():
        for shared in cells.shared_stages(configs[cell.name]):
            cells.link(workdir, os.path.join(workdir, cell.name), shared)
            folder = os.path.join(workdir, shared.folder)
            if shared.folder in jobs or cells.stage_status(folder, configs[cell.name], shared.stage) == "done":
                continue
            for upstream in cells.shared_stages(configs[cell.name]):  # a teacher's own teacher, trained before it
                if upstream.stage != shared.stage and upstream.stage in _earlier(configs[cell.name], shared.stage):
                    cells.link(workdir, folder, upstream)
            jobs[shared.folder] = _job(sweep, cell, workdir, shared.folder, shared.stage, multihost)
    return list(jobs.values())


def _earlier(config, stage) -> list[str]:
    order = recipe.stage_order(config)
    return order[:order.index(stage)]


def _record_exits(workdir, codes: dict, jobs) -> list[str]:
    failed = []
    for job in jobs:
        record = {"command": list(job.command), "log": job.log, "returncode": codes[job.name]}
        cells.write_record(os.path.join(workdir, job.name), record)
        if codes[job.name] != 0:
            failed.append(f"{job.name} (exit {codes[job.name]}, log {job.log})")
    return failed


def finished(configs, workdir):
    """`results_of(cell)`: the results of the cell's stages that finished under its config."""
    def results_of(cell):
        config, cell_dir = configs[cell.name], os.path.join(workdir, cell.name)
        out = {}
        for stage in recipe.stage_order(config):
            if cells.stage_status(cell_dir, config, stage) == "done":
                out[stage] = results.read(cell_dir, stage)
        return out
    return results_of


def run(sweep: Sweep, workdir: str, launcher, *, multihost: bool = False, command_line: str = "",
        metrics=()) -> dict:
    """Validates, runs what has not finished, writes the tables; returns {'summary', 'failed', 'ran'}."""
    os.makedirs(workdir, exist_ok=True)
    configs = configs_of(sweep)
    cells.validate(configs)
    shared = _shared_jobs(sweep, workdir, configs, multihost)
    failed = _record_exits(workdir, launcher.run(shared), shared) if shared else []
    jobs = []
    for cell in sweep.cells():
        lost = [s.folder for s in cells.shared_stages(configs[cell.name]) if any(f.startswith(s.folder + " ")
                                                                                  for f in failed)]
        if lost:
            failed.append(f"{cell.name} (not run: its teacher {lost[0]} failed)")
        elif cells.status(os.path.join(workdir, cell.name), configs[cell.name])[0] == "done":
            print(f"[sweep] {cell.name}: finished earlier; reporting its results", flush=True)
        else:
            jobs.append(_job(sweep, cell, workdir, cell.name, multihost=multihost))
    failed += _record_exits(workdir, launcher.run(jobs), jobs) if jobs else []
    summary = aggregate.write(workdir, sweep, finished(configs, workdir), command_line, metrics)
    return {"summary": summary, "failed": failed, "ran": [j.name for j in shared + jobs]}


def status(sweep: Sweep, workdir: str) -> list[str]:
    """One line per cell: its state and each stage's."""
    configs = configs_of(sweep)
    lines = []
    for cell in sweep.cells():
        state, stages = cells.status(os.path.join(workdir, cell.name), configs[cell.name])
        record = cells.read_record(os.path.join(workdir, cell.name))
        extra = f"; last run exited {record['returncode']}, log {record['log']}" if state == "failed" else ""
        lines.append(f"{cell.name}: {state} (" + ", ".join(f"{s} {v}" for s, v in stages.items()) + f"){extra}")
    return lines

