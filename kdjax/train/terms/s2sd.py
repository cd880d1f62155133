"""S2SD, simultaneous similarity-based self-distillation (Roth et al., ICML 2021, Eq. 4-6 and supplement Sec F;
reference: MLforHealth/S2SD criteria/s2sd.py).

K target branches (TargetMLP of width d_k on the backbone's pooled feature) train with their own instance of a
base DML criterion; the base embedding (the model's output, the only one used at evaluation) is trained with a
source instance and distilled towards each branch's detached batch-similarity matrix:

    L = 1/2 (L_src + mean_k L_k) + gamma * mean_k KL(S_src, sg(S_k))  [+ feat_weight * KL(S_src, sg(S_f)) from
    step feat_delay on, "F"]

"A" (`pool_aggr`) feeds the branches (and F) global average + global max pooling of the last stage (max with
the first-maximum gradient of the reference's `AdaptiveMaxPool2d`). The branches'
parameters live in this term (`terms/<name>/target_<k>/mlp`, criterion parameters in `.../criterion` and
`terms/<name>/source`), so they train and checkpoint with the model and never leave with it: the exported model is
the embedding network alone.
"""
import dataclasses
import types

import jax
import jax.numpy as jnp

from kdjax import losses, modules
from kdjax.models import layers
from kdjax.train.terms.base import TERMS, Term, register
from kdjax.train.terms.metric import Criterion

BASE_LOSSES = ("margin", "rmargin", "multisimilarity", "proxyanchor")


@register("s2sd")
@dataclasses.dataclass(frozen=True)
class S2SD(Term):
    """`base`: the DML criterion of source and targets, with `base_options` (its keyword arguments); `target_dims`:
    one branch per entry (DSD (2048,), MSD (512, 1024, 1536, 2048)); `temperature` T; `gamma` the similarity-KL
    weight; `pool_aggr` "A"; `feat_distill` "F" with `feat_weight`, from step `feat_delay`. Weight 1 (the
    criterion's own weighting is inside)."""
    base: str = "multisimilarity"
    base_options: tuple = ()
    target_dims: tuple = (512, 1024, 1536, 2048)
    temperature: float = 1.0
    gamma: float = 50.0
    pool_aggr: bool = False
    feat_distill: bool = False
    feat_weight: float = 50.0
    feat_delay: int = 1000
    detach_targets: bool = True
    num_classes: int = 0
    data_facts = ("num_classes",)

    def __post_init__(self):
        if self.base not in BASE_LOSSES:
            raise ValueError(f"unknown base loss {self.base!r}; valid: {', '.join(BASE_LOSSES)}")
        # config dicts -> a hashable, ordered form (the term is a static argument of the jitted step)
        options = self.base_options.items() if hasattr(self.base_options, "items") else self.base_options
        object.__setattr__(self, "base_options", tuple(sorted((str(k), v) for k, v in options)))
        object.__setattr__(self, "target_dims", tuple(int(d) for d in self.target_dims))
        if not self.target_dims:
            raise ValueError("target_dims is empty: S2SD needs at least one target branch")
        if any(d <= 0 for d in self.target_dims):
            raise ValueError(f"target_dims {list(self.target_dims)}: every target dimension must be positive")
        if self.feat_delay < 0:
            raise ValueError(f"feat_delay={self.feat_delay} must be >= 0")
        if self.temperature <= 0:
            raise ValueError(f"temperature={self.temperature} must be > 0")
        self.criterion()  # the base loss's own option checks

    @property
    def student_taps(self):
        return ("feats",) if self.pool_aggr else ("pooled",)

    def criterion(self) -> Criterion:
        cls = TERMS.get(self.base)
        facts = {k: getattr(self, k) for k in cls.data_facts}
        try:
            return cls(**dict(self.base_options), **facts)
        except TypeError as e:
            raise ValueError(f"base_options {dict(self.base_options)} for base loss {self.base!r}: {e}") from e

    def _branch_input(self, inputs):
        taps = inputs.student_taps
        if not self.pool_aggr:
            return taps["pooled"]
        feats = taps.get("feats")
        if not feats or feats[-1].ndim != 4:
            raise ValueError("s2sd pool_aggr ('A') needs the backbone's unpooled last stage (taps['feats'][-1], "
                             "[B, H, W, C]); this model exposes none")
        last = feats[-1].astype(jnp.float32)
        return jnp.mean(last, axis=(1, 2)) + layers.global_max_pool(last)

    def eval_embeddings(self, params, outputs, taps):
        """`pooled`: the backbone's pooled feature, L2-normalised; `target_<k>`: each target branch's embedding."""
        f = self._branch_input(types.SimpleNamespace(student_taps=taps))
        heads = {"pooled": losses.l2_normalize(taps["pooled"].astype(jnp.float32))}
        for k, dim in enumerate(self.target_dims):
            heads[f"target_{k}"] = modules.TargetMLP(dim).apply({"params": params[f"target_{k}"]["mlp"]}, f)
        return heads

    def init(self, rng, inputs):
        criterion, f = self.criterion(), self._branch_input(inputs)
        keys = jax.random.split(rng, 2 * len(self.target_dims) + 1)
        params, state = {}, {}
        params["source"], state["source"] = criterion.criterion_init(keys[0], inputs.student)
        for k, dim in enumerate(self.target_dims):
            mlp = modules.TargetMLP(dim)
            mlp_params = mlp.init(keys[2 * k + 1], f)["params"]
            z = mlp.apply({"params": mlp_params}, f)
            crit_params, state[f"target_{k}"] = criterion.criterion_init(keys[2 * k + 2], z)
            params[f"target_{k}"] = {"mlp": mlp_params, "criterion": crit_params}
        return params, state

    def __call__(self, inputs, params, state):
        criterion, f = self.criterion(), self._branch_input(inputs)
        x, labels = inputs.student, inputs.labels
        new_state, metrics = {}, {}
        # each criterion instance mines with its own randomness
        source_loss, new_state["source"], _ = criterion.criterion_loss(x, labels, params["source"], state["source"],
                                                                       jax.random.fold_in(inputs.rng, 0))
        target_losses, kls = [], []
        for k, dim in enumerate(self.target_dims):
            z = modules.TargetMLP(dim).apply({"params": params[f"target_{k}"]["mlp"]}, f)
            loss_k, new_state[f"target_{k}"], _ = criterion.criterion_loss(
                z, labels, params[f"target_{k}"]["criterion"], state[f"target_{k}"],
                jax.random.fold_in(inputs.rng, k + 1))
            kl_k = losses.similarity_kl(x, jax.lax.stop_gradient(z) if self.detach_targets else z,
                                        temperature=self.temperature)
            target_losses.append(loss_k)
            kls.append(kl_k)
            metrics[f"target_{k}"], metrics[f"kl_{k}"] = loss_k, kl_k
        total = 0.5 * (source_loss + jnp.mean(jnp.stack(target_losses))) + self.gamma * jnp.mean(jnp.stack(kls))
        metrics.update(source=source_loss, gamma=jnp.float32(self.gamma))
        if self.feat_distill:
            active = inputs.step >= self.feat_delay
            feat_kl = losses.similarity_kl(x, jax.lax.stop_gradient(losses.l2_normalize(f)),
                                           temperature=self.temperature)
            total = total + jnp.where(active, self.feat_weight * feat_kl, 0.0)
            metrics.update(feat_kl=feat_kl, feat_active=active.astype(jnp.float32))
        return total, new_state, metrics
