"""Runs the stages of a kdjax experiment config.

    python -m experiments.main --config=configs/quickstart.py[:runlocal] --workdir=DIR [--stage=all|<stage>]
        [--config.stages.student_kd.losses.kd.temperature=2.0 ...]

Validates every stage first, then trains them in order. Appends a launch record to `DIR/launches.jsonl` (code
commit and dirty flag, devices, malloc, argv) and writes `DIR/config.json`, then one folder per stage. A re-launch with
the same DIR resumes: finished stages are reported from their results, an interrupted one continues from its
checkpoint. SIGTERM (preemption) at any point checkpoints and exits 0.
"""
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from kdjax import config_files, errors

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
        from kdjax import provenance
        from kdjax.train import loop, recipe
        hint = provenance.malloc_hint(jax.default_backend(), provenance.allocator())
        if hint and jax.process_index() == 0:
            print(hint, flush=True)

        try:
            order = recipe.stage_order(config)
            if FLAGS.stage != "all" and FLAGS.stage not in order:
                raise errors.ConfigError(f"Unknown --stage={FLAGS.stage!r}; valid: 'all' or one of {order}")
            stages = order if FLAGS.stage == "all" else [FLAGS.stage]
            specs = loop.validate(config, stages)
            results = loop.run(config, FLAGS.workdir, [s.name for s in specs], argv=sys.argv, validated=True)
        except errors.UserError as e:
            sys.exit(errors.exit_message(e))
        preempted = [r["stage"] for r in results if r["status"] == "preempted"]
        if preempted:
            if jax.process_index() == 0:
                print(f"Preempted during stage {preempted[0]!r}; relaunch the same command to resume.", flush=True)
            return
        if jax.process_index() == 0:
            print("\nResults (evaluation split):\n" + summary_table(results), flush=True)


def _bad_override(argv) -> str:
    """The first `--config.a.b=value` of `argv` that the config refuses, and why."""
    config_arg = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
    try:
        config = config_files.load(config_arg)
    except Exception:  # noqa: BLE001  (the original error is reported instead)
        return ""
    for arg in argv:
        if arg.startswith("--config."):
            key, _, value = arg.removeprefix("--config.").partition("=")
            try:
                config_files.override(config, key, value)
            except errors.ConfigError as e:
                return f"--config.{e}"
    return ""


def parse_flags(argv):
    """absl's flag parsing, with a bad flag or `--config...` override (an unknown key, a value of the wrong type)
    reported as one line instead of a traceback."""
    try:
        return FLAGS(argv)
    except flags.Error as e:
        sys.exit(f"Flag error: {e}")
    except (KeyError, AttributeError, TypeError, ValueError) as e:
        sys.exit(f"Config error: {_bad_override(argv) or ' '.join(str(e).split())}")


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
