"""Resolves a config into what a stage trains: data, model, teacher reference, loss terms, optimiser.

`validate(config)` resolves every stage before anything trains, so a typo fails in seconds with a message naming
the bad value and the valid choices, not after a teacher has trained for an hour.
"""
import dataclasses

import ml_collections

from kdjax import data as data_lib
from kdjax import models, parallel
from kdjax.train import optim
from kdjax.train import terms as terms_lib

STAGE_KEYS = ("model", "losses", "optimizer", "schedule", "num_epochs", "num_steps", "teacher", "data",
              "noise_sigmas", "init_from", "batch_size")
DATA_KEYS = ("name", "data_dir", "train_split", "eval_split", "image_size", "augment", "crop_padding",
             "normalization", "per_class", "subset_seed", "strong_augment", "contrast_negatives")
TEACHER_KEYS = ("stage", "checkpoint", "model", "how_to_get")


class ConfigError(ValueError):
    pass


def _check_keys(block, valid, where):
    unknown = sorted(set(block.keys()) - set(valid))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {list(valid)}")


def _to_dict(block) -> dict:
    return block.to_dict() if isinstance(block, ml_collections.ConfigDict) else dict(block or {})


@dataclasses.dataclass
class StageSpec:
    name: str
    data: dict
    model: dict
    teacher: dict | None
    weighted_terms: list
    optimizer: ml_collections.ConfigDict
    schedule: ml_collections.ConfigDict
    num_epochs: float
    num_steps: int | None
    noise_sigmas: tuple = ()
    init_from: str = ""
    batch_size: int = 0

    @property
    def needs_teacher(self) -> bool:
        return any(wt.term.needs_teacher for wt in self.weighted_terms)


def stage_order(config) -> list[str]:
    order = list(config.get("stage_order", ()) or config.stages.keys())
    for name in order:
        if name not in config.stages:
            raise ConfigError(f"stage_order names stage {name!r}; configured stages: {sorted(config.stages.keys())}")
    return order


def resolve_stage(config, name: str) -> StageSpec:
    if name not in config.stages:
        raise ConfigError(f"Unknown stage {name!r}; valid stages: {stage_order(config)}")
    stage = config.stages[name]
    where = f"stages.{name}"
    _check_keys(stage, STAGE_KEYS, where)
    data_cfg = _to_dict(config.data)
    data_cfg.update(_to_dict(stage.get("data")))
    _check_keys(data_cfg, DATA_KEYS, f"{where}.data")
    for key in ("augment", "strong_augment"):
        bad = set(data_cfg.get(key) or ()) - set(data_lib.AUGMENT_OPS)
        if bad:
            raise ConfigError(f"{where}.data.{key}: unknown op(s) {sorted(bad)}; valid: {list(data_lib.AUGMENT_OPS)}")
    model_cfg = _to_dict(stage.model)
    if model_cfg.get("name") not in models.REGISTRY:
        raise ConfigError(f"{where}.model.name: unknown model {model_cfg.get('name')!r}; valid models: "
                          f"{', '.join(models.model_names())}")
    try:
        weighted = terms_lib.build_terms(_to_dict(stage.losses))
    except ValueError as e:
        raise ConfigError(f"{where}.losses: {e}") from e
    teacher = _to_dict(stage.get("teacher")) or None
    if teacher is not None:
        _check_keys(teacher, TEACHER_KEYS, f"{where}.teacher")
        if bool(teacher.get("stage")) == bool(teacher.get("checkpoint")):
            raise ConfigError(f"{where}.teacher: set exactly one of 'stage' (a stage of this config) or "
                              f"'checkpoint' (a kdjax checkpoint directory, with 'model')")
        if teacher.get("stage"):
            order = stage_order(config)
            if teacher["stage"] not in order or order.index(teacher["stage"]) >= order.index(name):
                raise ConfigError(f"{where}.teacher.stage={teacher['stage']!r} must be a stage that runs before "
                                  f"{name!r}; stage order: {order}")
        elif not teacher.get("model"):
            raise ConfigError(f"{where}.teacher: a checkpoint teacher needs 'model' (e.g. dict(name='resnet32x4'))")
    needs = [wt.name for wt in weighted if wt.term.needs_teacher]
    if needs and teacher is None:
        raise ConfigError(f"{where}.losses: term(s) {needs} need a teacher, but the stage has no 'teacher'")
    if stage.optimizer.name not in optim.OPTIMIZERS:
        raise ConfigError(f"{where}.optimizer.name: unknown optimizer {stage.optimizer.name!r}; valid: "
                          f"{list(optim.OPTIMIZERS)}")
    if stage.schedule.name not in optim.SCHEDULES:
        raise ConfigError(f"{where}.schedule.name: unknown schedule {stage.schedule.name!r}; valid: "
                          f"{list(optim.SCHEDULES)}")
    sigmas = tuple(float(v) for v in (stage.get("noise_sigmas") or ()))
    if any(v < 0 for v in sigmas):
        raise ConfigError(f"{where}.noise_sigmas: {sigmas} must be >= 0")
    return StageSpec(name, data_cfg, model_cfg, teacher, weighted, stage.optimizer, stage.schedule,
                     float(stage.get("num_epochs", 1)), stage.get("num_steps"), sigmas, stage.get("init_from") or "",
                     int(stage.get("batch_size") or config.batch_size))


def teacher_model_cfg(config, spec: StageSpec) -> dict:
    if spec.teacher.get("stage"):
        return _to_dict(config.stages[spec.teacher["stage"]].model)
    return _to_dict(spec.teacher["model"])


def validate(config, stages: list[str] | None = None) -> list[StageSpec]:
    """Resolves the given stages (default: all), checking batch sizes, names and data sources."""
    try:
        parallel.check_batch_size(int(config.eval_batch_size), "eval_batch_size")
    except ValueError as e:
        raise ConfigError(str(e)) from e
    specs = [resolve_stage(config, s) for s in (stages or stage_order(config))]
    for spec in specs:
        try:
            parallel.check_batch_size(spec.batch_size, "batch_size" if spec.batch_size == config.batch_size
                                      else f"stages.{spec.name}.batch_size")
        except ValueError as e:
            raise ConfigError(str(e)) from e
        try:
            data_lib.get_source(spec.data["name"], data_dir=spec.data.get("data_dir"))
            data_lib.normalization_for(spec.data["name"], spec.data.get("normalization"))
        except (ValueError, FileNotFoundError) as e:
            raise ConfigError(f"stages.{spec.name}.data: {e}") from e
        if spec.teacher is not None:
            name = teacher_model_cfg(config, spec).get("name")
            if name not in models.REGISTRY:
                raise ConfigError(f"stages.{spec.name}.teacher.model.name: unknown model {name!r}; valid models: "
                                  f"{', '.join(models.model_names())}")
    return specs
