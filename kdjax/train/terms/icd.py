"""The intra-class contrastive teacher term of "Enriching Knowledge Distillation with Intra-Class Contrastive
Learning" (ICD; anonymous ICLR submission, arXiv 2509.22053): lambda * L_intra of Eq. 5, on top of a `ce` term.

The anchor is a sample's first view (`image`), its positive the second, independently augmented view of the same
image (`image_view2` by default); negatives are other samples of the same class (Sec 3.1-3.2). Only samples whose
margin rho = p_y - max_{i != y} p_i (Eq. 6, the anchor view's softmax at T = 1, no gradient) exceeds
`margin_threshold` enter (Eq. 7); they wait in a per-class pipeline until `capacity` entries can fire together
(Sec 3.3; `kdjax.losses.icd_intra`). The cache is this term's state: checkpointed and restored with the run.
"""
import dataclasses

import jax
import jax.numpy as jnp

from kdjax import losses
from kdjax.train.terms.base import Term, register

EMBEDDINGS = ("logits", "probs", "features")


@register("icd")
@dataclasses.dataclass(frozen=True)
class ICD(Term):
    """Options (kdjax defaults where the paper is silent): `margin_threshold` delta in (-1, 1) (0.5), `embedding`
    f(x) = L2-normalised logits / softmax probabilities / pooled features ('logits'), `temperature` of the
    similarities (0.1; 1.0 = literal Eq. 4), `capacity` entries per class before it fires (8), `view` the positive
    view's batch key, `joint_bn` forwards both views as one batch through BatchNorm (supervised-contrastive style;
    default: one forward pass per view), `tap` the pooled-feature tap for embedding='features'. The weight is
    lambda (paper: 0.01-0.03) and must be >= 0."""
    margin_threshold: float = 0.5
    embedding: str = "logits"
    temperature: float = 0.1
    capacity: int = 8
    view: str = "image_view2"
    joint_bn: bool = False
    tap: str = "pooled"

    def __post_init__(self):
        if not -1.0 < self.margin_threshold < 1.0:
            raise ValueError(f"icd: margin_threshold={self.margin_threshold}; the margin rho lies in [-1, 1], so the "
                             "threshold must lie in (-1, 1)")
        if self.embedding not in EMBEDDINGS:
            raise ValueError(f"icd: embedding={self.embedding!r}; valid: {', '.join(EMBEDDINGS)}")
        if self.capacity < 2:
            raise ValueError(f"icd: capacity={self.capacity}; it must be >= 2")
        if self.temperature <= 0:
            raise ValueError(f"icd: temperature={self.temperature} must be > 0")

    def check_weight(self, weight):
        if weight < 0:
            raise ValueError(f"weight (lambda) {weight} < 0; lambda = 0 is the CE teacher, the paper uses 0.01-0.03")

    @property
    def views(self):
        return (self.view,)

    @property
    def joint_views(self):
        return (self.view,) if self.joint_bn else ()

    @property
    def student_taps(self):
        return (self.tap,) if self.embedding == "features" else ()

    def _embed(self, logits, taps):
        if self.embedding == "logits":
            return logits
        if self.embedding == "probs":
            return jax.nn.softmax(logits, axis=-1)
        return taps[self.tap].reshape(logits.shape[0], -1)

    def init(self, rng, inputs):
        dim = self._embed(inputs.student, inputs.student_taps).shape[-1]
        return {}, losses.icd_init_cache(inputs.student.shape[-1], dim, capacity=self.capacity)

    def __call__(self, inputs, params, state):
        labels = inputs.labels
        rho = losses.icd_margin(jax.lax.stop_gradient(inputs.student), labels)
        qualifies = rho > self.margin_threshold
        second = inputs.views[self.view]
        anchor = self._embed(inputs.student, inputs.student_taps)
        positive = self._embed(second.student, second.student_taps)
        fires, per_class, _ = losses.icd_fire_plan(labels, qualifies, state)
        loss, new_state = losses.icd_intra(anchor, positive, labels, qualifies, state, temperature=self.temperature)
        fired = jnp.sum(jnp.where(fires, state["count"] + per_class, 0)).astype(jnp.float32)
        stats = {"qualifying": jnp.sum(qualifies).astype(jnp.float32),
                 "classes_fired": jnp.sum(fires).astype(jnp.float32), "anchors_fired": fired,
                 "fired_per_example": fired / labels.shape[0],  # cached entries count: it can exceed 1
                 "cached": jnp.sum(new_state["count"]).astype(jnp.float32)}
        return loss, new_state, stats
