"""Resolves a config into what each stage trains (`StageSpec`), checking every key of every block.

`kdjax.train.loop.validate(config)` resolves all stages and builds each one abstractly (data sources and views,
models and loss terms through `jax.eval_shape`) before anything trains, so a typo fails in seconds with a message
naming the bad value and the valid choices, not after a teacher has trained for an hour.
"""
import dataclasses

import ml_collections

from kdjax import data as data_lib
from kdjax import evaluators, tasks
from kdjax.train import optim
from kdjax.train import terms as terms_lib

STAGE_KEYS = ("model", "losses", "optimizer", "schedule", "num_epochs", "num_steps", "teacher", "data", "evals",
              "init_from", "init_allow_random", "batch_size")
TEACHER_KEYS = ("stage", "checkpoint", "pretrained", "path", "sha256", "model", "how_to_get")
CONFIG_KEYS = ("seed", "multihost", "batch_size", "eval_batch_size", "log_every_steps", "eval_every_epochs",
               "checkpoint", "stage_order", "stages", "data", "task", "evals", "best_metric", "allow_extend",
               "info")  # info: what the config reproduces (published numbers), never read by the trainer


class ConfigError(ValueError):
    pass


def _check_keys(block, valid, where):
    unknown = sorted(set(block.keys()) - set(valid))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {list(valid)}")


def to_dict(block) -> dict:
    """A ConfigDict (or dict, or None) as a plain dict."""
    return block.to_dict() if isinstance(block, ml_collections.ConfigDict) else dict(block or {})


@dataclasses.dataclass
class StageSpec:
    name: str
    task: tasks.Task
    data: dict
    model: dict
    teacher: dict | None
    weighted_terms: list
    losses: dict
    optimizer: dict
    schedule: dict
    num_epochs: float
    num_steps: int | None
    batch_size: int
    evals: dict
    best_metric: str
    init_from: str = ""
    init_allow_random: tuple = ()


def stage_order(config) -> list[str]:
    order = list(config.get("stage_order", ()) or config.stages.keys())
    for name in order:
        if name not in config.stages:
            raise ConfigError(f"stage_order names stage {name!r}; configured stages: {sorted(config.stages.keys())}")
    return order


def _evals(config, stage, task, where) -> dict:
    evals = to_dict(stage.get("evals")) or to_dict(config.get("evals")) or task.evals
    for name, entry in evals.items():
        entry = dict(entry)
        try:
            evaluators.check(name, entry)
        except ValueError as e:
            raise ConfigError(f"{where}.{e}" if stage.get("evals") else str(e)) from e
    return {name: dict(entry) for name, entry in evals.items()}


def resolve_stage(config, name: str) -> StageSpec:
    if name not in config.stages:
        raise ConfigError(f"Unknown stage {name!r}; valid stages: {stage_order(config)}")
    _check_keys(config, CONFIG_KEYS, "config")
    stage = config.stages[name]
    where = f"stages.{name}"
    _check_keys(stage, STAGE_KEYS, where)
    try:
        task = tasks.get_task(config.get("task") or "classification")
    except ValueError as e:
        raise ConfigError(f"task: {e}") from e
    data_cfg = to_dict(config.data)
    data_cfg.update(to_dict(stage.get("data")))
    try:
        data_lib.check_keys(data_cfg)
    except ValueError as e:
        raise ConfigError(f"{where}.data: {e}") from e
    model_cfg = to_dict(stage.model)
    losses = to_dict(stage.losses)
    try:
        weighted = terms_lib.build_terms(losses)
    except ValueError as e:
        raise ConfigError(f"{where}.losses: {e}") from e
    teacher = to_dict(stage.get("teacher")) or None
    if teacher is not None:
        _check_keys(teacher, TEACHER_KEYS, f"{where}.teacher")
        sources = [k for k in ("stage", "checkpoint", "pretrained") if teacher.get(k)]
        if len(sources) != 1:
            raise ConfigError(f"{where}.teacher: set exactly one of 'stage' (a stage of this config), 'checkpoint' "
                              f"(a kdjax checkpoint directory, with 'model') or 'pretrained' (a published teacher "
                              f"such as 'mdistiller:resnet32x4', with 'path'); got {sources or 'none'}")
        if teacher.get("stage"):
            order = stage_order(config)
            if teacher["stage"] not in order or order.index(teacher["stage"]) >= order.index(name):
                raise ConfigError(f"{where}.teacher.stage={teacher['stage']!r} must be a stage that runs before "
                                  f"{name!r}; stage order: {order}")
            teacher["model"] = to_dict(config.stages[teacher["stage"]].model)
        elif teacher.get("pretrained"):
            from kdjax import teachers
            try:
                entry = teachers.get(teacher["pretrained"])
            except ValueError as e:
                raise ConfigError(f"{where}.teacher: {e}") from e
            if not teacher.get("path"):
                raise ConfigError(f"{where}.teacher: pretrained={teacher['pretrained']!r} needs 'path', the "
                                  f"checkpoint or the directory it was unpacked to; it comes from {teachers.RELEASES}")
            if teacher.get("model") and teacher["model"] != dict(name=entry.arch):
                raise ConfigError(f"{where}.teacher.model={teacher['model']} contradicts pretrained="
                                  f"{teacher['pretrained']!r} (a {entry.arch}); leave 'model' out")
            teacher["model"] = dict(name=entry.arch)
        elif not teacher.get("model"):
            raise ConfigError(f"{where}.teacher: a checkpoint teacher needs 'model' (e.g. dict(name='resnet32x4'))")
        if (teacher.get("path") or teacher.get("sha256")) and not teacher.get("pretrained"):
            raise ConfigError(f"{where}.teacher: 'path' and 'sha256' belong to a 'pretrained' teacher")
    needs = [wt.name for wt in weighted if wt.term.needs_teacher]
    if needs and teacher is None:
        raise ConfigError(f"{where}.losses: term(s) {needs} need a teacher, but the stage has no 'teacher'")
    optimizer, schedule = to_dict(stage.optimizer), to_dict(stage.schedule)
    try:
        optim.check(optimizer, schedule)
    except ValueError as e:
        raise ConfigError(f"{where}.{e}") from e
    evals = _evals(config, stage, task, where)
    best_metric = config.get("best_metric") or task.headline
    if best_metric.split("/", 1)[0] not in evals:
        raise ConfigError(f"best_metric={best_metric!r} names no configured evaluator; evaluators: {sorted(evals)}")
    return StageSpec(name=name, task=task, data=data_cfg, model=model_cfg, teacher=teacher, weighted_terms=weighted,
                     losses=losses, optimizer=optimizer, schedule=schedule,
                     num_epochs=float(stage.get("num_epochs", 1)), num_steps=stage.get("num_steps"),
                     batch_size=int(stage.get("batch_size") or config.batch_size), evals=evals,
                     best_metric=best_metric, init_from=stage.get("init_from") or "",
                     init_allow_random=tuple(stage.get("init_allow_random") or ()))
