"""Sweeps: one config over seed x hyper-parameter grids, resumable, on this machine or a SLURM cluster.

    python -m experiments.sweep --config=configs/<file>.py[:args] --workdir=W --seeds=0,1,2 \\
        [--grid=KEY=V1,V2,...]... [--set=KEY=VALUE]... [--baseline=KEY=VALUE] [--launcher=local|slurm] [options]
    python -m experiments.sweep --sweep=configs/<paper>/offline_study.py[:args] --workdir=W     # a stored sweep
    python -m experiments.sweep ... --status        # each cell's state, nothing runs
    python -m experiments.sweep ... --collect       # the tables from the finished cells, nothing runs

Cells are the product of every `--grid` (a config argument such as `method=kd,dkd`, or a dotted config key as in
`--config.KEY=VALUE` overrides) times the seeds; each is an ordinary `experiments.main` run in `W/<cell>/`. Every
cell is validated before any starts. Relaunching the same command reports finished cells, resumes interrupted ones
and starts the rest; a failed cell is reported (its log named) and does not stop the others. Teacher stages that
several cells share (same teacher config and seed) are trained once, in `W/shared/`. At the end `W/table.md`,
`W/summary.json` and one plot per grid axis (`W/<axis>.png`): every stage's headline metric as mean ± std over
seeds, with `--baseline` the seed-paired difference to that grid point.

On SLURM (`--launcher=slurm`, through submitit): one job per cell, or one job array (`--array`), with
`--partition`, `--time_min`, `--gpus_per_node`, `--nodes` (a cell on several nodes runs multi-host through
`jax.distributed`). The command waits for the jobs; run it in tmux / screen, or relaunch later with `--collect`.
"""
import os
import shlex
import sys

from absl import app, flags, logging

from kdjax import errors

flags.DEFINE_string("config", None, "Experiment config file (configs/...py[:args]).")
flags.DEFINE_string("sweep", None, "A sweep specification (configs/<paper>/offline_study.py[:args]) whose "
                    "get_sweep() names the config, grid, seeds and baseline; the flags below override it.")
flags.DEFINE_string("workdir", None, "The sweep's directory (one folder per cell).")
flags.DEFINE_string("seeds", None, "Comma-separated seeds (default 0,1,2, or the sweep specification's).")
flags.DEFINE_multi_string("grid", [], "KEY=V1,V2,...: one grid axis (repeatable).")
flags.DEFINE_multi_string("set", [], "KEY=VALUE: a setting of every cell, not an axis (repeatable).")
flags.DEFINE_string("baseline", None, "KEY=VALUE[,KEY=VALUE]: the grid point paired differences are taken to.")
flags.DEFINE_list("stages", None, "The stages to tabulate (default: all).")
flags.DEFINE_list("metrics", None, "More final metrics to tabulate beside each stage's headline (eval/OF1,...).")
flags.DEFINE_enum("launcher", "local", ["local", "slurm"], "Where the cells run.")
flags.DEFINE_integer("parallel", 1, "local: cells run at a time.")
flags.DEFINE_bool("status", False, "Print each cell's state and exit.")
flags.DEFINE_bool("collect", False, "Write the tables from finished cells and exit.")
flags.DEFINE_string("partition", "", "slurm: partition.")
flags.DEFINE_integer("time_min", 240, "slurm: time limit per job, minutes.")
flags.DEFINE_integer("gpus_per_node", 1, "slurm: GPUs per node.")
flags.DEFINE_integer("nodes", 1, "slurm: nodes per cell (more than 1: multi-host through jax.distributed).")
flags.DEFINE_integer("cpus_per_task", 8, "slurm: CPUs per task (the input pipeline).")
flags.DEFINE_integer("mem_gb", 0, "slurm: memory per node, GB (0: the partition's default).")
flags.DEFINE_bool("array", False, "slurm: submit the cells as one job array.")
flags.DEFINE_string("cluster", None, "slurm: submitit's cluster ('local' runs the SLURM path on this machine).")
flags.mark_flags_as_required(["workdir"])
FLAGS = flags.FLAGS


def build_sweep():
    from kdjax.sweep import grid
    return grid.build(grid.load_specification(FLAGS.sweep), config=FLAGS.config, axes=FLAGS.grid, fixed=FLAGS.set,
                      seeds=FLAGS.seeds, baseline=FLAGS.baseline, stages=FLAGS.stages)


def launcher():
    from kdjax.sweep import launchers
    if FLAGS.launcher == "local":
        return launchers.Local(FLAGS.parallel)
    return launchers.Slurm(f"{FLAGS.workdir}/slurm", partition=FLAGS.partition, time_min=FLAGS.time_min,
                           gpus_per_node=FLAGS.gpus_per_node, nodes=FLAGS.nodes, cpus_per_task=FLAGS.cpus_per_task,
                           mem_gb=FLAGS.mem_gb, array=FLAGS.array, cluster=FLAGS.cluster)


def main(argv):
    del argv
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    from kdjax.sweep import aggregate, runner
    try:
        from kdjax.sweep import grid
        sweep = build_sweep()
        metrics = tuple(FLAGS.metrics or grid.load_specification(FLAGS.sweep).get("metrics", ()))
        if FLAGS.collect and not os.path.isdir(FLAGS.workdir):
            raise errors.UserError(f"--workdir={FLAGS.workdir} does not exist: no cell of this sweep has run there, "
                                   "nothing to collect (--status lists the cells a launch would run)")
        if FLAGS.status:
            print("\n".join(runner.status(sweep, FLAGS.workdir)))
            return
        if FLAGS.collect:
            configs = runner.configs_of(sweep)
            aggregate.write(FLAGS.workdir, sweep, runner.finished(configs, FLAGS.workdir),
                                   shlex.join(["python", "-m", "experiments.sweep"] + sys.argv[1:]), metrics)
            print(open(f"{FLAGS.workdir}/table.md", encoding="utf-8").read())
            return
        outcome = runner.run(sweep, FLAGS.workdir, launcher(), multihost=FLAGS.nodes > 1,
                             command_line=shlex.join(["python", "-m", "experiments.sweep"] + sys.argv[1:]),
                             metrics=metrics)
    except errors.UserError as e:
        sys.exit(errors.exit_message(e))
    print(open(f"{FLAGS.workdir}/table.md", encoding="utf-8").read())
    if outcome["failed"]:
        sys.exit("failed cells:\n  " + "\n  ".join(outcome["failed"]) + "\nrelaunch the same command to retry them")


if __name__ == "__main__":
    app.run(main)
