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


def base_config(*, seed: int = 0) -> ml_collections.ConfigDict:
    """Top-level fields every experiment has; recipes fill in `data` and `stages`."""
    c = ml_collections.ConfigDict()
    c.seed = seed
    c.multihost = False              # call jax.distributed.initialize() (TPU pods, Slurm, Open MPI)
    c.batch_size = 64                # global: independent of the device count
    c.eval_batch_size = 256
    c.log_every_steps = 50
    c.eval_every_epochs = 1.0
    c.checkpoint = ml_collections.ConfigDict(dict(every_steps=1000, max_to_keep=3))
    c.stage_order = ()
    c.stages = ml_collections.ConfigDict()
    return c


def data_block(name: str, *, image_size=None, augment=("crop", "flip"), crop_padding=4,
               train_split="train", eval_split="test", per_class=None) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        name=name, data_dir=None, train_split=train_split, eval_split=eval_split, image_size=image_size,
        augment=augment, crop_padding=crop_padding, normalization=None, per_class=per_class, subset_seed=None),
        type_safe=False)


def stage(model: dict, losses: dict, *, optimizer: dict, schedule: dict, num_epochs: float,
          teacher: dict | None = None, data: dict | None = None, noise_sigmas=()) -> ml_collections.ConfigDict:
    s = ml_collections.ConfigDict(dict(model=model, losses=losses, optimizer=optimizer, schedule=schedule,
                                       num_epochs=num_epochs, num_steps=None, data=data or {},
                                       noise_sigmas=tuple(noise_sigmas), init_from=""))
    s.num_steps = ml_collections.config_dict.placeholder(int)
    s.batch_size = ml_collections.config_dict.placeholder(int)  # None: the config's global batch_size
    if teacher is not None:
        s.teacher = ml_collections.ConfigDict(dict(stage=teacher.get("stage", ""),
                                                   checkpoint=teacher.get("checkpoint", ""),
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
    """Shrinks a config for a CPU smoke test of the real recipe: batch 8, `steps` steps per stage, 64 test images."""
    config.batch_size = 8
    config.eval_batch_size = 8
    config.log_every_steps = 1
    config.data.eval_split = config.data.eval_split.split("[")[0] + "[:64]"
    for name in config.stages:
        config.stages[name].num_steps = steps
        config.stages[name].batch_size = None
    return config
