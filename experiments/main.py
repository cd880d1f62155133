"""Runs the stages of a kdjax experiment config.

    python -m experiments.main --config=configs/quickstart.py[:runlocal] --workdir=DIR [--stage=all|<stage>]
        [--config.stages.student_kd.losses.kd.temperature=2.0 ...]

Validates every stage first, then trains them in order. Appends a launch record to `DIR/launches.jsonl` (code
commit and dirty flag, devices, argv) and writes `DIR/config.json`, then one folder per stage. A re-launch with
the same DIR resumes: finished stages are reported from their results, an interrupted one continues from its
checkpoint. SIGTERM (preemption) at any point checkpoints and exits 0.
"""
import sys

from absl import app, flags, logging
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/...py[:args]).", lock_config=True)
flags.DEFINE_string("workdir", None, "Experiment directory (checkpoints, logs, results).")
flags.DEFINE_string("stage", "all", "Stage to run: 'all' or one name from the config's stage_order.")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def summary_table(results: list[dict]) -> str:
    lines = ["| stage | model | steps | metric | last | best (step) |", "|---|---|---|---|---|---|"]
    for r in results:
        metric = r.get("headline", "eval/accuracy")
        last = r.get("final", {}).get(metric, float("nan"))
        best = r.get("best", {}).get(metric, {}).get("value", float("nan"))
        lines.append(f"| {r['stage']} | {r['model']} | {r['step']} | {metric} | {last:.4f} | {best:.4f} "
                     f"({r.get('best_step', 0)}) |")
    return "\n".join(lines)


def main(argv):
    del argv
    from kdjax.train import preemption  # the SIGTERM handler covers start-up and compilation too
    with preemption.handler():
        print("kdjax: launching", flush=True)
        config = FLAGS.config
        if not FLAGS["verbosity"].present:  # Orbax and clu log every save at INFO; progress has its own line
            logging.set_verbosity(logging.WARNING)
        import jax
        if config.multihost:
            jax.distributed.initialize()  # before any computation
        jax.config.update("jax_threefry_partitionable", True)
        from kdjax.train import loop, recipe

        try:
            order = recipe.stage_order(config)
            if FLAGS.stage != "all" and FLAGS.stage not in order:
                sys.exit(f"Unknown --stage={FLAGS.stage!r}; valid: 'all' or one of {order}")
            stages = order if FLAGS.stage == "all" else [FLAGS.stage]
            specs = loop.validate(config, stages)
        except recipe.ConfigError as e:
            sys.exit(f"Config error: {e}")
        results = loop.run(config, FLAGS.workdir, [s.name for s in specs], argv=sys.argv, validated=True)
        preempted = [r["stage"] for r in results if r["status"] == "preempted"]
        if preempted:
            if jax.process_index() == 0:
                print(f"Preempted during stage {preempted[0]!r}; relaunch the same command to resume.", flush=True)
            return
        if jax.process_index() == 0:
            print("\nResults (evaluation split):\n" + summary_table(results), flush=True)


if __name__ == "__main__":
    app.run(main)
