"""Terms of multi-label classifiers (multi-hot labels [B, C]): the task loss and the multi-label distillation terms
of the 3D paper's comparison (MLD, LED, PS, MSE, PD, NDD).

`teacher_view` (distillation terms): the batch view whose teacher logits the term distils ('image' by default, L2D's
single view; 'image_weak' for the supplement's weak view, `configs/multilabel/common.views_block`). NDD with
`pairs='views'` pairs each image's 'image' and `second_view` predictions (both networks see both views).
Every term logs its unweighted value (the trainer does); NDD also logs its number of valid pairs.
"""
import dataclasses
import zlib

import jax
import jax.numpy as jnp

from kdjax import losses
from kdjax.train.terms.base import MAIN_VIEW, Term, register


def _targets(inputs, term):
    if inputs.labels.ndim != 2:
        raise ValueError(f"{term}: needs multi-hot labels [B, C], got labels of shape {inputs.labels.shape} "
                         "(a multilabel task and dataset)")
    return inputs.labels


@register("focal")
@dataclasses.dataclass(frozen=True)
class Focal(Term):
    """Focal BCE summed over the batch and the labels; `gamma=0` is L2D's BCE-sum task loss (configs name it
    `'bce': {'term': 'focal', 'gamma': 0.0, ...}`), `gamma=2` kdjax's reading of the 3D paper's gamma_b (see
    `losses.focal_bce`)."""
    gamma: float = 2.0

    def __post_init__(self):
        if self.gamma < 0:
            raise ValueError(f"focal: gamma={self.gamma} must be >= 0")

    def loss(self, inputs):
        return losses.focal_bce(inputs.student, _targets(inputs, "focal"), gamma=self.gamma)


@dataclasses.dataclass(frozen=True)
class _Distill(Term):
    teacher_view: str = MAIN_VIEW
    needs_teacher = True

    @property
    def views(self):
        return (self.teacher_view,)

    def teacher_logits(self, inputs):
        return inputs.views[self.teacher_view].teacher


@register("mld")
@dataclasses.dataclass(frozen=True)
class MLD(_Distill):
    eps: float = 1e-8

    def loss(self, inputs):
        return losses.mld(inputs.student, self.teacher_logits(inputs), eps=self.eps)


@register("led")
@dataclasses.dataclass(frozen=True)
class LED(Term):
    """L2D's label-wise embedding distillation on the ML-Decoder's `label_embeddings` taps [B, C, E]."""
    cd_weight: float = 100.0
    id_weight: float = 1000.0
    needs_teacher = True
    student_taps = teacher_taps = ("label_embeddings",)

    def loss(self, inputs):
        taps = [t.get("label_embeddings") for t in (inputs.student_taps, inputs.teacher_taps)]
        if any(t is None for t in taps):
            raise ValueError("led: both networks need the ML-Decoder head (model.head='ml_decoder'), whose "
                             "`label_embeddings` it distils")
        return losses.led(*taps, _targets(inputs, "led"), cd_weight=self.cd_weight, id_weight=self.id_weight)


@register("ps")
@dataclasses.dataclass(frozen=True)
class PartialSoftmax(_Distill):
    def loss(self, inputs):
        return losses.partial_softmax(inputs.student, self.teacher_logits(inputs), _targets(inputs, "ps"))


@register("ml_mse")
@dataclasses.dataclass(frozen=True)
class MultiLabelMSE(_Distill):
    on: str = "logits"

    def __post_init__(self):
        if self.on not in ("logits", "probs"):
            raise ValueError(f"ml_mse: on={self.on!r}; valid: 'logits', 'probs'")

    def loss(self, inputs):
        return losses.multilabel_mse(inputs.student, self.teacher_logits(inputs), on=self.on)


@register("pd")
@dataclasses.dataclass(frozen=True)
class PositiveDivide(_Distill):
    temperature: float = 4.0
    reduction: str = "pairs"
    tau_sq: bool = True
    form: str = "softmax"

    def __post_init__(self):
        if self.reduction not in losses.multilabel.PD_REDUCTIONS or self.form not in losses.multilabel.PD_FORMS:
            raise ValueError(f"pd: reduction={self.reduction!r} (valid: {list(losses.multilabel.PD_REDUCTIONS)}), "
                             f"form={self.form!r} (valid: {list(losses.multilabel.PD_FORMS)})")

    def loss(self, inputs):
        return losses.positive_divide(inputs.student, self.teacher_logits(inputs), _targets(inputs, "pd"),
                                      temperature=self.temperature, reduction=self.reduction, tau_sq=self.tau_sq,
                                      form=self.form)


@register("ndd")
@dataclasses.dataclass(frozen=True)
class NegativeDiscrepancy(_Distill):
    temperature: float = 4.0
    pairs: str = "images"
    reduction: str = "pairs"
    tau_sq: bool = False
    negatives: str = "labels"
    form: str = "exact"
    second_view: str = "image_weak"

    def __post_init__(self):
        m = losses.multilabel
        for name, value, valid in (("pairs", self.pairs, m.NDD_PAIRS), ("reduction", self.reduction, m.NDD_REDUCTIONS),
                                   ("negatives", self.negatives, m.NDD_NEGATIVES), ("form", self.form, m.NDD_FORMS)):
            if value not in valid:
                raise ValueError(f"ndd: {name}={value!r}; valid: {list(valid)}")

    @property
    def views(self):
        extra = (self.second_view,) if self.pairs == "views" else ()
        return tuple(dict.fromkeys(super().views + extra))

    def __call__(self, inputs, params, state):
        targets = _targets(inputs, "ndd")
        student, teacher, partner = inputs.student, self.teacher_logits(inputs), None
        if self.pairs == "views":
            second = inputs.views[self.second_view]
            student = jnp.stack([student, second.student])
            teacher = jnp.stack([teacher, second.teacher])
            valid = jnp.sum(jnp.any(targets == 0, axis=-1))
        elif self.pairs == "permutation":
            key = jax.random.fold_in(inputs.rng, zlib.crc32(b"ndd") & 0x7FFFFFFF)
            partner = jax.random.permutation(key, student.shape[0])
            negative = targets == 0
            valid = jnp.sum(jnp.any(negative & negative[partner], axis=-1) & (partner != jnp.arange(len(partner))))
        else:
            valid = losses.ndd_valid_pairs(targets)
        value = losses.negative_discrepancy(student, teacher, targets, temperature=self.temperature, pairs=self.pairs,
                                            reduction=self.reduction, tau_sq=self.tau_sq, negatives=self.negatives,
                                            form=self.form, partner=partner)
        return value, state, {"ndd_valid_pairs": valid.astype(jnp.float32)}
