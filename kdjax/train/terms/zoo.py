"""Terms of the single-label KD zoo that need no learnable modules: DKD, AT, RKD, PKT (mdistiller / RepDistiller
recipes).

Weights and warm-ups come from the config entry (e.g. DKD: `dict(weight=1.0, warmup_epochs=20, beta=8.0)`).
"""
import dataclasses

from kdjax import losses
from kdjax.train.terms.base import Term, register


@register("dkd")
@dataclasses.dataclass(frozen=True)
class DKD(Term):
    """Decoupled KD; `logit_stand=True` standardizes both logits first (Sun et al. 2024)."""
    alpha: float = 1.0
    beta: float = 8.0
    temperature: float = 4.0
    logit_stand: bool = False
    needs_teacher = True

    def loss(self, inputs):
        return losses.dkd(inputs.student, inputs.teacher, inputs.labels, alpha=self.alpha, beta=self.beta,
                          temperature=self.temperature, logit_stand=self.logit_stand)


@register("at")
@dataclasses.dataclass(frozen=True)
class AttentionTransfer(Term):
    """mdistiller AT: post-ReLU stage outputs `feats[first:]` of both nets, zipped; weight 1000 in the recipes."""
    p: float = 2.0
    first: int = 1
    mode: str = "code"
    tap: str = "feats"
    needs_teacher = True

    @property
    def student_taps(self):
        return (self.tap,)

    teacher_taps = student_taps

    def loss(self, inputs):
        return losses.attention_transfer(inputs.student_taps[self.tap][self.first:],
                                         inputs.teacher_taps[self.tap][self.first:], p=self.p, mode=self.mode)


@register("rkd")
@dataclasses.dataclass(frozen=True)
class RKD(Term):
    """`distance_reduction='rows'`: L2D's multi-label RKD (distance term summed / B, weights 10 and 10)."""
    distance_weight: float = 25.0
    angle_weight: float = 50.0
    distance_reduction: str = "mean"
    tap: str = "pooled"
    needs_teacher = True

    @property
    def student_taps(self):
        return (self.tap,)

    teacher_taps = student_taps

    def loss(self, inputs):
        return losses.rkd(inputs.student_taps[self.tap], inputs.teacher_taps[self.tap],
                          distance_weight=self.distance_weight, angle_weight=self.angle_weight,
                          distance_reduction=self.distance_reduction)


@register("pkt")
@dataclasses.dataclass(frozen=True)
class PKT(Term):
    tap: str = "pooled"
    needs_teacher = True

    @property
    def student_taps(self):
        return (self.tap,)

    teacher_taps = student_taps

    def loss(self, inputs):
        return losses.pkt(inputs.student_taps[self.tap], inputs.teacher_taps[self.tap])
