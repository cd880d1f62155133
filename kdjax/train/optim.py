"""Optimisers, learning-rate schedules and parameter groups from a stage's `optimizer` and `schedule` blocks.

Every key of a block is checked against what its builder accepts, so `warmup_epochs` on a multistep schedule or
`momentum` on Adam is an error, not silently dropped.

Schedules are functions of the optimiser step; epoch-based rules (milestones) are converted with steps_per_epoch so
that "epoch e uses base * 0.1^(milestones strictly below e), epochs numbered from 1" (mdistiller/RepDistiller)
holds exactly: the LR drops at the first step of epoch milestone + 1.
Weight decay: `sgd` and `adam` add it to the gradient before the update (PyTorch `weight_decay`, coupled);
`adamw` decays decoupled. `exclude_1d_from_decay` leaves biases and BatchNorm scales/offsets undecayed (PyTorch
references decay every parameter, hence False by default).

Parameter groups (`optimizer.groups`): {group: dict(pattern=regex, lr_mult=..., base_lr=..., weight_decay=...,
exclude_1d_from_decay=..., frozen_epochs=...)}. A parameter belongs to the first group whose `pattern` matches its path
('model/stage1_block0/Conv_0/kernel', 'terms/margin/beta', ...; `re.search`), otherwise to the stage's own
settings. A group's learning rate follows the stage's schedule, scaled by `lr_mult` or restarted from its own
`base_lr`; built with `optax.multi_transform`. `frozen_epochs` holds a group still for that many epochs (a warm-up
of the other groups, e.g. S2SD's SOP MLP warm-up): as with torch `requires_grad=False`, no update, no weight decay
and no optimiser-state change (Adam's bias correction starts when the group starts), while its schedule keeps
following the global step.
"""
import inspect
import re

import jax
import jax.numpy as jnp
import optax

from kdjax.registry import Registry

GROUP_KEYS = ("pattern", "lr_mult", "base_lr", "weight_decay", "exclude_1d_from_decay", "frozen_epochs")
OPTIMIZER_KEYS = ("name", "weight_decay", "exclude_1d_from_decay", "groups")
DEFAULT_GROUP = "default"


def _constant(*, base_lr, steps_per_epoch, total_steps):
    return optax.constant_schedule(base_lr)


def _multistep(*, base_lr, milestones, decay_factor=0.1, steps_per_epoch, total_steps):
    boundaries = {int(m) * steps_per_epoch: float(decay_factor) for m in milestones}
    return optax.piecewise_constant_schedule(base_lr, boundaries)


def _cosine(*, base_lr, warmup_epochs=0.0, end_lr=0.0, steps_per_epoch, total_steps):
    warmup = int(warmup_epochs * steps_per_epoch)
    return optax.warmup_cosine_decay_schedule(0.0 if warmup else base_lr, base_lr, warmup,
                                              max(total_steps, warmup + 1), end_value=float(end_lr))


def _onecycle(*, base_lr, pct_start=0.3, div_factor=25.0, final_div_factor=1e4, cycle_epochs=None, momentum=None,
              steps_per_epoch, total_steps):
    """torch `OneCycleLR` (two phases, cosine annealing), stepped every iteration: the LR rises from
    base_lr / div_factor to base_lr over the first pct_start of the cycle, then falls to that start / final_div_factor.
    `cycle_epochs`: the cycle's length, if not the stage's (L2D's teachers build an 80-epoch cycle and stop after 30,
    their `stop_epoch`). `momentum=(max, base)` also cycles Adam's beta1 max -> base -> max (`cycle_momentum`;
    see `momentum_schedule`)."""
    del momentum
    cycle = int(round(cycle_epochs * steps_per_epoch)) if cycle_epochs else total_steps
    start = base_lr / div_factor
    return onecycle_curve(cycle, pct_start, start, base_lr, start / final_div_factor)


def onecycle_curve(cycle_steps: int, pct_start: float, start: float, peak: float, end: float) -> optax.Schedule:
    """torch OneCycleLR's `_anneal_func` for cosine: phase 1 ends at step pct_start * cycle_steps - 1 (float, as
    torch), phase 2 at cycle_steps - 1; value(step) = b + (a - b) / 2 * (cos(pi * pct) + 1) within a phase from a
    to b, pct the fraction of the phase elapsed."""
    warm_end = float(pct_start * cycle_steps) - 1.0
    last = float(cycle_steps - 1)

    def anneal(a, b, pct):  # (cos(pi p) + 1) / 2 written as cos(pi p / 2)^2: no cancellation in float32 near p = 1
        return b + (a - b) * jnp.square(jnp.cos(0.5 * jnp.pi * pct))

    def value(step):
        step = jnp.asarray(step, jnp.float32)
        rising = anneal(start, peak, step / max(warm_end, 1e-12))
        falling = anneal(peak, end, (step - warm_end) / max(last - warm_end, 1e-12))
        return jnp.where(step <= warm_end, rising, falling)
    return value


def momentum_schedule(cfg: dict, *, steps_per_epoch: int, total_steps: int) -> optax.Schedule | None:
    """Adam's beta1 under `onecycle` with `momentum=(max, base)`: max -> base while the LR rises, base -> max while
    it falls (torch `cycle_momentum`); None for every other schedule."""
    if cfg.get("name") != "onecycle" or cfg.get("momentum") is None:
        return None
    high, low = (float(m) for m in cfg["momentum"])
    cycle = int(round(cfg["cycle_epochs"] * steps_per_epoch)) if cfg.get("cycle_epochs") else total_steps
    return onecycle_curve(cycle, float(cfg.get("pct_start", 0.3)), high, low, high)


SCHEDULES = Registry("schedule")
for _name, _schedule in (("constant", _constant), ("multistep", _multistep), ("cosine", _cosine),
                         ("onecycle", _onecycle)):
    SCHEDULES.register(_name, _schedule)


def _sgd(lr, *, momentum=0.9, nesterov=False):
    return optax.sgd(lr, momentum=momentum or None, nesterov=nesterov)


def _adam(lr, *, b1=0.9, b2=0.999, eps=1e-8):
    if callable(b1):  # cycled beta1: torch's bias correction 1 - beta1_t^t uses the current beta1, as optax's
        return optax.chain(optax.inject_hyperparams(optax.scale_by_adam)(b1=b1, b2=b2, eps=eps),
                           optax.scale_by_learning_rate(lr))
    return optax.adam(lr, b1=b1, b2=b2, eps=eps)


OPTIMIZERS = Registry("optimizer")
for _name, _optimizer in (("sgd", _sgd), ("adam", _adam), ("adamw", _adam)):
    OPTIMIZERS.register(_name, _optimizer)


def _options(fn, skip=()):
    return [p for p in inspect.signature(fn).parameters if p not in skip and p != "lr"]


def _check(block: dict, valid, where: str) -> None:
    unknown = sorted(set(block) - set(valid))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid keys: {list(valid)}")


def check(optimizer: dict, schedule: dict) -> None:
    """Raises ValueError naming any unknown optimizer / schedule / group key or choice."""
    name = optimizer.get("name")
    try:
        _check(optimizer, list(OPTIMIZER_KEYS) + _options(OPTIMIZERS.get(name)), f"optimizer ({name})")
    except ValueError as e:
        raise ValueError(f"optimizer.name: {e}" if name not in OPTIMIZERS else str(e)) from e
    for group, options in dict(optimizer.get("groups") or {}).items():
        _check(options, GROUP_KEYS, f"optimizer.groups.{group}")
        if "pattern" not in options:
            raise ValueError(f"optimizer.groups.{group}: needs a 'pattern' (regex on parameter paths)")
        if "lr_mult" in options and "base_lr" in options:
            raise ValueError(f"optimizer.groups.{group}: set lr_mult or base_lr, not both")
        if float(options.get("frozen_epochs", 0)) < 0:
            raise ValueError(f"optimizer.groups.{group}: frozen_epochs={options['frozen_epochs']} must be >= 0")
        re.compile(options["pattern"])
    kind = schedule.get("name")
    if kind not in SCHEDULES:
        raise ValueError(f"schedule.name: unknown schedule {kind!r}; valid schedules: {', '.join(SCHEDULES.names())}")
    _check(schedule, ["name"] + _options(SCHEDULES.get(kind), ("steps_per_epoch", "total_steps")),
           f"schedule ({kind})")
    missing = [p.name for p in inspect.signature(SCHEDULES.get(kind)).parameters.values()
               if p.default is inspect.Parameter.empty and p.name not in ("steps_per_epoch", "total_steps")
               and p.name not in schedule]
    if missing:
        raise ValueError(f"schedule ({kind}): missing key(s) {missing}")
    if schedule.get("momentum") is not None:
        if name != "adam":
            raise ValueError(f"schedule.momentum cycles Adam's beta1 (L2D's recipe); optimizer {name!r} is not "
                             "'adam': remove schedule.momentum or use optimizer.name='adam'")
        if len(tuple(schedule["momentum"])) != 2:
            raise ValueError(f"schedule.momentum={schedule['momentum']!r}; expected (max, base), e.g. (0.95, 0.85)")


def make_schedule(cfg: dict, *, steps_per_epoch: int, total_steps: int, base_lr=None) -> optax.Schedule:
    cfg = dict(cfg)
    kind = cfg.pop("name")
    if base_lr is not None:
        cfg["base_lr"] = base_lr
    cfg["base_lr"] = float(cfg["base_lr"])
    return SCHEDULES.get(kind)(steps_per_epoch=steps_per_epoch, total_steps=total_steps, **cfg)


def _decay_mask(params):
    return jax.tree.map(lambda p: p.ndim > 1, params)


def _one(name, kind_options, schedule, weight_decay, exclude_1d, momentum=None):
    mask = _decay_mask if exclude_1d else None
    if momentum is not None:
        kind_options = dict(kind_options, b1=momentum)
    if name == "adamw":
        return optax.adamw(schedule, weight_decay=weight_decay, mask=mask, **kind_options)
    base = OPTIMIZERS.get(name)(schedule, **kind_options)
    return optax.chain(optax.add_decayed_weights(weight_decay, mask), base) if weight_decay else base


def _frozen_for(inner: optax.GradientTransformation, steps: int) -> optax.GradientTransformation:
    """`inner` with no update and an unchanged state for the first `steps` calls."""
    def init(params):
        return jnp.zeros([], jnp.int32), inner.init(params)

    def update(updates, state, params=None):
        count, inner_state = state
        new_updates, new_inner = inner.update(updates, inner_state, params)
        frozen = count < steps
        new_updates = jax.tree.map(lambda u: jnp.where(frozen, jnp.zeros_like(u), u), new_updates)
        new_inner = jax.tree.map(lambda old, new: jnp.where(frozen, old, new), inner_state, new_inner)
        return new_updates, (optax.safe_increment(count), new_inner)
    return optax.GradientTransformation(init, update)


def path_string(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def group_labels(params, groups: dict):
    """Pytree of group names: the first group whose pattern matches the parameter's path, else 'default'."""
    compiled = [(g, re.compile(o["pattern"])) for g, o in groups.items()]

    def label(path, _):
        text = path_string(path)
        return next((g for g, pattern in compiled if pattern.search(text)), DEFAULT_GROUP)
    return jax.tree_util.tree_map_with_path(label, params)


def check_groups_match(params, optimizer: dict) -> None:
    """Every configured group must own at least one parameter (a pattern that matches nothing is a typo)."""
    groups = dict(optimizer.get("groups") or {})
    used = set(jax.tree.leaves(group_labels(params, groups)))
    empty = [g for g in groups if g not in used]
    if empty:
        paths = [path_string(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)]
        raise ValueError(f"optimizer.groups {empty}: pattern matches no parameter; parameter paths look like "
                         f"{paths[:3] + paths[-3:]}")


def make_optimizer(cfg: dict, schedule_cfg: dict, *, steps_per_epoch: int,
                   total_steps: int) -> tuple[optax.GradientTransformation, dict]:
    """Returns (transformation, {group: schedule}); one group ('default') unless `cfg['groups']` adds more."""
    cfg = dict(cfg)
    check(cfg, schedule_cfg)
    name = cfg.pop("name")
    weight_decay = float(cfg.pop("weight_decay", 0.0))
    exclude_1d = bool(cfg.pop("exclude_1d_from_decay", False))
    groups = {g: dict(o) for g, o in dict(cfg.pop("groups", None) or {}).items()}
    base = make_schedule(schedule_cfg, steps_per_epoch=steps_per_epoch, total_steps=total_steps)
    momentum = momentum_schedule(schedule_cfg, steps_per_epoch=steps_per_epoch, total_steps=total_steps)
    schedules = {DEFAULT_GROUP: base}
    transforms = {DEFAULT_GROUP: _one(name, cfg, base, weight_decay, exclude_1d, momentum)}
    for group, options in groups.items():
        if "base_lr" in options:
            schedule = make_schedule(schedule_cfg, steps_per_epoch=steps_per_epoch, total_steps=total_steps,
                                     base_lr=options["base_lr"])
        else:
            mult = float(options.get("lr_mult", 1.0))
            schedule = (lambda s, mult=mult: mult * base(s))
        frozen = int(round(float(options.get("frozen_epochs", 0)) * steps_per_epoch))
        # a frozen group's own step counter starts late: shift it so its LR is the global step's
        shifted = lambda f, k=frozen: (lambda s: f(s + k)) if k and f is not None else f  # noqa: E731
        transform = _one(name, cfg, shifted(schedule), float(options.get("weight_decay", weight_decay)),
                         bool(options.get("exclude_1d_from_decay", exclude_1d)), shifted(momentum))
        if frozen:
            transform = _frozen_for(transform, frozen)
            schedule = (lambda s, f=schedule, k=frozen: jnp.where(s < k, 0.0, f(s)))
        schedules[group] = schedule
        transforms[group] = transform
    if not groups:
        return transforms[DEFAULT_GROUP], schedules
    return optax.multi_transform(transforms, lambda params: group_labels(params, groups)), schedules
