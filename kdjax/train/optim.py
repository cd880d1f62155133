"""Optimisers and learning-rate schedules from a config block.

Schedules are functions of the optimiser step; epoch-based rules (milestones) are converted with steps_per_epoch so
that "epoch e uses base * 0.1^(milestones strictly below e), epochs numbered from 1" (mdistiller/RepDistiller)
holds exactly: the LR drops at the first step of epoch milestone + 1.
Weight decay: `sgd` and `adam` add it to the gradient before the update (PyTorch `weight_decay`, coupled);
`adamw` decays decoupled. `exclude_1d_from_decay` leaves biases and BatchNorm scales/offsets undecayed (PyTorch
references decay every parameter, hence False by default).
"""
import jax
import optax

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "multistep", "cosine", "onecycle")


def make_schedule(cfg, *, steps_per_epoch: int, total_steps: int) -> optax.Schedule:
    name = cfg.name
    base = float(cfg.base_lr)
    if name == "constant":
        return optax.constant_schedule(base)
    if name == "multistep":
        boundaries = {int(m) * steps_per_epoch: float(cfg.get("decay_factor", 0.1)) for m in cfg.milestones}
        return optax.piecewise_constant_schedule(base, boundaries)
    if name == "cosine":
        warmup = int(cfg.get("warmup_epochs", 0) * steps_per_epoch)
        return optax.warmup_cosine_decay_schedule(0.0 if warmup else base, base, warmup, max(total_steps, warmup + 1),
                                                  end_value=float(cfg.get("end_lr", 0.0)))
    if name == "onecycle":
        return optax.cosine_onecycle_schedule(total_steps, base, pct_start=float(cfg.get("pct_start", 0.3)))
    raise ValueError(f"Unknown schedule {name!r}; valid schedules: {', '.join(SCHEDULES)}")


def _decay_mask(params):
    return jax.tree.map(lambda p: p.ndim > 1, params)


def make_optimizer(cfg, schedule: optax.Schedule) -> optax.GradientTransformation:
    name = cfg.name
    wd = float(cfg.get("weight_decay", 0.0))
    mask = _decay_mask if cfg.get("exclude_1d_from_decay", False) else None
    if name == "adamw":
        return optax.adamw(schedule, b1=cfg.get("b1", 0.9), b2=cfg.get("b2", 0.999), weight_decay=wd, mask=mask)
    if name == "sgd":
        base = optax.sgd(schedule, momentum=cfg.get("momentum", 0.9) or None, nesterov=cfg.get("nesterov", False))
    elif name == "adam":
        base = optax.adam(schedule, b1=cfg.get("b1", 0.9), b2=cfg.get("b2", 0.999))
    else:
        raise ValueError(f"Unknown optimizer {name!r}; valid optimizers: {', '.join(OPTIMIZERS)}")
    if not wd:
        return base
    return optax.chain(optax.add_decayed_weights(wd, mask), base)
