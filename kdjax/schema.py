"""The config schema: one dataclass per config block, the single source of its keys, their defaults and the list of
valid keys an error shows.

An experiment config (`configs/*.py`) is an `ml_collections.ConfigDict` shaped like `Experiment`:

    seed, batch_size, ..., data: Data, checkpoint: Checkpoint, stages: {name: Stage (teacher: Teacher | None)}

`configs/common.py` builds its ConfigDicts from these dataclasses (`config_dict`), and the trainer reads a config
back through `resolve`, which rejects unknown keys and fills defaults, so a block's keys are written once.
"""
import dataclasses
import types
import typing
from typing import Any

import ml_collections

from kdjax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Data:
    """The `data` block (kdjax.data.build): where examples come from and how they are batched and viewed."""
    name: str = ""                           # dataset (kdjax.data.sources): 'digits', 'cifar100', 'folder:<root>', ...
    data_dir: str | None = None              # TFDS data directory
    train_split: str = "train"               # split names; 'test[:64]' takes the first 64
    eval_split: str = "test"
    train_classes: tuple | None = None       # (lo, hi) class-id range (metric learning trains on some classes ...)
    eval_classes: tuple | None = None        # ... and retrieves the others)
    views: dict = dataclasses.field(default_factory=lambda: {"image": ""})  # training views {name: ops}
    eval_view: str = ""                      # ops of evaluation images (kdjax.data.ops)
    normalization: Any = None                # None: the dataset's constants; a name; or dict(mean=..., std=...)
    sampler: str = "epoch"                   # kdjax.data.samplers: 'epoch' or 'class_balanced'
    samples_per_class: int = 2               # class_balanced: examples per drawn class
    sampler_mode: str = "class_random"       # class_balanced: 'class_random' (Roth) or 'm_per_class' (PML)
    per_class: int | None = None             # a class-balanced few-shot subset of the training split
    subset_seed: int | None = None           # seed of that subset (None: the run's seed)
    contrast_negatives: int | None = None    # K: CRD's contrast_idx rows (K negatives + the positive)
    expect: dict | None = None               # dict(train=(classes, images), eval=(...)) the splits must match


@dataclasses.dataclass(frozen=True)
class Teacher:
    """A student stage's frozen teacher: exactly one of `stage`, `checkpoint`, `pretrained`."""
    stage: str = ""                          # a stage of this config that runs earlier
    checkpoint: str = ""                     # a kdjax `checkpoints` directory (needs `model`)
    pretrained: str = ""                     # a published teacher (kdjax.teachers), read from `path`
    path: str = ""
    sha256: str = ""                         # pins the published file's hash (else the registry's)
    model: dict = dataclasses.field(default_factory=dict)   # dict(name=..., **options)
    how_to_get: str = ""                     # the hint printed when `checkpoint` is missing
    cache: str = ""                          # a teacher-output cache directory (kdjax.train.teacher_cache)
    cache_dtype: str = "float32"             # or 'bfloat16': half the size, outputs rounded


@dataclasses.dataclass(frozen=True)
class Stage:
    """One trained network: its model, loss terms, optimiser and schedule, and optionally a teacher."""
    model: dict = dataclasses.field(default_factory=dict)       # dict(name=..., **options) (kdjax.models)
    losses: dict = dataclasses.field(default_factory=dict)      # {name: dict(weight=..., **term options)}
    optimizer: dict = dataclasses.field(default_factory=dict)   # kdjax.train.optim
    schedule: dict = dataclasses.field(default_factory=dict)
    num_epochs: float = 1.0
    num_steps: int | None = None             # overrides num_epochs
    batch_size: int | None = None            # None: the config's global batch_size
    teacher: Teacher | None = None
    data: dict = dataclasses.field(default_factory=dict)        # overrides of the config's data block
    evals: dict = dataclasses.field(default_factory=dict)       # this stage's evaluators instead of the config's
    init_from: str = ""                      # a kdjax checkpoints directory to copy matching weights from
    init_allow_random: tuple = ()            # regexes of paths that may stay randomly initialised


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    every_steps: int = 1000
    max_to_keep: int = 3


@dataclasses.dataclass(frozen=True)
class Experiment:
    """The top level of a config."""
    seed: int = 0
    multihost: bool = False                  # call jax.distributed.initialize() (TPU pods, SLURM, Open MPI)
    task: str = "classification"             # kdjax.tasks: labels, train metrics, default evaluators, headline
    batch_size: int = 64                     # global: independent of the device count
    compute_dtype: str = "float32"           # 'bfloat16': bf16 activations and matmuls in every model (students and
                                             # teachers); parameters, optimiser, BN statistics and losses float32
    eval_batch_size: int = 256
    log_every_steps: int = 50
    eval_every_epochs: float = 1.0
    evals: dict = dataclasses.field(default_factory=dict)       # empty: the task's evaluators
    best_metric: str = ""                    # empty: the task's headline metric
    allow_extend: bool = False               # resume under a larger step count (logged); other changes refused
    checkpoint: Checkpoint = Checkpoint()
    stage_order: tuple = ()
    stages: dict = dataclasses.field(default_factory=dict)      # {name: Stage}
    data: Data = Data()
    info: dict = dataclasses.field(default_factory=dict)        # published numbers; never read by the trainer


def valid_keys(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def check_keys(block, cls, where: str) -> None:
    """Raises ConfigError naming the unknown keys of `block` and the valid ones of `cls`."""
    unknown = sorted(set(_plain(block)) - set(valid_keys(cls)))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {valid_keys(cls)}")


def _plain(block) -> dict:
    if isinstance(block, ml_collections.ConfigDict):
        return block.to_dict()
    return dict(block or {})


def _nested_class(field: dataclasses.Field):
    """The schema dataclass a field holds (Teacher for `Teacher | None`), or None."""
    for candidate in (field.type, *typing.get_args(field.type)):
        if dataclasses.is_dataclass(candidate):
            return candidate
    return None


def resolve(block, cls, where: str):
    """`block` (a ConfigDict or dict) as an instance of `cls`: keys checked, defaults filled, nested schema blocks
    resolved. Other values (model dicts, loss blocks) stay plain dicts."""
    values = _plain(block)
    check_keys(values, cls, where)
    for field in dataclasses.fields(cls):
        nested = _nested_class(field)
        if nested is not None and values.get(field.name):
            values[field.name] = resolve(values[field.name], nested, f"{where}.{field.name}")
        elif nested is not None and field.name in values:
            values[field.name] = None if _optional(field) else nested()
    return cls(**values)


def _optional(field: dataclasses.Field) -> bool:
    return isinstance(field.type, types.UnionType) and type(None) in typing.get_args(field.type)


def _placeholder_type(field: dataclasses.Field):
    args = [a for a in typing.get_args(field.type) if a is not type(None)]
    return args[0] if len(args) == 1 and args[0] in (int, float, str) else None


def config_dict(instance, **overrides) -> ml_collections.ConfigDict:
    """The ConfigDict of a schema instance (with `overrides` of its fields), for configs to fill in. A None field of
    type `int | None` (or float, str) becomes a typed placeholder, so `--config.stages.x.num_steps=300` works."""
    values = {}
    for field in dataclasses.fields(instance):
        value = overrides.pop(field.name, getattr(instance, field.name))
        if dataclasses.is_dataclass(value):
            value = config_dict(value)
        elif value is None and _placeholder_type(field) is not None:
            value = ml_collections.config_dict.placeholder(_placeholder_type(field))
        elif field.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # so that `--config...num_epochs=2.5` parses
        values[field.name] = value
    if overrides:
        raise ConfigError(f"{type(instance).__name__}: unknown key(s) {sorted(overrides)}; valid keys: "
                          f"{valid_keys(type(instance))}")
    # The data block's fields change type in configs (None -> a tuple, a name -> a dict), as before the schema.
    return ml_collections.ConfigDict(values, type_safe=not isinstance(instance, Data))
