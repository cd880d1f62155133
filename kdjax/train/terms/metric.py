"""Deep-metric-learning terms on the model's (L2-normalised) embeddings: margin with a distance-weighted or
rho-distance miner, multi-similarity, ProxyAnchor (Roth et al.'s Revisiting-DML criteria; reference:
MLforHealth/S2SD criteria/, batchminer/).

Each is a `Criterion`: besides the `Term` interface (the embeddings are the student's outputs), it scores any
embeddings directly (`criterion_init`, `criterion_loss`), which is how S2SD runs one instance per target branch.
Learnable loss parameters (the margin's per-class beta, ProxyAnchor's proxies) are the term's parameters: optimised,
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


def _key(rng, name):
    return jax.random.fold_in(rng, zlib.crc32(name.encode()) & 0x7FFFFFFF)


class Criterion(Term):
    """A DML loss on embeddings [B, D] with class labels [B]; `rng` drives its miner."""

    def criterion_init(self, rng, embeddings) -> tuple[dict, dict]:
        """(params, state) of one instance scoring embeddings of this shape."""
        return {}, {}

    def criterion_loss(self, embeddings, labels, params, state, rng) -> tuple[jax.Array, dict, dict]:
        """(loss, new state, mined statistics)."""
        raise NotImplementedError

    def init(self, rng, inputs):
        return self.criterion_init(rng, inputs.student)

    def __call__(self, inputs, params, state):
        return self.criterion_loss(inputs.student, inputs.labels, params, state, inputs.rng)


def _check_classes(term, num_classes):
    if not num_classes:
        raise ValueError(f"{term}: the number of training classes is unknown (built without DataFacts)")
    return num_classes


@register("multisimilarity")
@dataclasses.dataclass(frozen=True)
class MultiSimilarity(Criterion):
    """Multi-similarity loss with its mining (alpha 2, beta 40, base 0.5, epsilon 0.1: Roth's and the paper's)."""
    alpha: float = 2.0
    beta: float = 40.0
    base: float = 0.5
    epsilon: float = 0.1

    def criterion_loss(self, e, labels, params, state, rng):
        loss = losses.multi_similarity(e, labels, alpha=self.alpha, beta=self.beta, base=self.base,
                                       epsilon=self.epsilon)
        pos, neg = losses.multi_similarity_masks(e @ e.T, labels, epsilon=self.epsilon)
        valid = jnp.any(pos, axis=1) & jnp.any(neg, axis=1)
        return loss, state, {"active_anchors": jnp.sum(valid).astype(jnp.float32),
                             "fraction_nonzero": jnp.mean(valid), "mined_positives": jnp.sum(pos).astype(jnp.float32),
                             "mined_negatives": jnp.sum(neg).astype(jnp.float32)}


@register("margin")
@dataclasses.dataclass(frozen=True)
class Margin(Criterion):
    """Margin loss with a learnable beta per training class (init `beta_init`, 1.2), distance-weighted negatives
    (`lower_cutoff` 0.5; `upper_cutoff` None = Roth's code, 1.4 = PML's)."""
    margin: float = 0.2
    beta_init: float = 1.2
    lower_cutoff: float = 0.5
    upper_cutoff: float | None = None
    num_classes: int = 0
    data_facts = ("num_classes",)

    def criterion_init(self, rng, embeddings):
        return {"beta": jnp.full((_check_classes("margin", self.num_classes),), self.beta_init, jnp.float32)}, {}

    def _triplets(self, rng, embeddings, labels):
        return losses.distance_weighted_triplets(_key(rng, "margin"), embeddings, labels,
                                                 lower_cutoff=self.lower_cutoff, upper_cutoff=self.upper_cutoff)

    def criterion_loss(self, e, labels, params, state, rng):
        triplets, valid = self._triplets(rng, e, labels)
        options = dict(margin=self.margin, valid=valid)
        loss = losses.margin(e, labels, triplets, params["beta"], **options)
        stats = losses.margin_statistics(e, labels, triplets, params["beta"], **options)
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

    def _triplets(self, rng, embeddings, labels):
        return losses.rho_distance_triplets(_key(rng, "rmargin"), embeddings, labels, p_switch=self.p_switch,
                                            lower_cutoff=self.lower_cutoff)


@register("proxyanchor")
@dataclasses.dataclass(frozen=True)
class ProxyAnchor(Criterion):
    """ProxyAnchor with one proxy per training class, initialised N(0, 1) / 8 (Roth's oproxy); alpha 32, delta 0.1.
    Its proxies train with base LR x 2000 in the S2SD runs (an optimizer group)."""
    alpha: float = 32.0
    delta: float = 0.1
    num_classes: int = 0
    data_facts = ("num_classes",)

    def criterion_init(self, rng, embeddings):
        shape = (_check_classes("proxyanchor", self.num_classes), embeddings.shape[-1])
        return {"proxies": jax.random.normal(rng, shape, jnp.float32) / 8.0}, {}

    def criterion_loss(self, e, labels, params, state, rng):
        loss = losses.proxy_anchor(e, labels, params["proxies"], alpha=self.alpha, delta=self.delta)
        present = jnp.zeros(params["proxies"].shape[0], bool).at[labels].set(True)
        return loss, state, {"positive_proxies": jnp.sum(present).astype(jnp.float32)}
