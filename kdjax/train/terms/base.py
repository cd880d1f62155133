"""The loss-term registry: how a config's `losses` block becomes the objective of a train step.

A config names terms and their weights, e.g. `losses = {'ce': {'weight': 0.1}, 'kd': {'weight': 0.9,
'temperature': 4.0}}`. Every key other than `weight`, `warmup_epochs` and `term` is a keyword argument of the term.
`term` lets one term appear twice under different names: `'ce_strong': {'term': 'ce', 'view': 'image_strong', ...}`.

A term sees everything a distillation method can need, through `TermInputs`:
- the batch (every key the pipeline produced: extra views, dataset indices, contrast indices, ...);
- the student's and the teacher's `(logits, taps)` on `batch['image']` (teacher outputs are already constant);
- the networks as callables, `student_fn(x) -> (logits, taps)` (differentiable w.r.t. the student parameters,
  BatchNorm on running statistics so examples stay independent) and `teacher_fn(x)` (constant), for Jacobian terms
  and extra views;
- the term's own trainable parameters and state (regressors, memory banks), created by `init` and carried in the
  train state: parameters are optimised and checkpointed with the student, never with the teacher.
New methods subclass `Term` and register with `@register('name')` in a module of this package (imported by its
`__init__`); the trainer does not change.
"""
import dataclasses
import inspect
from typing import Any, Callable

import jax
import jax.numpy as jnp


Array = jax.Array


@dataclasses.dataclass(frozen=True)
class ViewOutputs:
    """Both networks on one extra view of the batch: the student in train mode (its BatchNorm on the view's own
    batch statistics, as a second PyTorch forward pass), the teacher frozen."""
    student_logits: Array
    student_taps: dict
    teacher_logits: Array | None
    teacher_taps: dict | None


@dataclasses.dataclass(frozen=True)
class TermInputs:
    batch: dict
    student_logits: Array
    student_taps: dict
    teacher_logits: Array | None
    teacher_taps: dict | None
    student_fn: Callable
    teacher_fn: Callable | None
    step: Array
    epoch: Array   # 1-based epoch index, as in the PyTorch references' warm-up rules
    rng: Array
    views: dict = dataclasses.field(default_factory=dict)  # extra views the terms asked for: key -> ViewOutputs
    dataset_size: int = 0  # examples in the training split (the size of CRD's memory banks)
    num_classes: int = 0   # classes of the training labels (per-class parameters: margin beta, proxies)

    @property
    def labels(self) -> Array:
        return self.batch["label"]


class Term:
    """A loss term. Stateless terms override `loss`; stateful or parametrised ones override `init` and `__call__`."""
    needs_teacher: bool = False

    @property
    def views(self) -> tuple[str, ...]:
        """Batch keys other than 'image' this term needs forwarded through both networks (e.g. MLLD's strong view)."""
        return ()

    @property
    def joint_views(self) -> tuple[str, ...]:
        """Views to forward through the student together with 'image', as one batch (one BatchNorm pass over both
        views, as supervised-contrastive code does) instead of one forward pass per view."""
        return ()

    def check_weight(self, weight: float) -> None:
        """Raises ValueError for a weight this term does not accept (e.g. a negative lambda)."""

    def init(self, rng: Array, inputs: TermInputs) -> tuple[Any, Any]:
        """Returns (trainable params, non-trainable state) of this term."""
        return {}, {}

    def loss(self, inputs: TermInputs) -> Array:
        raise NotImplementedError

    def __call__(self, inputs: TermInputs, params, state) -> tuple[Array, Any, dict]:
        """Returns (unweighted scalar loss, new state, extra metrics)."""
        return self.loss(inputs), state, {}


REGISTRY: dict[str, type] = {}


def register(name: str):
    def wrap(cls):
        if name in REGISTRY:
            raise ValueError(f"loss term {name!r} registered twice")
        REGISTRY[name] = cls
        cls.term_name = name
        return cls
    return wrap


def term_names() -> list[str]:
    return sorted(REGISTRY)


@dataclasses.dataclass(frozen=True)
class WeightedTerm:
    name: str
    term: Term
    weight: float
    warmup_epochs: float = 0.0

    def factor(self, epoch: Array) -> Array:
        """weight * min(epoch / warmup_epochs, 1), epoch 1-based (DKD / ReviewKD warm-up)."""
        if not self.warmup_epochs:
            return jnp.float32(self.weight)
        return self.weight * jnp.minimum(epoch / self.warmup_epochs, 1.0)


def build_term(name: str, options: dict) -> WeightedTerm:
    """Builds one term from its config entry; errors name the bad key and the valid choices."""
    options = dict(options)
    kind = options.pop("term", name)
    if kind not in REGISTRY:
        raise ValueError(f"Unknown loss term {kind!r}; valid loss terms: {', '.join(term_names())}")
    if "weight" not in options:
        raise ValueError(f"loss term {name!r} has no 'weight'")
    weight = float(options.pop("weight"))
    warmup = float(options.pop("warmup_epochs", 0.0))
    cls = REGISTRY[kind]
    valid = [p for p in inspect.signature(cls).parameters]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"loss term {name!r}: unknown option(s) {unknown}; valid options: "
                         f"{['weight', 'warmup_epochs', 'term'] + valid}")
    try:
        term = cls(**options)
        term.check_weight(weight)
    except ValueError as e:
        raise ValueError(f"loss term {name!r}: {e}") from e
    return WeightedTerm(name, term, weight, warmup)


def build_terms(config: dict) -> list[WeightedTerm]:
    if not config:
        raise ValueError("a stage needs at least one loss term in `losses`")
    return [build_term(name, opts) for name, opts in config.items()]
