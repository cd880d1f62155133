"""Where a sweep's runs execute: on this machine (`local`, N at a time) or on a SLURM cluster through submitit.

A run (`Job`) is one `python -m experiments.main ...` command with its log file. Both launchers return each job's
exit status; a failed run never stops the others. On SLURM each job is a submitit job (or one job array,
`array=True`), with the partition, time limit, GPUs per node and nodes per cell given; a cell on several nodes runs
one process per node, multi-host through `jax.distributed` (the command carries `--config.multihost=True`, and
`jax.distributed.initialize()` reads SLURM's environment). submitit's `local` cluster runs the same path without
SLURM (the tests use it).
"""
import concurrent.futures
import dataclasses
import os
import subprocess
import sys
import time

from kdjax.registry import Registry

LAUNCHERS = Registry("launcher")


@dataclasses.dataclass(frozen=True)
class Job:
    name: str
    command: tuple[str, ...]
    log: str
    env: tuple[tuple[str, str], ...] = ()   # variables added to the environment
    cwd: str | None = None                  # where `python -m experiments.main` finds the experiments package


def run_job(job: Job) -> int:
    """Runs one job's command with its output appended to its log; returns the exit status."""
    os.makedirs(os.path.dirname(job.log), exist_ok=True)
    with open(job.log, "a", encoding="utf-8") as log:
        log.write(f"\n$ {' '.join(job.command)}\n")
        log.flush()
        return subprocess.run(list(job.command), stdout=log, stderr=subprocess.STDOUT, cwd=job.cwd,
                              env=dict(os.environ, **dict(job.env))).returncode


def _say(text: str) -> None:
    print(f"[sweep] {text}", flush=True)


@dataclasses.dataclass(frozen=True)
class Local:
    """Runs the jobs on this machine, `parallel` at a time."""
    parallel: int = 1

    def run(self, jobs: list[Job]) -> dict[str, int]:
        def one(job):
            t0 = time.time()
            _say(f"{job.name}: started (log {job.log})")
            code = run_job(job)
            _say(f"{job.name}: {'done' if code == 0 else f'FAILED (exit {code})'} in {(time.time() - t0) / 60:.1f} min")
            return code
        with concurrent.futures.ThreadPoolExecutor(max(1, self.parallel)) as pool:
            return dict(zip([j.name for j in jobs], pool.map(one, jobs)))


@dataclasses.dataclass(frozen=True)
class Slurm:
    """Submits the jobs through submitit and waits for them. `cluster='local'` is submitit's local executor."""
    folder: str
    partition: str = ""
    time_min: int = 240
    gpus_per_node: int = 1
    nodes: int = 1
    cpus_per_task: int = 8
    mem_gb: int = 0
    array: bool = False
    array_parallelism: int = 64
    cluster: str | None = None

    def executor(self):
        import submitit
        executor = submitit.AutoExecutor(folder=os.path.join(self.folder, "%j"), cluster=self.cluster)
        params = dict(timeout_min=self.time_min, nodes=self.nodes, tasks_per_node=1, cpus_per_task=self.cpus_per_task,
                      gpus_per_node=self.gpus_per_node, slurm_array_parallelism=self.array_parallelism,
                      name="kdjax-sweep")
        if self.partition:
            params["slurm_partition"] = self.partition
        if self.mem_gb:
            params["mem_gb"] = self.mem_gb
        executor.update_parameters(**params)
        return executor

    def run(self, jobs: list[Job]) -> dict[str, int]:
        executor = self.executor()
        if self.array:
            with executor.batch():
                submitted = [executor.submit(run_job, job) for job in jobs]
        else:
            submitted = [executor.submit(run_job, job) for job in jobs]
        for job, handle in zip(jobs, submitted):
            _say(f"{job.name}: submitted as job {handle.job_id} (log {job.log})")
        codes = {}
        for job, handle in zip(jobs, submitted):
            try:
                codes[job.name] = int(handle.result())
            except Exception as e:  # noqa: BLE001  (a job killed by the scheduler: reported, the others go on)
                _say(f"{job.name}: job {handle.job_id} ended without a result: {type(e).__name__}: {e}")
                codes[job.name] = -1
            _say(f"{job.name}: {'done' if codes[job.name] == 0 else f'FAILED ({codes[job.name]})'}")
        return codes


LAUNCHERS.register("local", Local)
LAUNCHERS.register("slurm", Slurm)


def main_command(config_arg: str, workdir: str, overrides=(), stage: str = "all", multihost: bool = False) -> tuple:
    """The `experiments.main` command of one run."""
    command = [sys.executable, "-m", "experiments.main", f"--config={config_arg}", f"--workdir={workdir}",
               f"--stage={stage}"] + [f"--config.{k}={v}" for k, v in overrides]
    if multihost:
        command.append("--config.multihost=True")
    return tuple(command)
