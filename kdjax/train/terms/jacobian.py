"""Terms of the Jacobian-matching paper (Srinivas & Fleuret, ICML 2018): Jacobian matching, Jacobian-norm penalty, attention
matching, attention-map Jacobians and LwF-style transfer.

They call the networks through `TermInputs.student_fn` / `teacher_fn`, whose BatchNorm uses running statistics,
so every Jacobian is per-example. The student's outputs for the other terms still come from the
train-mode forward pass.
"""
import dataclasses
from typing import Any

import jax.numpy as jnp

from kdjax import losses
from kdjax.losses import jacobian as jac
from kdjax.train.terms.base import Term, register


def _selector(value):
    """Config-friendly tap selector: 'pooled', ('feats', 2) or 'feats.2' -> a `select_tap` path."""
    if isinstance(value, str) and "." in value:
        return tuple(int(p) if p.isdigit() else p for p in value.split("."))
    if isinstance(value, list):
        return tuple(value)
    return value


def _tap_name(value) -> str:
    selector = _selector(value)
    return selector if isinstance(selector, str) else selector[0]


@register("jacobian_matching")
@dataclasses.dataclass(frozen=True)
class JacobianMatching(Term):
    """||grad_x z^s_c - grad_x z^t_c||^2 (Sec 4.1, 10.2); see `kdjax.losses.jacobian_matching`."""
    select: str = "label"
    normalize: bool = False
    reduction: str = "sum"
    needs_teacher = calls_teacher = True

    def loss(self, inputs):
        return losses.jacobian_matching(inputs.student_fn, inputs.teacher_fn, inputs.batch["image"], inputs.labels,
                                        select=self.select, normalize=self.normalize, reduction=self.reduction)


@register("jacobian_matching_jvp")
@dataclasses.dataclass(frozen=True)
class JacobianMatchingJvp(Term):
    """All-outputs Jacobian match, forward-mode unbiased estimate (kdjax extension, not in the paper)."""
    num_tangents: int = 1
    sigma: float = 1.0
    needs_teacher = calls_teacher = True

    def loss(self, inputs):
        return losses.jacobian_matching_jvp(inputs.student_fn, inputs.teacher_fn, inputs.batch["image"], inputs.rng,
                                            num_tangents=self.num_tangents, sigma=self.sigma)


@register("jacobian_norm")
@dataclasses.dataclass(frozen=True)
class JacobianNorm(Term):
    """||grad_x z_y||^2 (Sec 4, Table 2): the noise-robustness regulariser; no teacher."""
    output: str = "label"
    num_tangents: int = 1

    def loss(self, inputs):
        return losses.jacobian_norm_penalty(inputs.student_fn, inputs.batch["image"], inputs.labels,
                                            output=self.output, key=inputs.rng, num_tangents=self.num_tangents)


@register("attention_matching")
@dataclasses.dataclass(frozen=True)
class AttentionMatching(Term):
    """Attention transfer between paired taps (Eq. 9 with mode='paper'; mode='code' = mdistiller AT)."""
    student_layers: Any = ("feats.1",)
    teacher_layers: Any = ("feats.1",)
    mode: str = "paper"
    p: float = 2.0
    needs_teacher = True

    @property
    def student_taps(self):
        return tuple({_tap_name(l) for l in self.student_layers})

    @property
    def teacher_taps(self):
        return tuple({_tap_name(l) for l in self.teacher_layers})

    def loss(self, inputs):
        s = [jac.select_tap(inputs.student_taps, _selector(l)) for l in self.student_layers]
        t = [jac.select_tap(inputs.teacher_taps, _selector(l)) for l in self.teacher_layers]
        return losses.attention_transfer(s, t, p=self.p, mode=self.mode)


@register("attention_jacobian")
@dataclasses.dataclass(frozen=True)
class AttentionJacobian(Term):
    """Normalised Jacobians of the teacher's peak attention pixel (Sec 5.2.1, Eq. 10)."""
    student_layer: Any = "feats.1"
    teacher_layer: Any = "feats.1"
    window_fraction: float = 0.2
    needs_teacher = calls_teacher = True

    def loss(self, inputs):
        return losses.attention_jacobian_matching(inputs.student_fn, inputs.teacher_fn, inputs.batch["image"],
                                                  layer=_selector(self.student_layer),
                                                  teacher_layer=_selector(self.teacher_layer),
                                                  window_fraction=self.window_fraction)


@register("lwf")
@dataclasses.dataclass(frozen=True)
class LwF(Term):
    """Learning-without-forgetting transfer: the student's `head` tap (an extra classifier with the teacher's
    classes) matches the teacher's outputs on the new-task images.

    form='squared_error': per-example sum of squared logit differences, mean over the batch (the Jacobian paper's
    reading, Sec 6.3, kdjax default); form='kd_ce': LwF's (Li & Hoiem) temperature-softened cross-entropy, T = 2,
    computed as KL(p_t || p_s) without the T^2 factor: it differs from the cross-entropy by the teacher's entropy,
    a constant, so the gradients are LwF's.
    """
    head: str = "aux_logits"
    form: str = "squared_error"
    temperature: float = 2.0
    needs_teacher = True

    @property
    def student_taps(self):
        return (self.head,)

    def loss(self, inputs):
        old_head = inputs.student_taps[self.head]
        if self.form == "squared_error":
            return jnp.mean(jnp.sum(jnp.square(old_head - inputs.teacher), axis=-1))
        if self.form == "kd_ce":
            return losses.kd(old_head, inputs.teacher, temperature=self.temperature) / self.temperature**2
        raise ValueError(f"lwf: form={self.form!r}; valid: 'squared_error', 'kd_ce'")
