"""The jitted train and eval steps.

The step function is written for the global batch; `jax.jit` with the state replicated and the batch sharded on
the mesh's 'data' axis makes it data-parallel (no pmap, no explicit pmean).
"""
import functools

import flax
import jax
import jax.numpy as jnp
import optax
from clu import metrics as clu_metrics

from kdjax import parallel
from kdjax.ops import xla_cpu_options
from kdjax.train import terms as terms_lib
from kdjax.train.state import TrainState


def _l2(tree) -> jax.Array:
    return jnp.sqrt(sum(jnp.vdot(x, x) for x in jax.tree.leaves(tree)))


def _top1(logits):
    return jnp.argmax(logits, axis=-1)


class Networks:
    """Apply functions of the student and the (optional, frozen) teacher."""

    def __init__(self, student, teacher=None):
        self.student, self.teacher = student, teacher

    def teacher_outputs(self, teacher_vars, images):
        if self.teacher is None:
            return None, None, None
        # No stop_gradient on fn itself: Jacobian terms differentiate it w.r.t. its *input*. Its parameters are
        # constants anyway (teacher_vars is not an argument of the differentiated function). `train=True` runs BN
        # on batch statistics (OFD's teacher mode) and discards the running-stat update: the teacher stays frozen.
        def fn(x, train=False):
            if train:
                return self.teacher.apply(teacher_vars, x, train=True, mutable=["batch_stats"])[0]
            return self.teacher.apply(teacher_vars, x, train=False)
        logits, taps = jax.lax.stop_gradient(fn(images))
        return logits, taps, fn

    def student_fn(self, params, batch_stats):
        return lambda x: self.student.apply({"params": params, "batch_stats": batch_stats}, x, train=False)


def _extra_views(weighted_terms) -> tuple[str, ...]:
    return tuple(sorted({v for wt in weighted_terms for v in wt.term.views}))


def _forward_views(networks, variables, teacher_vars, batch, weighted_terms, rng):
    """Train-mode student and frozen-teacher outputs on every extra view, threading the student's BN statistics
    through the views in order. Returns (views dict, final batch_stats)."""
    views, batch_stats = {}, variables["batch_stats"]
    for i, key in enumerate(_extra_views(weighted_terms)):
        if key not in batch:
            raise ValueError(f"a loss term needs batch view {key!r}, which the pipeline did not produce; "
                             f"batch keys: {sorted(batch)}")
        (logits, taps), updated = networks.student.apply(
            {"params": variables["params"], "batch_stats": batch_stats}, batch[key], train=True,
            mutable=["batch_stats"], rngs={"dropout": jax.random.fold_in(rng, 100 + i)})
        batch_stats = updated["batch_stats"]
        t_logits, t_taps, _ = networks.teacher_outputs(teacher_vars, batch[key])
        views[key] = (logits, taps, t_logits, t_taps)
    return views, batch_stats


def init_state(networks, weighted_terms, tx, rng, batch, teacher_vars, dataset_size: int = 0) -> TrainState:
    """Initial state from a (global) example batch; called under jit with replicated out_shardings."""
    model_rng, term_rng, state_rng = jax.random.split(rng, 3)
    variables = networks.student.init(model_rng, batch["image"], train=False)
    params, batch_stats = variables["params"], variables.get("batch_stats", {})
    (s_logits, s_taps), _ = networks.student.apply(variables, batch["image"], train=True, mutable=["batch_stats"],
                                                   rngs={"dropout": model_rng})
    t_logits, t_taps, t_fn = networks.teacher_outputs(teacher_vars, batch["image"])
    views, _ = _forward_views(networks, {"params": params, "batch_stats": batch_stats}, teacher_vars, batch,
                              weighted_terms, model_rng)
    inputs = terms_lib.TermInputs(batch, s_logits, s_taps, t_logits, t_taps, networks.student_fn(params, batch_stats),
                                  t_fn, jnp.int32(0), jnp.int32(1), term_rng, views, dataset_size)
    term_params, loss_state = {}, {}
    for i, wt in enumerate(weighted_terms):
        p, s = wt.term.init(jax.random.fold_in(term_rng, i), inputs)
        term_params[wt.name], loss_state[wt.name] = p, s
    all_params = {"model": params, "terms": term_params}
    return TrainState(step=jnp.int32(0), params=all_params, batch_stats=batch_stats, opt_state=tx.init(all_params),
                      loss_state=loss_state, rng=jax.random.key_data(state_rng), tx=tx)


def train_step(state: TrainState, teacher_vars, batch, *, networks, weighted_terms, schedule, steps_per_epoch,
               dataset_size: int = 0):
    rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    epoch = (state.step // steps_per_epoch + 1).astype(jnp.float32)
    t_logits, t_taps, t_fn = networks.teacher_outputs(teacher_vars, batch["image"])

    def loss_fn(params):
        variables = {"params": params["model"], "batch_stats": state.batch_stats}
        (logits, taps), new_model_state = networks.student.apply(variables, batch["image"], train=True,
                                                                 mutable=["batch_stats"],
                                                                 rngs={"dropout": jax.random.fold_in(rng, 1)})
        views, batch_stats = _forward_views(networks, {"params": params["model"], **new_model_state}, teacher_vars,
                                            batch, weighted_terms, rng)
        inputs = terms_lib.TermInputs(batch, logits, taps, t_logits, t_taps,
                                      networks.student_fn(params["model"], state.batch_stats), t_fn,
                                      state.step, epoch, rng, views, dataset_size)
        total, measurements, new_loss_state = jnp.float32(0.0), {}, {}
        for wt in weighted_terms:
            value, new_loss_state[wt.name], extra = wt.term(inputs, params["terms"][wt.name],
                                                            state.loss_state[wt.name])
            total = total + wt.factor(epoch) * value
            measurements[f"loss/{wt.name}"] = value
            measurements.update({f"{wt.name}/{k}": v for k, v in extra.items()})
        measurements["loss/total"] = total
        return total, (batch_stats, new_loss_state, measurements, logits)

    grads, (batch_stats, loss_state, measurements, logits) = jax.grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    measurements.update({
        "train/accuracy": jnp.mean(_top1(logits) == batch["label"]),
        "train/l2_grads": _l2(grads), "train/l2_params": _l2(params), "train/l2_updates": _l2(updates),
        "train/lr": schedule(state.step),
    })
    if t_logits is not None:
        measurements["train/teacher_agreement"] = jnp.mean(_top1(logits) == _top1(t_logits))
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state,
                              loss_state=loss_state)
    return new_state, measurements


@flax.struct.dataclass
class EvalMetrics(clu_metrics.Collection):
    accuracy: clu_metrics.Accuracy
    top5: clu_metrics.Average.from_output("top5")
    loss: clu_metrics.Average.from_output("loss")


def eval_step(model, variables, batch, noise_std=0.0, key=None) -> EvalMetrics:
    """Top-1, top-5 and CE on a masked batch; optional Gaussian noise of std `noise_std` on the (normalised) images
    (the noise-robustness evaluation of paper 004 Table 2)."""
    images = batch["image"]
    if key is not None:
        images = images + noise_std * jax.random.normal(key, images.shape, images.dtype)
    logits, _ = model.apply(variables, images, train=False)
    labels = batch["label"]
    k = min(5, logits.shape[-1])
    top5 = jnp.any(jax.lax.top_k(logits, k)[1] == labels[:, None], axis=-1).astype(jnp.float32)
    loss = -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=-1)[:, 0]
    return EvalMetrics.single_from_model_output(logits=logits, labels=labels, top5=top5, loss=loss,
                                                mask=batch["_mask"])


def compile_steps(mesh, *, networks, weighted_terms, schedule, steps_per_epoch, dataset_size: int = 0):
    """Returns jitted (train_step, eval_step) for this mesh: state replicated, batch sharded, state donated; on CPU
    with `kdjax.ops.xla_cpu_options`."""
    repl = parallel.replicated(mesh)
    options = xla_cpu_options.compiler_options(mesh)
    train = jax.jit(functools.partial(train_step, networks=networks, weighted_terms=tuple(weighted_terms),
                                      schedule=schedule, steps_per_epoch=steps_per_epoch, dataset_size=dataset_size),
                    donate_argnums=(0,), out_shardings=(repl, repl), compiler_options=options)
    evaluate = jax.jit(functools.partial(eval_step, networks.student), out_shardings=repl, compiler_options=options)
    return train, evaluate


def evaluate_model(eval_fn, variables, pipeline, mesh, *, noise_std: float = 0.0, seed: int = 0) -> dict[str, float]:
    """Runs `eval_fn` over every batch of an eval pipeline; returns top-1, top-5 and loss as Python floats.

    With noise_std > 0 the noise of batch i is drawn from fold_in(key(seed), i): the same noise for every model
    evaluated with the same seed, so robustness comparisons are paired.
    """
    collected = None
    for i, local in enumerate(pipeline.eval_batches()):
        batch = parallel.global_batch({k: local[k] for k in ("image", "label", "_mask")}, mesh)
        if noise_std:
            m = eval_fn(variables, batch, jnp.float32(noise_std), jax.random.fold_in(jax.random.key(seed), i))
        else:
            m = eval_fn(variables, batch)
        collected = m if collected is None else collected.merge(m)
    return {k: float(v) for k, v in collected.compute().items()}
