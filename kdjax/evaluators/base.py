"""The evaluator interface, and the helper that collects a model's outputs on a whole evaluation split.

An evaluator is built from one entry of `config.evals` (`{name: dict(type=..., every_epochs=..., **options)}`;
the options are the keyword arguments of its class) and returns `{metric: value}`; the trainer logs them as
`<name>/<metric>`. Evaluators own their jitted programs (compiled once per stage). Each registers its class in
`EVALUATORS` under the name configs use as `type`.
"""
import inspect

import jax
import numpy as np

from kdjax import ops, parallel
from kdjax.registry import Registry


EVALUATORS = Registry("evaluator")


class Evaluator:
    """Subclasses implement `run(apply_fn, variables) -> {metric: float}`, where `apply_fn(variables, images,
    train=False)` (a Flax module's `apply`) returns the model's `(outputs, taps)`. One that sets `reads_terms`
    is called as `run(apply_fn, variables, terms=(weighted_terms, term_params))` by a student stage."""
    lower_is_better: frozenset = frozenset()   # metrics whose best value is the smallest
    reads_terms: bool = False

    def __init__(self, *, mesh, data):
        self.mesh, self.data = mesh, data

    @classmethod
    def options(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "mesh", "data")]

    def run(self, apply_fn, variables) -> dict[str, float]:
        raise NotImplementedError


def collect_outputs(apply_fn, variables, data, mesh, *, cache: dict) -> tuple[np.ndarray, np.ndarray]:
    """(outputs, labels) of every example of `data`, gathered from all processes, padding dropped. `apply_fn` may
    return a pytree of [B, ...] outputs (and its taps, ignored); the outputs come back as the same pytree.

    The jitted predict returns replicated arrays: XLA gathers the global batch onto every device, so each process
    holds all rows and drops the masked ones. `cache` keeps the compiled program of each apply_fn across calls.
    """
    if apply_fn not in cache:
        def predict(variables, batch):
            outputs, _ = apply_fn(variables, batch["image"], train=False)
            return outputs, batch["label"], batch["_mask"]
        cache[apply_fn] = ops.jit(predict, mesh=mesh, out_shardings=parallel.replicated(mesh))
    outputs, labels = [], []
    for local in data.batches():
        batch = parallel.global_batch({k: local[k] for k in ("image", "label", "_mask")}, mesh)
        out, lab, mask = jax.tree.map(np.asarray, cache[apply_fn](variables, batch))
        outputs.append(jax.tree.map(lambda o, m=mask: o[m], out))
        labels.append(lab[mask])
    return jax.tree.map(lambda *parts: np.concatenate(parts), *outputs), np.concatenate(labels)
