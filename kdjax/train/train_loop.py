"""The step loop of one stage: train steps, logs, evaluations, checkpoints and SIGTERM, in one function.

Every `log_every_steps` the measurements since the last log are averaged and written (TensorBoard, metrics.jsonl,
the console line with steps/s and ETA); a non-finite loss, gradient or parameter stops the run before anything is
saved. Each evaluator runs every `every_epochs` (its own, or the config's `eval_every_epochs`) and at the last step;
the best value of the headline metric keeps its state in `checkpoints_best/`. A checkpoint is written every
`checkpoint.every_steps`, at the last step and when SIGTERM arrives (then the loop stops: status 'preempted').
"""
import dataclasses
import math
import time
from typing import Callable

import jax
import numpy as np
from clu import periodic_actions

from kdjax import parallel, schema
from kdjax.train import checkpoint as ckpt_lib
from kdjax.train import logging as log_lib
from kdjax.train import preemption


class NonFiniteError(FloatingPointError):
    pass


@dataclasses.dataclass(frozen=True)
class Checkpoints:
    last: ckpt_lib.Checkpointer   # the last few, for resuming
    best: ckpt_lib.Checkpointer   # the state at the best headline value

    @classmethod
    def open(cls, directory: str, settings: schema.Checkpoint) -> "Checkpoints":
        return cls(ckpt_lib.Checkpointer(f"{directory}/checkpoints", max_to_keep=int(settings.max_to_keep)),
                   ckpt_lib.Checkpointer(f"{directory}/checkpoints_best", max_to_keep=1))

    def close(self):
        self.last.close()
        self.best.close()


@dataclasses.dataclass(frozen=True)
class Resources:
    """What the loop uses besides the plan and the state."""
    mesh: jax.sharding.Mesh
    step_fn: Callable              # compiled (state, teacher variables, batch) -> (state, measurements)
    teacher_vars: dict
    evaluators: dict
    checkpoints: Checkpoints
    directory: str                 # the stage's folder (logs)
    on_event: Callable             # on_event(event, **info): 'step', 'eval' (tests use it)
    batches: Callable              # start step -> iterator of local training batches


@dataclasses.dataclass
class Tracker:
    """Last and best value of every evaluation metric (best in each metric's own direction)."""
    lower_is_better: set
    best: dict = dataclasses.field(default_factory=dict)   # metric -> {'value', 'step'}
    last: dict = dataclasses.field(default_factory=dict)   # metric -> value, plus 'step'

    def update(self, step: int, values: dict) -> set:
        improved = set()
        for k, v in values.items():
            old = self.best.get(k)
            lower = k.split("/", 1)[-1] in self.lower_is_better
            if old is None or (v < old["value"] if lower else v > old["value"]):
                self.best[k] = {"value": v, "step": step}
                improved.add(k)
        self.last = dict(values, step=step)
        return improved


def eval_schedule(stage_spec, steps_per_epoch: int) -> dict:
    """{evaluator name: every how many steps}."""
    return {name: max(1, int(round(float(entry.get("every_epochs", stage_spec.eval_every_epochs)) * steps_per_epoch)))
            for name, entry in stage_spec.evals.items()}


def flush(window: list, step: int, writer, progress) -> None:
    """Writes the measurements since the last flush; a non-finite loss, gradient or parameter stops the run
    before anything is saved, so a bad state is never written."""
    window = jax.device_get(window)
    first = step - len(window) + 1
    for offset, m in enumerate(window):
        if m["train/finite"] < 1 or not all(math.isfinite(float(v)) for k, v in m.items() if k.startswith("loss/")):
            terms = ", ".join(f"{k.split('/', 1)[1]}={float(v)}" for k, v in sorted(m.items())
                              if k.startswith("loss/"))
            raise NonFiniteError(f"non-finite values at step {first + offset}: {terms}; l2 of gradients "
                                 f"{float(m['train/l2_grads'])}, of updated parameters "
                                 f"{float(m['train/l2_params'])}. The last checkpoint is from before.")
    scalars = {k: float(np.mean([m[k] for m in window])) for k in window[0] if k != "train/finite"}
    writer.write_scalars(step, scalars)
    progress.print(step, scalars)


def evaluate(plan, res: Resources, state, step: int, due: list, tracker: Tracker, meta: dict, writer) -> dict:
    """Runs the due evaluators, logs them, keeps the best checkpoint; returns the updated checkpoint meta."""
    res.on_event("eval", step=step)
    variables, values = state.model_variables(), {}
    for name in due:
        evaluator = res.evaluators[name]
        terms = {"terms": (plan.weighted_terms, state.params["terms"])} if evaluator.reads_terms else {}
        values.update({f"{name}/{k}": v for k, v in evaluator.run(plan.model.apply, variables, **terms).items()})
    improved = tracker.update(step, values)
    headline = plan.spec.best_metric
    meta = dict(meta, best=tracker.best, last_eval=tracker.last)
    writer.write_scalars(step, dict(values, **{f"{k}/best": v["value"] for k, v in tracker.best.items()
                                               if k in values}))
    if headline in improved:
        res.checkpoints.best.save(step, state.checkpoint_tree(), dict(meta, data_step=step))
    if headline in values:
        best = tracker.best[headline]
        others = ", ".join(f"{k} {v:.4f}" for k, v in values.items() if k != headline)
        log_lib.say(plan.spec.name, f"step {step}: {headline} {values[headline]:.4f} (best {best['value']:.4f} at "
                                    f"step {best['step']}){', ' + others if others else ''}")
    return meta


def _open_logs(plan, res: Resources, start: int, meta: dict):
    writer = log_lib.create_writer(res.directory)
    if start == 0:
        writer.write_hparams({"stage": plan.spec.name, "model": plan.spec.model["name"],
                              "total_steps": plan.total_steps, "steps_per_epoch": plan.steps_per_epoch})
    for ext in meta["extensions"]:
        if ext["at_step"] == start:
            writer.write_scalars(start, {"run/extended_to_steps": ext["to_steps"]})
    return writer


def train(plan, res: Resources, state, start: int, meta: dict) -> tuple[str, int, dict]:
    """Trains from step `start` to the plan's last step or SIGTERM; returns (status, step, checkpoint meta)."""
    stage_spec, spe, total = plan.spec, plan.steps_per_epoch, plan.total_steps
    writer = _open_logs(plan, res, start, meta)
    progress = log_lib.ConsoleProgress(stage_spec.name, total, spe, start)
    report = periodic_actions.ReportProgress(num_train_steps=total, writer=writer,
                                             every_steps=stage_spec.log_every_steps)
    tracker = Tracker({k for ev in res.evaluators.values() for k in ev.lower_is_better},
                      best=dict(meta["best"]), last=dict(meta["last_eval"]))
    t_start, eval_every = time.time() - float(meta["wall_time"]), eval_schedule(stage_spec, spe)
    step, window, batches, status = start, [], res.batches(start), "done"
    try:
        while step < total:
            state, measurements = res.step_fn(state, res.teacher_vars, parallel.global_batch(next(batches), res.mesh))
            window.append(measurements)
            step += 1
            report(step)
            res.on_event("step", step=step)
            stop = preemption.should_stop()
            due = [name for name, every in eval_every.items() if step % every == 0 or step == total]
            save = step % stage_spec.checkpoint.every_steps == 0 or step == total
            if step % stage_spec.log_every_steps == 0 or save or due or stop:
                flush(window, step, writer, progress)
                window = []
            if due:
                meta = evaluate(plan, res, state, step, due, tracker, meta, writer)
                stop = stop or preemption.should_stop()  # a SIGTERM during the evaluation
            if stop or save:
                meta = dict(meta, wall_time=time.time() - t_start, data_step=step)
                res.checkpoints.last.save(step, state.checkpoint_tree(), meta)
            if stop:
                log_lib.say(stage_spec.name, f"SIGTERM: checkpointed step {step}, exiting")
                status = "preempted"
                break
        writer.flush()
    finally:
        writer.close()
    return status, step, dict(meta, wall_time=time.time() - t_start)
