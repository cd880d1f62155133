"""Terms on logits: cross-entropy, Hinton KD, logit MSE, activation matching (squared error of logits)."""
import dataclasses

from kdjax import losses
from kdjax.train.terms.base import MAIN_VIEW, Term, register


@register("ce")
@dataclasses.dataclass(frozen=True)
class CrossEntropy(Term):
    """CE on the labels; `view` names another batch view (MLLD's CE on the strong view)."""
    label_smoothing: float = 0.0
    view: str = MAIN_VIEW

    @property
    def views(self):
        return (self.view,)

    def loss(self, inputs):
        return losses.cross_entropy(inputs.views[self.view].student, inputs.labels,
                                    label_smoothing=self.label_smoothing)


@register("kd")
@dataclasses.dataclass(frozen=True)
class KD(Term):
    temperature: float = 4.0
    needs_teacher = True

    def loss(self, inputs):
        return losses.kd(inputs.student, inputs.teacher, temperature=self.temperature)


@register("logit_mse")
@dataclasses.dataclass(frozen=True)
class LogitMSE(Term):
    needs_teacher = True

    def loss(self, inputs):
        return losses.logit_mse(inputs.student, inputs.teacher)


@register("activation_matching")
@dataclasses.dataclass(frozen=True)
class ActivationMatching(Term):
    """Squared error of pre-softmax activations ("match activations", LwF-style; Srinivas & Fleuret, ICML 2018).

    reduction='sum': per-example sum over the K logits, mean over the batch (their Prop. 1's form, kdjax default);
    'mean': mean over all elements.
    """
    reduction: str = "sum"
    needs_teacher = True

    def loss(self, inputs):
        value = losses.logit_mse(inputs.student, inputs.teacher)
        return value * inputs.student.shape[-1] if self.reduction == "sum" else value

    def __post_init__(self):
        if self.reduction not in ("sum", "mean"):
            raise ValueError(f"activation_matching: reduction={self.reduction!r}; valid: 'sum', 'mean'")
