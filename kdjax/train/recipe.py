"""Resolves a config into what each stage trains (`StageSpec`), checking every key of every block against the schema
(`kdjax.schema`).

`kdjax.train.loop.validate(config)` resolves all stages and builds each one abstractly (data sources and views,
models and loss terms through `jax.eval_shape`) before anything trains, so a typo fails in seconds with a message
naming the bad value and the valid choices, not after a teacher has trained for an hour.
"""
import dataclasses

from kdjax import evaluators, schema, tasks
from kdjax.errors import ConfigError
from kdjax.train import optim
from kdjax.train import teacher as teacher_lib
from kdjax.train import terms as terms_lib

__all__ = ["ConfigError", "StageSpec", "resolve_stage", "stage_order"]


@dataclasses.dataclass(frozen=True)
class StageSpec:
    """Everything a stage reads from its config, resolved and checked; immutable."""
    name: str
    task: tasks.Task
    data: schema.Data
    model: dict
    teacher: schema.Teacher | None
    losses: dict
    optimizer: dict
    schedule: dict
    num_epochs: float
    num_steps: int | None
    batch_size: int
    evals: dict
    best_metric: str
    init_from: str
    init_allow_random: tuple
    seed: int
    eval_batch_size: int
    log_every_steps: int
    eval_every_epochs: float
    checkpoint: schema.Checkpoint
    allow_extend: bool


def stage_order(config) -> list[str]:
    order = list(config.get("stage_order", ()) or config.stages.keys())
    for name in order:
        if name not in config.stages:
            raise ConfigError(f"stage_order names stage {name!r}; configured stages: {sorted(config.stages.keys())}")
    return order


def _evals(top: schema.Experiment, stage: schema.Stage, task, where) -> dict:
    evals = dict(stage.evals) or dict(top.evals) or task.evals
    for name, entry in evals.items():
        try:
            evaluators.check(name, dict(entry))
        except ValueError as e:
            raise ConfigError(f"{where}.{e}" if stage.evals else str(e)) from e
    return {name: dict(entry) for name, entry in evals.items()}


def _data(top: schema.Experiment, stage: schema.Stage, where) -> schema.Data:
    schema.check_keys(stage.data, schema.Data, f"{where}.data")
    return dataclasses.replace(top.data, **dict(stage.data))


def _terms(losses: dict, where: str) -> tuple:
    try:
        return terms_lib.build_terms(losses)
    except ValueError as e:
        raise ConfigError(f"{where}.losses: {e}") from e


def _task(name: str) -> tasks.Task:
    try:
        return tasks.get_task(name or "classification")
    except ValueError as e:
        raise ConfigError(f"task: {e}") from e


def _check_optimizer(stage: schema.Stage, where: str) -> None:
    try:
        optim.check(dict(stage.optimizer), dict(stage.schedule))
    except ValueError as e:
        raise ConfigError(f"{where}.{e}") from e


COMPUTE_DTYPES = ("float32", "bfloat16")


def _compute_dtype(model: dict, compute_dtype: str) -> dict:
    """The model block with the config's compute dtype, unless the block sets its own `dtype`; float32 adds
    nothing (so that the identity of float32 runs stays what it was)."""
    if compute_dtype not in COMPUTE_DTYPES:
        raise ConfigError(f"compute_dtype={compute_dtype!r}; valid: {', '.join(COMPUTE_DTYPES)}")
    if compute_dtype == "float32" or "dtype" in model:
        return dict(model)
    return dict(model, dtype=compute_dtype)


def resolve_stage(config, name: str) -> StageSpec:
    top = schema.resolve(config, schema.Experiment, "config")
    if name not in top.stages:
        raise ConfigError(f"Unknown stage {name!r}; valid stages: {stage_order(config)}")
    where = f"stages.{name}"
    stage = schema.resolve(top.stages[name], schema.Stage, where)
    task = _task(top.task)
    weighted = _terms(dict(stage.losses), where)
    teacher = teacher_lib.resolve_spec(stage.teacher, stage=name, order=stage_order(config), stages=top.stages)
    if teacher is not None:
        teacher = dataclasses.replace(teacher, model=_compute_dtype(teacher.model, top.compute_dtype))
    needs = [wt.name for wt in weighted if wt.term.needs_teacher]
    if needs and teacher is None:
        raise ConfigError(f"{where}.losses: term(s) {needs} need a teacher, but the stage has no 'teacher'")
    _check_optimizer(stage, where)
    evals = _evals(top, stage, task, where)
    best_metric = top.best_metric or task.headline
    if best_metric.split("/", 1)[0] not in evals:
        raise ConfigError(f"best_metric={best_metric!r} names no configured evaluator; evaluators: {sorted(evals)}")
    return StageSpec(
        name=name, task=task, data=_data(top, stage, where), model=_compute_dtype(dict(stage.model), top.compute_dtype),
        teacher=teacher,
        losses=dict(stage.losses), optimizer=dict(stage.optimizer), schedule=dict(stage.schedule),
        num_epochs=float(stage.num_epochs), num_steps=stage.num_steps,
        batch_size=int(stage.batch_size or top.batch_size), evals=evals, best_metric=best_metric,
        init_from=stage.init_from or "", init_allow_random=tuple(stage.init_allow_random or ()), seed=int(top.seed),
        eval_batch_size=int(top.eval_batch_size), log_every_steps=int(top.log_every_steps),
        eval_every_epochs=float(top.eval_every_epochs), checkpoint=top.checkpoint, allow_extend=bool(top.allow_extend))
