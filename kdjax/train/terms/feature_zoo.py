"""Terms of the single-label KD zoo with learnable modules or state: FitNet, OFD, ReviewKD, VID, CRD; and MLLD
(two views), with the weights and options of the mdistiller / RepDistiller recipes.

The modules (`kdjax.modules`) are built from the shapes of the student's and teacher's taps at `init`, so every
model pair lines up without per-pair tables; their parameters live in `params['terms'][name]` (optimised,
weight-decayed and checkpointed with the student), their BatchNorm statistics in `loss_state[name]`.
"""
import dataclasses

import jax

from kdjax import losses, modules
from kdjax.train.terms.base import Term, register


def _init(module, rng, *args, **kw):
    variables = dict(module.init(rng, *args, **kw))
    return variables.pop("params", {}), variables


def _apply(module, params, state, *args, **kw):
    if state:
        out, updated = module.apply({"params": params, **state}, *args, mutable=list(state), **kw)
        return out, dict(updated)
    return module.apply({"params": params}, *args, **kw), {}


def _init_each(mods, rng, inputs_per_module, **kw):
    params, state = {}, {}
    for i, (m, x) in enumerate(zip(mods, inputs_per_module)):
        params[str(i)], state[str(i)] = _init(m, jax.random.fold_in(rng, i), x, **kw)
    return params, state


def _apply_each(mods, params, state, inputs_per_module, **kw):
    outs, new_state = [], {}
    for i, (m, x) in enumerate(zip(mods, inputs_per_module)):
        out, new_state[str(i)] = _apply(m, params[str(i)], state[str(i)], x, **kw)
        outs.append(out)
    return outs, new_state


def _pool_larger(s, t):
    """Adaptive-average-pool whichever map is larger down to the other's size (AT / VID convention)."""
    if s.shape[1] > t.shape[1]:
        s = losses.adaptive_avg_pool(s, t.shape[1])
    elif t.shape[1] > s.shape[1]:
        t = losses.adaptive_avg_pool(t, s.shape[1])
    return s, t


def _as_map(v):
    return v[:, None, None, :]


@register("fitnet")
@dataclasses.dataclass(frozen=True)
class FitNet(Term):
    """Hint at `feats[hint_layer]` through ConvReg; weight 100 in the recipes."""
    hint_layer: int = 2
    needs_teacher = True
    student_taps = teacher_taps = ("feats",)

    def _pair(self, inputs):
        return inputs.student_taps["feats"][self.hint_layer], inputs.teacher_taps["feats"][self.hint_layer]

    def init(self, rng, inputs):
        s, t = self._pair(inputs)
        return _init(modules.ConvReg(teacher_shape=t.shape[1:]), rng, s, train=True)

    def __call__(self, inputs, params, state):
        s, t = self._pair(inputs)
        regressed, state = _apply(modules.ConvReg(teacher_shape=t.shape[1:]), params, state, s, train=True)
        return losses.fitnet(regressed, t), state, {}


@register("ofd")
@dataclasses.dataclass(frozen=True)
class OFD(Term):
    """Partial L2 between connector(student pre-ReLU) and teacher pre-ReLU features with BN-derived margins;
    weight 0.001. `teacher_bn_mode='train'` (reference code): the teacher's BN uses batch statistics
    for these features (an extra teacher forward; its running statistics are not updated); 'eval': running ones."""
    teacher_bn_mode: str = "train"
    needs_teacher = True
    student_taps = ("preact_feats",)
    teacher_taps = ("preact_feats", "preact_bn")
    shared_taps = ("preact_bn",)

    @property
    def calls_teacher(self):
        return self.teacher_bn_mode == "train"

    def __post_init__(self):
        if self.teacher_bn_mode not in ("train", "eval"):
            raise ValueError(f"ofd: teacher_bn_mode={self.teacher_bn_mode!r}; valid: 'train', 'eval'")

    def _features(self, inputs):
        student = list(inputs.student_taps["preact_feats"][1:])
        taps = inputs.teacher_taps
        if self.teacher_bn_mode == "train":
            taps = jax.lax.stop_gradient(inputs.teacher_fn(inputs.batch["image"], train=True))[1]
        if "preact_bn" not in taps:
            raise ValueError("ofd: the teacher model has no 'preact_bn' tap (ShuffleNets and MobileNetV2 cannot be "
                             "OFD teachers, as in mdistiller)")
        teacher, bns = list(taps["preact_feats"][1:]), list(taps["preact_bn"][1:])
        n = min(len(student), len(teacher))  # keep the deepest n stages of both
        student, teacher, bns = student[-n:], teacher[-n:], bns[-n:]
        teacher = [losses.adaptive_avg_pool(t, s.shape[1]) if t.shape[1] != s.shape[1] else t
                   for s, t in zip(student, teacher)]
        margins = [losses.ofd_margins(*bn) for bn in bns]
        return student, teacher, margins

    @staticmethod
    def _connectors(teacher):
        return [modules.OFDConnector(t.shape[-1]) for t in teacher]

    def init(self, rng, inputs):
        student, teacher, _ = self._features(inputs)
        return _init_each(self._connectors(teacher), rng, student, train=True)

    def __call__(self, inputs, params, state):
        student, teacher, margins = self._features(inputs)
        connected, state = _apply_each(self._connectors(teacher), params, state, student, train=True)
        return losses.ofd(connected, teacher, margins), state, {}


@register("reviewkd")
@dataclasses.dataclass(frozen=True)
class ReviewKD(Term):
    """ABF fusion of the student's [f1.., pooled] matched to the teacher's pre-ReLU [f1.., pooled] by HCL; weight
    5.0 with a 20-epoch warm-up in the mdistiller recipe."""
    max_mid_channels: int = 512
    needs_teacher = True
    student_taps = ("feats", "pooled")
    teacher_taps = ("preact_feats", "pooled")

    @staticmethod
    def _features(inputs):
        student = list(inputs.student_taps["feats"][1:]) + [_as_map(inputs.student_taps["pooled"])]
        teacher = list(inputs.teacher_taps["preact_feats"][1:]) + [_as_map(inputs.teacher_taps["pooled"])]
        return student, teacher

    def _module(self, teacher):
        return modules.ReviewABFs(out_channels=tuple(t.shape[-1] for t in teacher),
                                  out_sizes=tuple(t.shape[1] for t in teacher), max_mid=self.max_mid_channels)

    def init(self, rng, inputs):
        student, teacher = self._features(inputs)
        return _init(self._module(teacher), rng, student, train=True)

    def __call__(self, inputs, params, state):
        student, teacher = self._features(inputs)
        fused, state = _apply(self._module(teacher), params, state, student, train=True)
        return losses.review_hcl(fused, teacher), state, {}


@register("vid")
@dataclasses.dataclass(frozen=True)
class VID(Term):
    """Variational information distillation on `feats[1:]` pairs (the larger map average-pooled first); weight 1.
    learn_variance=True: RepDistiller / paper; False: mdistiller (sigma^2 fixed at init_var)."""
    init_var: float = 5.0
    eps: float = 1e-5
    learn_variance: bool = True
    needs_teacher = True
    student_taps = teacher_taps = ("feats",)

    @staticmethod
    def _pairs(inputs):
        return [_pool_larger(s, t) for s, t in zip(inputs.student_taps["feats"][1:], inputs.teacher_taps["feats"][1:])]

    def _regressors(self, pairs):
        return [modules.VIDRegressor(t.shape[-1], self.init_var, self.eps, self.learn_variance) for _, t in pairs]

    def init(self, rng, inputs):
        pairs = self._pairs(inputs)
        return _init_each(self._regressors(pairs), rng, [s for s, _ in pairs])

    def __call__(self, inputs, params, state):
        pairs = self._pairs(inputs)
        outs, state = _apply_each(self._regressors(pairs), params, state, [s for s, _ in pairs])
        total = sum(losses.vid(mean, t, alpha, eps=self.eps) for (mean, alpha), (_, t) in zip(outs, pairs))
        return total, state, {}


@register("crd")
@dataclasses.dataclass(frozen=True)
class CRD(Term):
    """Contrastive representation distillation on the pooled features; weight 0.8. Needs the pipeline's
    `contrast_idx` (data.contrast_negatives = K, 16384 in the recipe) and the dataset `index`. The memory banks
    (num_examples x feat_dim each, num_examples supplied by the trainer) and Z constants are this term's loss state;
    both embeddings are trainable."""
    feat_dim: int = 128
    temperature: float = 0.07
    momentum: float = 0.5
    num_examples: int = 0
    needs_teacher = True
    student_taps = teacher_taps = ("pooled",)
    data_facts = ("num_examples",)

    def _embed(self, params, inputs):
        embed = modules.Embed(self.feat_dim)
        return (embed.apply({"params": params["embed_s"]}, inputs.student_taps["pooled"]),
                embed.apply({"params": params["embed_t"]}, inputs.teacher_taps["pooled"]))

    def init(self, rng, inputs):
        if "contrast_idx" not in inputs.batch:
            raise ValueError("crd: the batch has no 'contrast_idx'; set data.contrast_negatives (e.g. 16384)")
        if not self.num_examples:
            raise ValueError("crd: the training split size is unknown (built without DataFacts)")
        k_s, k_t, k_bank = jax.random.split(rng, 3)
        embed = modules.Embed(self.feat_dim)
        params = {"embed_s": embed.init(k_s, inputs.student_taps["pooled"])["params"],
                  "embed_t": embed.init(k_t, inputs.teacher_taps["pooled"])["params"]}
        return params, losses.crd_init_state(k_bank, self.num_examples, self.feat_dim)

    def __call__(self, inputs, params, state):
        v_s, v_t = self._embed(params, inputs)
        loss, state = losses.crd(v_s, v_t, state, inputs.batch["contrast_idx"], temperature=self.temperature)
        state = losses.crd_update_memory(state, v_s, v_t, inputs.batch["index"], momentum=self.momentum)
        return loss, state, {"z_s": state["z_s"], "z_t": state["z_t"]}


@register("mlld")
@dataclasses.dataclass(frozen=True)
class MLLD(Term):
    """Multi-level logit distillation on the weak view ('image') and the strong view; weight 0.9, with CE 0.1 on
    each view (`ce` and a second `ce` entry with view='image_strong'). `temperatures` (base first) and `logit_stand`
    as `losses.mlld` (Sun et al. 2024's runs: base 2, weight 9, CE 1 on each view)."""
    variant: str = "official"
    strong_view: str = "image_strong"
    temperatures: tuple = losses.logits.MLLD_TEMPERATURES
    logit_stand: bool = False
    needs_teacher = True

    def __post_init__(self):
        if self.variant not in ("official", "paper"):
            raise ValueError(f"mlld: variant={self.variant!r}; valid: 'official', 'paper'")
        object.__setattr__(self, "temperatures", tuple(float(t) for t in self.temperatures))

    @property
    def views(self):
        return (self.strong_view,)

    def loss(self, inputs):
        strong = inputs.views[self.strong_view]
        return losses.mlld(inputs.student, inputs.teacher, strong.student, strong.teacher, variant=self.variant,
                           temperatures=self.temperatures, logit_stand=self.logit_stand)
