"""The loss-term registry: how a config's `losses` block becomes the objective of a train step.

A config names terms and their weights, e.g. `losses = {'ce': {'weight': 0.1}, 'kd': {'weight': 0.9,
'temperature': 4.0}}`. Every key other than `weight`, `warmup_epochs` and `term` is a keyword argument of the term.
`term` lets one term appear twice under different names: `'ce_strong': {'term': 'ce', 'view': 'image_strong', ...}`.

A term sees, through `TermInputs`:
- the batch (every key the pipeline produced: extra views, dataset indices, contrast indices, ...);
- `views[name]`: the student's and the teacher's outputs and taps on the view `name` ('image', plus every extra view
  a term lists in `views`); outputs are logits, or embeddings under metric learning; teacher outputs are constants;
- the networks as callables, `student_fn(x) -> (outputs, taps)` (differentiable w.r.t. the student parameters,
  BatchNorm on running statistics so examples stay independent) and `teacher_fn(x)` (constant), for Jacobian terms;
- its own trainable parameters and state (regressors, memory banks), created by `init` and carried in the train
  state: optimised and checkpointed with the student, never with the teacher.

A term declares what it reads, so the step, the stage and the pipeline hold no method names: the extra `views`, the
`student_taps` and `teacher_taps` (a term sees only the taps it declares), the `shared_taps` among them that hold
parameters rather than one row per example, whether it calls the teacher as a function (`calls_teacher`), and the
facts about the training data it is built with (`data_facts`: the number of examples or classes, given once by the
trainer when it builds the term). New methods subclass `Term` and register with `@register('name')` in a module of
this package (imported by its `__init__`); the trainer does not change.
"""
import dataclasses
import inspect
from typing import Any, Callable

import jax
import jax.numpy as jnp

from kdjax.registry import Registry

Array = jax.Array
MAIN_VIEW = "image"


@dataclasses.dataclass(frozen=True)
class ViewOutputs:
    """Both networks on one view of the batch: the student in train mode (its BatchNorm on the view's own batch
    statistics, as a PyTorch forward pass per view), the teacher frozen (None without a teacher)."""
    student: Array                 # logits (classification, multi-label) or embeddings (metric learning)
    student_taps: dict
    teacher: Array | None = None
    teacher_taps: dict | None = None


@dataclasses.dataclass(frozen=True)
class TermInputs:
    batch: dict
    views: dict                    # view name -> ViewOutputs: MAIN_VIEW and the extra views the terms asked for
    student_fn: Callable
    teacher_fn: Callable | None
    step: Array
    epoch: Array                   # 1-based epoch index, as in the PyTorch references' warm-up rules
    rng: Array

    @property
    def labels(self) -> Array:
        return self.batch["label"]

    @property
    def student(self) -> Array:
        """The student's outputs on the main view."""
        return self.views[MAIN_VIEW].student

    @property
    def teacher(self) -> Array | None:
        return self.views[MAIN_VIEW].teacher

    @property
    def student_taps(self) -> dict:
        return self.views[MAIN_VIEW].student_taps

    @property
    def teacher_taps(self) -> dict | None:
        return self.views[MAIN_VIEW].teacher_taps


@dataclasses.dataclass(frozen=True)
class DataFacts:
    """What a term may need to know about the training data, given once when terms are built."""
    num_examples: int = 0          # examples in the training split (CRD's memory banks)
    num_classes: int = 0           # classes of the training labels (margin's per-class beta, proxies)


class Term:
    """A loss term. Stateless terms override `loss`; stateful or parametrised ones override `init` and `__call__`."""
    needs_teacher: bool = False
    calls_teacher: bool = False    # calls `inputs.teacher_fn` (Jacobians, a train-mode teacher), not just its outputs
    shared_taps: tuple = ()        # declared taps that hold parameters (BN scale, bias), not a row per example
    data_facts: tuple = ()         # DataFacts fields this term is built with (dataclass fields of the same name)

    @property
    def views(self) -> tuple[str, ...]:
        """The batch views this term reads; each is forwarded through both networks ('image' always is; MLLD adds
        its strong view)."""
        return ()

    @property
    def joint_views(self) -> tuple[str, ...]:
        """Views to forward through the student together with 'image', as one batch (one BatchNorm pass over both
        views, as supervised-contrastive code does) instead of one forward pass per view."""
        return ()

    @property
    def student_taps(self) -> tuple[str, ...]:
        """The student taps this term reads, on any view."""
        return ()

    @property
    def teacher_taps(self) -> tuple[str, ...]:
        """The teacher taps this term reads, on any view."""
        return ()

    def eval_embeddings(self, params, outputs: Array, taps: dict) -> dict[str, Array]:
        """Embeddings this term defines besides the model's output, by name, from the student's evaluation outputs
        and taps and the term's trained params (S2SD's target branches); the retrieval evaluator's `term_heads`
        reports their metrics. None by default."""
        return {}

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


TERMS = Registry("loss term")


def register(name: str):
    def wrap(cls):
        TERMS.register(name, cls)
        cls.term_name = name
        return cls
    return wrap


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


def options_of(cls) -> list[str]:
    """The config options of a term class: its keyword arguments, less the facts the trainer supplies."""
    return [p for p in inspect.signature(cls).parameters if p not in cls.data_facts]


def build_term(name: str, options: dict, facts: DataFacts | None = None) -> WeightedTerm:
    """Builds one term from its config entry; errors name the bad key and the valid choices. Without `facts`
    (validating a config before its data is opened) the data facts stay 0."""
    options = dict(options)
    cls = TERMS.get(options.pop("term", name))
    if "weight" not in options:
        raise ValueError(f"loss term {name!r} has no 'weight'")
    weight = float(options.pop("weight"))
    warmup = float(options.pop("warmup_epochs", 0.0))
    valid = options_of(cls)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"loss term {name!r}: unknown option(s) {unknown}; valid options: "
                         f"{['weight', 'warmup_epochs', 'term'] + valid}")
    if facts is not None:
        options.update({k: getattr(facts, k) for k in cls.data_facts})
    try:
        term = cls(**options)
        term.check_weight(weight)
    except ValueError as e:
        raise ValueError(f"loss term {name!r}: {e}") from e
    return WeightedTerm(name, term, weight, warmup)


def build_terms(config: dict, facts: DataFacts | None = None) -> tuple[WeightedTerm, ...]:
    if not config:
        raise ValueError("a stage needs at least one loss term in `losses`")
    return tuple(build_term(name, opts, facts) for name, opts in config.items())


@dataclasses.dataclass(frozen=True)
class Needs:
    """What a set of terms reads, for the step's forward pass (and, for the teacher, for anything that stores or
    replaces its outputs)."""
    extra_views: tuple[str, ...]
    joint_views: tuple[str, ...]
    student_taps: frozenset
    teacher_taps: frozenset
    shared_taps: frozenset
    calls_teacher: tuple[str, ...]  # names of the terms that call the teacher as a function

    @classmethod
    def of(cls, weighted_terms) -> "Needs":
        terms = [wt.term for wt in weighted_terms]
        return cls(extra_views=tuple(sorted({v for t in terms for v in t.views} - {MAIN_VIEW})),
                   joint_views=tuple(sorted({v for t in terms for v in t.joint_views})),
                   student_taps=frozenset(k for t in terms for k in t.student_taps),
                   teacher_taps=frozenset(k for t in terms for k in t.teacher_taps),
                   shared_taps=frozenset(k for t in terms for k in t.shared_taps),
                   calls_teacher=tuple(wt.name for wt in weighted_terms if wt.term.calls_teacher))
