"""Shared config pieces: argument parsing and the blocks every recipe uses."""
import ml_collections


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
    """Parses 'runlocal,variant=x,seed=1' (the text after ':' in --config=file.py:...) into typed fields.

    Values take the type of their default; a bare key sets a bool to True; unknown keys fail with the valid list.
    """
    parsed = ml_collections.ConfigDict(defaults)
    for item in filter(None, (arg or "").split(",")):
        key, _, value = item.partition("=")
        if key not in defaults:
            raise ValueError(f"Unknown config argument {key!r}; valid arguments: {sorted(defaults)}")
        default = defaults[key]
        if isinstance(default, bool):
            parsed[key] = value.lower() in ("", "1", "true", "yes")
        elif default is None:
            parsed[key] = value
        else:
            parsed[key] = type(default)(value)
    return parsed


def base_config(*, seed: int = 0, task: str = "classification") -> ml_collections.ConfigDict:
    """Top-level fields every experiment has; recipes fill in `data` and `stages`."""
    c = ml_collections.ConfigDict()
    c.seed = seed
    c.multihost = False              # call jax.distributed.initialize() (TPU pods, Slurm, Open MPI)
    c.task = task                    # kdjax.tasks: labels, train metrics, default evaluators and headline metric
    c.batch_size = 64                # global: independent of the device count
    c.eval_batch_size = 256
    c.log_every_steps = 50
    c.eval_every_epochs = 1.0
    c.evals = ml_collections.ConfigDict()   # empty: the task's evaluators
    c.best_metric = ""                      # empty: the task's headline metric (its best checkpoint is kept)
    c.allow_extend = False           # resume a run under a larger step count (logged); any other change is refused
    c.checkpoint = ml_collections.ConfigDict(dict(every_steps=1000, max_to_keep=3))
    c.stage_order = ()
    c.stages = ml_collections.ConfigDict()
    c.info = ml_collections.ConfigDict()    # what the config reproduces (published numbers); not read by the trainer
    return c


def data_block(name: str, *, train: str = "", eval: str = "", views: dict | None = None, train_split="train",
               eval_split="test", per_class=None, normalization=None) -> ml_collections.ConfigDict:
    """`train` / `eval`: the ops of the training view 'image' and of evaluation images (kdjax.data.ops), e.g.
    train='pad_crop(4)|flip'; `views` instead of `train` for several named training views."""
    return ml_collections.ConfigDict(dict(
        name=name, data_dir=None, train_split=train_split, eval_split=eval_split, train_classes=None,
        eval_classes=None, views=views or {"image": train}, eval_view=eval, normalization=normalization,
        sampler="epoch", samples_per_class=None, sampler_mode=None, per_class=per_class, subset_seed=None,
        contrast_negatives=None, expect=None), type_safe=False)


def stage(model: dict, losses: dict, *, optimizer: dict, schedule: dict, num_epochs: float,
          teacher: dict | None = None, data: dict | None = None, evals: dict | None = None) -> ml_collections.ConfigDict:
    """`evals`: this stage's evaluators instead of the config's (e.g. noise robustness for one stage)."""
    s = ml_collections.ConfigDict(dict(model=model, losses=losses, optimizer=optimizer, schedule=schedule,
                                       num_epochs=num_epochs, num_steps=None, data=data or {}, evals=evals or {},
                                       init_from="", init_allow_random=()))
    s.num_steps = ml_collections.config_dict.placeholder(int)
    s.batch_size = ml_collections.config_dict.placeholder(int)  # None: the config's global batch_size
    if teacher is not None:
        s.teacher = ml_collections.ConfigDict(dict(stage=teacher.get("stage", ""),
                                                   checkpoint=teacher.get("checkpoint", ""),
                                                   pretrained=teacher.get("pretrained", ""),
                                                   path=teacher.get("path", ""), sha256=teacher.get("sha256", ""),
                                                   model=teacher.get("model", {}),
                                                   how_to_get=teacher.get("how_to_get", "")))
    return s


def sgd(weight_decay=5e-4, momentum=0.9, nesterov=False) -> dict:
    return dict(name="sgd", momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                exclude_1d_from_decay=False)


def adam(weight_decay=0.0) -> dict:
    return dict(name="adam", b1=0.9, b2=0.999, weight_decay=weight_decay, exclude_1d_from_decay=False)


def multistep(base_lr, milestones, decay_factor=0.1) -> dict:
    return dict(name="multistep", base_lr=base_lr, milestones=tuple(milestones), decay_factor=decay_factor)


def cosine(base_lr, warmup_epochs=0.0) -> dict:
    return dict(name="cosine", base_lr=base_lr, warmup_epochs=warmup_epochs, end_lr=0.0)


def runlocal(config: ml_collections.ConfigDict, steps: int = 2) -> ml_collections.ConfigDict:
    """Shrinks a config for a CPU smoke test of the real recipe: batch 8, `steps` steps per stage, 64 evaluation
    images, no split-size assertions (mock data)."""
    config.batch_size = 8
    config.eval_batch_size = 8
    config.log_every_steps = 1
    config.data.eval_split = config.data.eval_split.split("[")[0] + "[:64]"
    config.data.expect = None
    for name in config.stages:
        config.stages[name].num_steps = steps
        config.stages[name].batch_size = None
    return config


def pretrained_teacher(arch: str, path: str) -> dict:
    """`teacher` block of a published CIFAR-100 teacher of architecture `arch` (kdjax name) read from `path`."""
    from kdjax import teachers
    names = [name for name, entry in teachers.REGISTRY.items() if entry.arch == arch]
    if not names:
        raise ValueError(f"no published teacher of architecture {arch!r}; published: "
                         f"{', '.join(f'{n} ({e.arch})' for n, e in teachers.REGISTRY.items())}")
    return dict(pretrained=names[0], path=path)
