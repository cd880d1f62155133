"""Shared config pieces: argument parsing and the blocks every recipe uses (built from `kdjax.schema`)."""
import ml_collections

from kdjax import schema, teachers


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
    """Top-level fields every experiment has (`kdjax.schema.Experiment`); recipes fill in `data` and `stages`."""
    return schema.config_dict(schema.Experiment(seed=seed, task=task))


def data_block(name: str, *, train: str = "", eval: str = "", views: dict | None = None, train_split="train",
               eval_split="test", per_class=None, normalization=None) -> ml_collections.ConfigDict:
    """The `data` block (`kdjax.schema.Data`). `train` / `eval`: the ops of the training view 'image' and of
    evaluation images (kdjax.data.ops), e.g. train='pad_crop(4)|flip'; `views` instead of `train` for several
    named training views."""
    return schema.config_dict(schema.Data(name=name, train_split=train_split, eval_split=eval_split,
                                          views=views or {"image": train}, eval_view=eval, per_class=per_class,
                                          normalization=normalization))


def stage(model: dict, losses: dict, *, optimizer: dict, schedule: dict, num_epochs: float,
          teacher: dict | None = None, data: dict | None = None, evals: dict | None = None) -> ml_collections.ConfigDict:
    """A stage block (`kdjax.schema.Stage`); `evals`: this stage's evaluators instead of the config's (e.g. noise
    robustness for one stage); `teacher`: the keys of `kdjax.schema.Teacher`."""
    block = schema.Stage(model=model, losses=losses, optimizer=optimizer, schedule=schedule, num_epochs=num_epochs,
                         data=data or {}, evals=evals or {})
    return schema.config_dict(block, teacher=None if teacher is None else schema.Teacher(**teacher))


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
    return dict(pretrained=teachers.of_architecture(arch), path=path)
