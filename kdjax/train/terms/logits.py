"""Terms on logits: cross-entropy, Hinton KD (optionally standardized, Sun et al. 2024), logit MSE, activation
matching (squared error of logits), DIST, and CTKD's learnable curriculum temperature on KD or DKD."""
import dataclasses

import jax.numpy as jnp

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
    """Hinton KD at `temperature`; `logit_stand=True` standardizes both logits first (Sun et al. 2024: their runs
    use T = 2 or 3 and weight 9, with CE weight 1)."""
    temperature: float = 4.0
    logit_stand: bool = False
    needs_teacher = True

    def loss(self, inputs):
        return losses.kd(inputs.student, inputs.teacher, temperature=self.temperature, logit_stand=self.logit_stand)


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


@register("dist")
@dataclasses.dataclass(frozen=True)
class DIST(Term):
    """DIST's inter- and intra-class relations (`losses.dist`); its CIFAR recipe: tau 4, weight 2 beside CE 1."""
    beta: float = 1.0
    gamma: float = 1.0
    tau: float = 1.0
    needs_teacher = True

    def loss(self, inputs):
        return losses.dist(inputs.student, inputs.teacher, beta=self.beta, gamma=self.gamma, tau=self.tau)


KD_TYPES = ("kd", "dkd")


@register("ctkd")
@dataclasses.dataclass(frozen=True)
class CTKD(Term):
    """Curriculum temperature KD (Li et al., AAAI 2023; reference: zhengli97/CTKD helper/loops.py): KD (or DKD,
    `kd_type='dkd'` with `dkd_alpha`, `dkd_beta`) at a learnable global temperature T = t_start + t_range *
    sigmoid(g), g initialised to 1 and trained with the student (weight decay included, as the official SGD does)
    through a gradient reversal whose factor follows the cosine curriculum lambda(epoch) from `decay_max` to
    `decay_min` over `decay_loops` epochs (`losses.ctkd_lambda`, `losses.ctkd_temperature`). Logs T and lambda every
    step (`ctkd/temperature`, `ctkd/lambda`). `logit_stand=True`: standardized logits (Sun et al. 2024's CTKD row).
    Difference from the official code: lambda follows kdjax's 1-based epoch of each step, as the official per-epoch
    value does; nothing else (T is bounded by the sigmoid, as there, with no further clamping)."""
    kd_type: str = "kd"
    t_start: float = 1.0
    t_range: float = 20.0
    decay_max: float = 0.0
    decay_min: float = -1.0
    decay_loops: float = 10.0
    dkd_alpha: float = 1.0
    dkd_beta: float = 2.0
    logit_stand: bool = False
    needs_teacher = True

    def __post_init__(self):
        if self.kd_type not in KD_TYPES:
            raise ValueError(f"ctkd: kd_type={self.kd_type!r}; valid: {', '.join(KD_TYPES)}")
        if self.t_start <= 0 or self.t_range < 0 or self.decay_loops <= 0:
            raise ValueError(f"ctkd: t_start={self.t_start} must be > 0, t_range={self.t_range} >= 0 and "
                             f"decay_loops={self.decay_loops} > 0")

    def init(self, rng, inputs):
        return {"global_t": jnp.ones((1,), jnp.float32)}, {}

    def __call__(self, inputs, params, state):
        lam = losses.ctkd_lambda(inputs.epoch, max_value=self.decay_max, min_value=self.decay_min,
                                 num_loops=self.decay_loops)
        t = losses.ctkd_temperature(params["global_t"][0], lam, t_start=self.t_start, t_range=self.t_range)
        if self.kd_type == "kd":
            value = losses.kd(inputs.student, inputs.teacher, temperature=t, logit_stand=self.logit_stand)
        else:
            value = losses.dkd(inputs.student, inputs.teacher, inputs.labels, alpha=self.dkd_alpha,
                               beta=self.dkd_beta, temperature=t, logit_stand=self.logit_stand)
        return value, state, {"temperature": t, "lambda": lam}
