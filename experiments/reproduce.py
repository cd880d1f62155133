"""Seed sweeps: one config over N seeds, each in its own workdir (resumable), then a table of mean ± std.

    python -m experiments.reproduce --config=configs/baselines/fashion_mnist.py:method=kd --workdir=W \
        [--seeds=0,1,2] [--stage=student] [--set stages.student.num_steps=300 ...]

Runs `<workdir>/seed<N>` for every seed (a relaunch skips finished seeds and resumes an interrupted one, exactly as
`experiments.main` does), then writes `<workdir>/summary.md` and `summary.json`: for every stage, the last and the
best value of each evaluation metric as mean ± std (ddof 1) over the seeds, with the code commit of every run and
the wall time. The offline paper scripts (`experiments/*_offline.py`) build their tables from the same functions.
"""
import argparse
import ast
import importlib
import json
import os
import time

import numpy as np


def prepare_workdir(workdir: str) -> None:
    """Creates a sweep's workdir and keeps JAX's compilation cache in it (cells that differ only in seed or loss
    weight compile once, across relaunches too); absl's per-step info lines are silenced."""
    import jax
    from absl import logging
    os.makedirs(workdir, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", os.path.join(workdir, "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    logging.set_verbosity(logging.WARNING)


def load_config(config_arg: str, seed: int | None = None, overrides=()):
    """'configs/x.py:arg=1,runlocal' -> the ConfigDict, with `seed=N` added to the arguments and 'a.b=value'
    overrides (Python literals) applied; unknown override keys are errors."""
    path, _, args = config_arg.partition(":")
    module = importlib.import_module(path.removesuffix(".py").replace(os.sep, "."))
    args = ",".join(filter(None, [args, f"seed={seed}" if seed is not None else ""]))
    config = module.get_config(args or None)
    for item in overrides:
        key, _, value = item.partition("=")
        *parents, leaf = key.split(".")
        node = config
        for p in parents:
            node = node[p]
        if leaf not in node:
            raise KeyError(f"--set {item}: {key!r} is not a field of the config")
        try:
            node[leaf] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            node[leaf] = value
    return config


def run_stage_once(config, stage: str, workdir: str, collect: bool = False) -> dict | None:
    """Runs one stage, or reports it when it finished under the same config; with `collect`, only reads finished
    results (None otherwise). SIGTERM: the stage is checkpointed and the sweep stops; a relaunch resumes it."""
    if collect:
        path = os.path.join(workdir, stage, "results.json")
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    from kdjax.train import loop
    result = loop.run(config, workdir, [stage])[-1]
    if result["status"] == "preempted":
        raise SystemExit(f"preempted in {workdir}; relaunch the same command to resume")
    return result


def mean_std(values, expected_n=None, scale=100.0) -> str:
    """'mean ± std' (ddof 1) of `values` x scale; a single value alone; '(n=k)' when fewer than expected."""
    values = scale * np.asarray(values, float)
    text = f"{values.mean():.2f} ± {values.std(ddof=1):.2f}" if len(values) > 1 else f"{values[0]:.2f}"
    return text if expected_n in (None, len(values)) else f"{text} (n={len(values)})"


def summarise(results_by_seed: dict) -> dict:
    """{seed: [stage results]} -> {stage: {'last': {metric: [values]}, 'best': {...}, 'commits': [...]}}."""
    summary = {}
    for seed, results in sorted(results_by_seed.items()):
        for r in results:
            entry = summary.setdefault(r["stage"], {"last": {}, "best": {}, "commits": [], "seeds": [],
                                                    "headline": r.get("headline")})
            entry["seeds"].append(seed)
            code = r.get("code", {})
            entry["commits"].append(code.get("commit", "?")[:10] + ("-dirty" if code.get("dirty") else ""))
            for metric, value in r.get("final", {}).items():
                entry["last"].setdefault(metric, []).append(value)
            for metric, best in r.get("best", {}).items():
                entry["best"].setdefault(metric, []).append(best["value"])
    return summary


def markdown(summary: dict, wall_time: float) -> str:
    lines = []
    for stage, entry in summary.items():
        n = len(entry["seeds"])
        lines += [f"### {stage} ({n} seeds: {entry['seeds']}; commits {sorted(set(entry['commits']))})", "",
                  "| metric | last (mean ± std) | best (mean ± std) |", "|---|---|---|"]
        for metric in entry["last"]:
            scale = 1.0 if metric.endswith("loss") else 100.0
            best = entry["best"].get(metric)
            lines.append(f"| {metric}{' (headline)' if metric == entry['headline'] else ''} | "
                         f"{mean_std(entry['last'][metric], n, scale)} | "
                         f"{mean_std(best, n, scale) if best else ''} |")
        lines.append("")
    lines.append(f"Metrics x100 except losses; wall time of this sweep's runs {wall_time / 60:.1f} min.")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="configs/<file>.py[:args] (without seed=)")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--stage", default="all", help="'all' or one stage of the config")
    parser.add_argument("--set", action="append", default=[], help="a.b=value override (repeatable)")
    args = parser.parse_args(argv)
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    from kdjax.train import recipe
    seeds = [int(s) for s in args.seeds.split(",")]
    os.makedirs(args.workdir, exist_ok=True)
    start, results = time.time(), {}
    for seed in seeds:
        config = load_config(args.config, seed, args.set)
        stages = recipe.stage_order(config) if args.stage == "all" else [args.stage]
        workdir = os.path.join(args.workdir, f"seed{seed}")
        results[seed] = [run_stage_once(config, stage, workdir) for stage in stages]
    wall = sum(r.get("wall_time", 0.0) for rs in results.values() for r in rs)
    summary = summarise(results)
    table = markdown(summary, wall)
    with open(os.path.join(args.workdir, "summary.md"), "w", encoding="utf-8") as f:
        f.write(f"`python -m experiments.reproduce --config={args.config} --seeds={args.seeds}`\n\n" + table)
    with open(os.path.join(args.workdir, "summary.json"), "w", encoding="utf-8") as f:
        json.dump({"config": args.config, "seeds": seeds, "summary": summary, "wall_time_s": wall,
                   "elapsed_s": time.time() - start}, f, indent=1)
    print(table)


if __name__ == "__main__":
    main()
