"""One stage of a recipe (a teacher, a distilled student, a baseline) as a short sequence of plain functions:

    plan = build(stage_spec, mesh)                     models, terms, data, optimiser, identity (immutable)
    teacher = kdjax.train.teacher.load(plan, ...)      the frozen teacher, measured once
    state = kdjax.train.resume.initial_state(...)      fresh, or copied from `init_from`
    state, start, meta = kdjax.train.resume.restore(...)   or the latest checkpoint's
    status, step, meta = kdjax.train.train_loop.train(...) steps, logs, evaluations, checkpoints
    kdjax.train.results.record(...)                    results.json

`abstract_state(plan, mesh)` runs the build without data reads or compilation (models and loss terms through
`jax.eval_shape`): validation uses it for every stage before any trains.

Per stage, `<workdir>/<stage>/` holds `checkpoints/` (the last few, for resuming), `checkpoints_best/` (the state at
the best value of the headline metric), TensorBoard events, `metrics.jsonl`, `results.json` and, for distillation
stages, `teacher.json` (the teacher's checkpoint, fingerprint and measured metrics).
"""
import dataclasses
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from kdjax import data as data_lib
from kdjax import evaluators as evaluators_lib
from kdjax import models, parallel
from kdjax.errors import ConfigError
from kdjax.train import optim, preemption, results, resume, train_loop
from kdjax.train import step as step_lib
from kdjax.train import teacher as teacher_lib
from kdjax.train import teacher_cache
from kdjax.train import terms as terms_lib
from kdjax.train.recipe import StageSpec


@dataclasses.dataclass(frozen=True)
class StagePlan:
    """What a stage's config builds, before any state exists or data is read."""
    spec: StageSpec
    data: data_lib.Data
    model: nn.Module
    teacher_model: nn.Module | None
    networks: step_lib.Networks
    weighted_terms: tuple
    tx: optax.GradientTransformation
    schedules: dict
    steps_per_epoch: int
    total_steps: int
    batch_spec: dict                 # the global batch's abstract arrays, sharded on the mesh
    identity: dict                   # kdjax.train.resume.identity

    def zeros_batch(self) -> dict:
        return {k: jnp.zeros(v.shape, v.dtype) for k, v in self.batch_spec.items()}

    def init_fn(self, teacher_vars, batch):
        return lambda rng: step_lib.init_state(self.networks, self.weighted_terms, self.tx, rng, batch, teacher_vars)


def _build_data(stage_spec: StageSpec) -> data_lib.Data:
    try:
        parallel.check_batch_size(stage_spec.batch_size, "batch_size")
        parallel.check_batch_size(stage_spec.eval_batch_size, "eval_batch_size")
    except ValueError as e:
        raise ConfigError(str(e)) from e
    try:
        data = data_lib.build(stage_spec.data, seed=stage_spec.seed, batch_size=stage_spec.batch_size,
                              eval_batch_size=stage_spec.eval_batch_size, process_index=jax.process_index(),
                              process_count=jax.process_count())
    except (ValueError, FileNotFoundError) as e:
        raise ConfigError(f"stages.{stage_spec.name}.data: {e}") from e
    try:
        stage_spec.task.check_data(data.label_kind, data.train_split.name)
    except ValueError as e:
        raise ConfigError(f"stages.{stage_spec.name}: {e}") from e
    return data


def _build_model(cfg: dict, num_classes: int, where: str, task=None) -> nn.Module:
    try:
        model = models.from_config(cfg, num_classes=num_classes)
        if task is not None:
            task.check_outputs(getattr(model, "num_classes", num_classes), num_classes)
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from e
    return model


def _global_batch_spec(data: data_lib.Data, mesh) -> dict:
    scale, sharding = jax.process_count(), parallel.batch_sharding(mesh)
    return {k: jax.ShapeDtypeStruct((shape[0] * scale,) + shape[1:], dtype, sharding=sharding)
            for k, (shape, dtype) in data.train.element_spec().items()}


def build(stage_spec: StageSpec, mesh, data=None) -> StagePlan:
    """Builds a stage's data pipelines, models, loss terms and optimiser; user errors are ConfigErrors naming the
    config key. `data`: a stand-in with the same attributes (benchmarks/cost_table.py plans from shapes alone)."""
    data = data or _build_data(stage_spec)
    model = _build_model(stage_spec.model, data.num_classes, f"stages.{stage_spec.name}.model", stage_spec.task)
    where = f"stages.{stage_spec.name}"
    teacher_model = (_build_model(stage_spec.teacher.model, data.num_classes, f"{where}.teacher.model")
                     if stage_spec.teacher else None)
    steps_per_epoch = data.train.steps_per_epoch
    total_steps = (int(stage_spec.num_steps) if stage_spec.num_steps
                   else int(round(stage_spec.num_epochs * steps_per_epoch)))
    try:
        weighted = terms_lib.build_terms(stage_spec.losses, terms_lib.DataFacts(data.num_examples, data.num_classes))
    except ValueError as e:
        raise ConfigError(f"stages.{stage_spec.name}.losses: {e}") from e
    tx, schedules = optim.make_optimizer(stage_spec.optimizer, stage_spec.schedule, steps_per_epoch=steps_per_epoch,
                                         total_steps=total_steps)
    return StagePlan(data=data, spec=stage_spec, model=model, teacher_model=teacher_model,
                     networks=step_lib.Networks(model, teacher_model), weighted_terms=weighted, tx=tx,
                     schedules=schedules, steps_per_epoch=steps_per_epoch, total_steps=total_steps,
                     batch_spec=_global_batch_spec(data, mesh), identity=resume.identity(stage_spec))


def abstract_state(plan: StagePlan):
    """Validates the stage (models, loss terms, parameter groups, teacher source, init_from) without data reads or
    compilation; returns the abstract train state."""
    stage_spec = plan.spec
    resume.check_init_from(stage_spec)
    teacher_lib.check_source(stage_spec.teacher, stage_spec.name)
    teacher_vars = (teacher_lib.abstract_variables(plan.teacher_model, plan.batch_spec["image"])
                    if plan.teacher_model is not None else {})
    try:
        state = jax.eval_shape(lambda tv, b: plan.init_fn(tv, b)(jax.random.key(0)), teacher_vars, plan.zeros_batch())
    except (ValueError, TypeError, KeyError, IndexError) as e:
        raise ConfigError(f"stages.{stage_spec.name}: building the networks and loss terms failed: "
                          f"{type(e).__name__}: {e}") from e
    try:
        optim.check_groups_match(state.params, stage_spec.optimizer)
    except ValueError as e:
        raise ConfigError(f"stages.{stage_spec.name}.{e}") from e
    return state


def make_evaluators(plan: StagePlan, mesh) -> dict:
    return {name: evaluators_lib.build(name, entry, mesh=mesh, data=plan.data)
            for name, entry in plan.spec.evals.items()}


def compile_step(plan: StagePlan, state, teacher_vars, mesh):
    jitted = step_lib.jit_train_step(mesh, networks=plan.networks, weighted_terms=plan.weighted_terms,
                                     task=plan.spec.task, schedules=plan.schedules,
                                     steps_per_epoch=plan.steps_per_epoch)
    return jitted.lower(state, teacher_vars, plan.batch_spec).compile()


def run(stage_spec: StageSpec, workdir: str, *, mesh, on_event) -> dict:
    """Trains the stage to completion (or until SIGTERM); returns its results record."""
    on_event("start")
    directory = results.stage_dir(workdir, stage_spec.name)
    os.makedirs(directory, exist_ok=True)
    plan = build(stage_spec, mesh)
    evaluators = make_evaluators(plan, mesh)
    teacher = teacher_lib.load(plan, workdir, evaluators, mesh)
    cached = teacher_cache.prepare(plan, teacher, mesh, on_event)
    if cached is not None:
        teacher_lib.note_cache(workdir, stage_spec.name, cached.record)
        plan = cached.plan
    if preemption.should_stop() or (cached is not None and cached.status == "preempted"):
        return results.preempted(stage_spec.name, None)
    checkpoints = train_loop.Checkpoints.open(directory, stage_spec.checkpoint)
    try:  # an error (a non-finite step) must not abandon the asynchronous save of the last good step
        state = resume.initial_state(plan, teacher.variables, mesh)
        state, start, meta = resume.restore(plan, checkpoints.last, state, mesh, teacher.fingerprint)
        step_fn = compile_step(plan, state, teacher.variables, mesh)
        on_event("compiled")
        if preemption.should_stop():
            return results.preempted(stage_spec.name, start)
        run_with = train_loop.Resources(mesh, step_fn, teacher.variables, evaluators, checkpoints, directory, on_event,
                                        cached.batches if cached is not None else plan.data.train.batches)
        status, step, meta = train_loop.train(plan, run_with, state, start, meta)
    finally:
        checkpoints.close()  # waits for pending saves
    record = results.record(stage_spec, meta, status=status, step=step, total_steps=plan.total_steps,
                            wall_time=meta["wall_time"], identity=plan.identity,
                            train_mean=results.train_means(directory) if status == "done" else None)
    if status == "done":
        results.write_json(os.path.join(directory, "results.json"), record)
    return record
