"""Deep-metric-learning terms on the model's (L2-normalised) embeddings: margin with a distance-weighted or
rho-distance miner, multi-similarity, ProxyAnchor (Roth et al.'s Revisiting-DML criteria; reference:
MLforHealth/S2SD criteria/, batchminer/).

Learnable loss parameters (the margin's per-class beta, ProxyAnchor's proxies) are this term's parameters: optimised,
checkpointed and restored with the model; give them their own learning rate through an optimizer group
(`pattern='^terms/margin/'`). Each term logs what it mined: active triplets or valid anchors, and the fraction of
non-zero terms, so a loss stuck at 0 (every margin satisfied) is visible.
"""
import dataclasses
import zlib

import jax
import jax.numpy as jnp

from kdjax import losses
from kdjax.train.terms.base import Term, register


def _key(inputs, name):
    return jax.random.fold_in(inputs.rng, zlib.crc32(name.encode()) & 0x7FFFFFFF)


def _num_classes(term, inputs):
    if not inputs.num_classes:
        raise ValueError(f"{term}: the number of training classes is unknown (TermInputs.num_classes = 0)")
    return inputs.num_classes


@register("multisimilarity")
@dataclasses.dataclass(frozen=True)
class MultiSimilarity(Term):
    """Multi-similarity loss with its mining (alpha 2, beta 40, base 0.5, epsilon 0.1: Roth's and the paper's)."""
    alpha: float = 2.0
    beta: float = 40.0
    base: float = 0.5
    epsilon: float = 0.1

    def __call__(self, inputs, params, state):
        e, labels = inputs.student_logits, inputs.labels
        loss = losses.multi_similarity(e, labels, alpha=self.alpha, beta=self.beta, base=self.base,
                                       epsilon=self.epsilon)
        pos, neg = losses.multi_similarity_masks(e @ e.T, labels, epsilon=self.epsilon)
        valid = jnp.any(pos, axis=1) & jnp.any(neg, axis=1)
        return loss, state, {"active_anchors": jnp.sum(valid).astype(jnp.float32),
                             "fraction_nonzero": jnp.mean(valid), "mined_positives": jnp.sum(pos).astype(jnp.float32),
                             "mined_negatives": jnp.sum(neg).astype(jnp.float32)}


@register("margin")
@dataclasses.dataclass(frozen=True)
class Margin(Term):
    """Margin loss with a learnable beta per training class (init `beta_init`, 1.2), distance-weighted negatives
    (`lower_cutoff` 0.5; `upper_cutoff` None = Roth's code, 1.4 = PML's)."""
    margin: float = 0.2
    beta_init: float = 1.2
    lower_cutoff: float = 0.5
    upper_cutoff: float | None = None

    def init(self, rng, inputs):
        return {"beta": jnp.full((_num_classes("margin", inputs),), self.beta_init, jnp.float32)}, {}

    def _triplets(self, inputs):
        return losses.distance_weighted_triplets(_key(inputs, "margin"), inputs.student_logits, inputs.labels,
                                                 lower_cutoff=self.lower_cutoff, upper_cutoff=self.upper_cutoff)

    def __call__(self, inputs, params, state):
        triplets, valid = self._triplets(inputs)
        loss, stats = losses.margin(inputs.student_logits, inputs.labels, triplets, params["beta"],
                                    margin=self.margin, valid=valid)
        return loss, state, dict(stats, mean_beta=jnp.mean(params["beta"]))


@register("rmargin")
@dataclasses.dataclass(frozen=True)
class RegularisedMargin(Margin):
    """Margin loss with the rho-distance miner: with probability `p_switch` a triplet (a, a, p') pushes a positive
    pair apart (S2SD supplement: 0.4 CUB, 0.35 CARS, 0.15 SOP for ResNet backbones)."""
    p_switch: float = 0.4

    def __post_init__(self):
        if not 0.0 <= self.p_switch <= 1.0:
            raise ValueError(f"rmargin: p_switch={self.p_switch} must lie in [0, 1]")

    def _triplets(self, inputs):
        return losses.rho_distance_triplets(_key(inputs, "rmargin"), inputs.student_logits, inputs.labels,
                                            p_switch=self.p_switch, lower_cutoff=self.lower_cutoff)


@register("proxyanchor")
@dataclasses.dataclass(frozen=True)
class ProxyAnchor(Term):
    """ProxyAnchor with one proxy per training class, initialised N(0, 1) / 8 (Roth's oproxy); alpha 32, delta 0.1.
    Its proxies train with base LR x 2000 in the S2SD runs (an optimizer group)."""
    alpha: float = 32.0
    delta: float = 0.1

    def init(self, rng, inputs):
        shape = (_num_classes("proxyanchor", inputs), inputs.student_logits.shape[-1])
        return {"proxies": jax.random.normal(rng, shape, jnp.float32) / 8.0}, {}

    def __call__(self, inputs, params, state):
        loss = losses.proxy_anchor(inputs.student_logits, inputs.labels, params["proxies"], alpha=self.alpha,
                                   delta=self.delta)
        present = jnp.zeros(params["proxies"].shape[0], bool).at[inputs.labels].set(True)
        return loss, state, {"positive_proxies": jnp.sum(present).astype(jnp.float32)}
