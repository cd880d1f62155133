"""Top-1, top-5 and cross-entropy of a classifier, accumulated in-jit (clu metrics), with optional accuracy under
Gaussian input noise (the robustness evaluation of Srinivas & Fleuret 2018, Table 2); and the spread of its soft
labels."""
import flax
import jax
import jax.numpy as jnp
from clu import metrics as clu_metrics

from kdjax import metrics, ops, parallel
from kdjax.evaluators.base import EVALUATORS, Evaluator, collect_outputs


@flax.struct.dataclass
class _Metrics(clu_metrics.Collection):
    accuracy: clu_metrics.Accuracy
    top5: clu_metrics.Average.from_output("top5")
    loss: clu_metrics.Average.from_output("loss")


def _batch_metrics(apply_fn, variables, batch, noise_std=0.0, key=None) -> _Metrics:
    images = batch["image"]
    if key is not None:
        images = images + noise_std * jax.random.normal(key, images.shape, images.dtype)
    logits, _ = apply_fn(variables, images, train=False)
    labels = batch["label"]
    k = min(5, logits.shape[-1])
    top5 = jnp.any(jax.lax.top_k(logits, k)[1] == labels[:, None], axis=-1).astype(jnp.float32)
    loss = -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=-1)[:, 0]
    return _Metrics.single_from_model_output(logits=logits, labels=labels, top5=top5, loss=loss, mask=batch["_mask"])


@EVALUATORS.register("classification")
class Classification(Evaluator):
    """`accuracy`, `top5`, `loss`, and `accuracy_noise_<std>` for every std of `noise_sigmas` (noise on the
    normalised images; batch i's noise is drawn from fold_in(key(noise_seed), i): the same noise for every model,
    so robustness comparisons are paired)."""
    lower_is_better = frozenset({"loss"})

    def __init__(self, *, mesh, data, noise_sigmas=(), noise_seed: int = 0):
        super().__init__(mesh=mesh, data=data)
        self.noise_sigmas = tuple(float(s) for s in noise_sigmas)
        if any(s < 0 for s in self.noise_sigmas):
            raise ValueError(f"noise_sigmas {self.noise_sigmas} must be >= 0")
        self.noise_seed = int(noise_seed)
        self._compiled = {}

    def _pass(self, apply_fn, variables, noise_std=0.0) -> dict:
        key = (apply_fn, bool(noise_std))  # the student's and the teacher's programs
        if key not in self._compiled:
            fn = lambda v, b, *noise: _batch_metrics(apply_fn, v, b, *noise)  # noqa: E731
            self._compiled[key] = ops.jit(fn, mesh=self.mesh, out_shardings=parallel.replicated(self.mesh))
        collected = None
        for i, local in enumerate(self.data.batches()):
            batch = parallel.global_batch({k: local[k] for k in ("image", "label", "_mask")}, self.mesh)
            noise = (jnp.float32(noise_std), jax.random.fold_in(jax.random.key(self.noise_seed), i)) if noise_std else ()
            m = self._compiled[key](variables, batch, *noise)
            collected = m if collected is None else collected.merge(m)
        return {k: float(v) for k, v in collected.compute().items()}

    def run(self, apply_fn, variables) -> dict[str, float]:
        result = self._pass(apply_fn, variables)
        for sigma in self.noise_sigmas:
            if sigma:
                result[f"accuracy_noise_{sigma:g}"] = self._pass(apply_fn, variables, sigma)["accuracy"]
        return result


@EVALUATORS.register("soft_label_diversity")
class SoftLabelDiversity(Evaluator):
    """`intra_class_distance` and `non_target_entropy` of the classifier's soft labels softmax(z / temperature) on
    the split (`kdjax.metrics.soft_label_diversity`): what a teacher's soft labels tell a student beyond the class."""

    def __init__(self, *, mesh, data, temperature: float = 4.0):
        super().__init__(mesh=mesh, data=data)
        if temperature <= 0:
            raise ValueError(f"soft_label_diversity: temperature={temperature} must be > 0")
        self.temperature = float(temperature)
        self._cache = {}

    def run(self, apply_fn, variables) -> dict[str, float]:
        logits, labels = collect_outputs(apply_fn, variables, self.data, self.mesh, cache=self._cache)
        return metrics.soft_label_diversity(logits, labels, temperature=self.temperature)
