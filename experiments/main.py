"""Runs the stages of a kdjax experiment config.

    python -m experiments.main --config=configs/quickstart.py[:runlocal] --workdir=DIR [--stage=all|<stage>]
        [--config.stages.student_kd.losses.kd.temperature=2.0 ...]

Writes `DIR/config.json` (the resolved config, git commit, JAX version and devices), then one folder per stage.
A re-launch with the same DIR resumes: finished stages are kept, an interrupted one continues from its checkpoint.
"""
import json
import os
import subprocess
import sys

from absl import app, flags, logging
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/...py[:args]).", lock_config=True)
flags.DEFINE_string("workdir", None, "Experiment directory (checkpoints, logs, results).")
flags.DEFINE_string("stage", "all", "Stage to run: 'all' or one name from the config's stage_order.")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def _git_commit() -> str:
    try:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _summary_table(results: list[dict]) -> str:
    lines = ["| stage | model | steps | final top-1 | best top-1 (step) |", "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['stage']} | {r['model']} | {r['step']} | {r.get('final_accuracy', float('nan')):.4f} | "
                     f"{r['best_accuracy']:.4f} ({r['best_step']}) |")
    return "\n".join(lines)


def main(argv):
    del argv
    config = FLAGS.config
    if not FLAGS["verbosity"].present:  # Orbax and clu log every save at INFO; progress has its own line
        logging.set_verbosity(logging.WARNING)
    import jax  # after flag parsing: jax.distributed.initialize must precede any other JAX call
    if config.multihost:
        jax.distributed.initialize()
    jax.config.update("jax_threefry_partitionable", True)
    from kdjax.train import loop, recipe

    order = recipe.stage_order(config)
    if FLAGS.stage != "all" and FLAGS.stage not in order:
        sys.exit(f"Unknown --stage={FLAGS.stage!r}; valid: 'all' or one of {order}")
    stages = order if FLAGS.stage == "all" else [FLAGS.stage]
    try:
        recipe.validate(config, stages)
    except recipe.ConfigError as e:
        sys.exit(f"Config error: {e}")

    os.makedirs(FLAGS.workdir, exist_ok=True)
    if jax.process_index() == 0:
        record = {"config": config.to_dict(), "git_commit": _git_commit(), "jax_version": jax.__version__,
                  "devices": [str(d) for d in jax.devices()], "process_count": jax.process_count(),
                  "argv": sys.argv}
        with open(os.path.join(FLAGS.workdir, "config.json"), "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2, default=str)

    results = []
    for stage in stages:
        result = loop.run_stage(config, stage, FLAGS.workdir)
        results.append(result)
        if result["status"] == "preempted":
            print(f"Preempted during stage {stage!r}; relaunch the same command to resume.", flush=True)
            return
    if jax.process_index() == 0:
        print("\nResults (test split):\n" + _summary_table(results), flush=True)


if __name__ == "__main__":
    app.run(main)
