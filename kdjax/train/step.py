"""The train step and the train state's initialisation.

The step is written for the global batch; `jax.jit` with the state replicated and the batch sharded on the mesh's
'data' axis makes it data-parallel (no pmap, no explicit pmean). What the loss terms see is assembled in one place,
`forward`, for the step and for the initialisation alike.
"""
import functools

import jax
import jax.numpy as jnp
import optax

from kdjax import ops, parallel
from kdjax.train import terms as terms_lib
from kdjax.train.state import TrainState


def l2_norm(tree) -> jax.Array:
    return jnp.sqrt(sum(jnp.vdot(x, x) for x in jax.tree.leaves(tree)))


class Networks:
    """Apply functions of the student and the (optional, frozen) teacher."""

    def __init__(self, student, teacher=None):
        self.student, self.teacher = student, teacher

    def teacher_fn(self, teacher_vars):
        """The frozen teacher as a callable `fn(x, train=False) -> (logits, taps)`. No stop_gradient on the call
        itself: Jacobian terms differentiate it w.r.t. its input; its parameters are constants anyway (not an
        argument of the differentiated function). `train=True` runs BN on batch statistics (OFD's teacher mode)
        and discards the running-statistic update: the teacher stays frozen."""
        if self.teacher is None:
            return None

        def fn(x, train=False):
            if train:
                return self.teacher.apply(teacher_vars, x, train=True, mutable=["batch_stats"])[0]
            return self.teacher.apply(teacher_vars, x, train=False)
        return fn

    def student_fn(self, params, batch_stats):
        """The student in eval mode (running statistics), so that every example's outputs depend on that example
        alone: what per-example Jacobians need."""
        return lambda x: self.student.apply({"params": params, "batch_stats": batch_stats}, x, train=False)


def extra_views(weighted_terms) -> tuple[str, ...]:
    return tuple(sorted({v for wt in weighted_terms for v in wt.term.views}))


def joint_views(weighted_terms) -> tuple[str, ...]:
    return tuple(sorted({v for wt in weighted_terms for v in wt.term.joint_views}))


NON_BATCH_TAPS = ("preact_bn",)  # taps that hold parameters (BN scale, bias), not per-example features


def _split_rows(tree, parts: int):
    """Splits every per-example array of a model's (outputs, taps) into `parts` equal row blocks."""
    outputs, taps = tree
    n = outputs.shape[0] // parts

    def part(i):
        rows = lambda x: x[i * n:(i + 1) * n]  # noqa: E731
        return rows(outputs), {k: v if k in NON_BATCH_TAPS else jax.tree.map(rows, v) for k, v in taps.items()}
    return [part(i) for i in range(parts)]


def forward(networks: Networks, weighted_terms, params, batch_stats, teacher_vars, batch, *, step, epoch, rng,
            dataset_size: int = 0, num_classes: int = 0) -> tuple[terms_lib.TermInputs, dict]:
    """Student (train mode) and teacher outputs on `batch['image']` and on every extra view a term reads.

    The student's BatchNorm statistics are threaded through the views in order (one running-statistic update per
    forward pass, as PyTorch references that forward each view). Returns (TermInputs, updated batch_stats).
    """
    teacher_fn = networks.teacher_fn(teacher_vars)

    def student(images, stats, dropout_rng):
        out, updated = networks.student.apply({"params": params, "batch_stats": stats}, images, train=True,
                                              mutable=["batch_stats"], rngs={"dropout": dropout_rng})
        return out, updated.get("batch_stats", stats)

    def with_teacher(out, images):
        t_logits, t_taps = jax.lax.stop_gradient(teacher_fn(images)) if teacher_fn else (None, None)
        return terms_lib.ViewOutputs(out[0], out[1], t_logits, t_taps)

    for key in extra_views(weighted_terms):
        if key not in batch:
            raise ValueError(f"a loss term needs batch view {key!r}, which the pipeline did not produce; add it to "
                             f"data.views (batch keys: {sorted(batch)})")
    joint = joint_views(weighted_terms)
    views = {}
    if joint:  # 'image' and the joint views as one batch through the student: one set of BN batch statistics
        images = jnp.concatenate([batch["image"]] + [batch[k] for k in joint], axis=0)
        out, stats = student(images, batch_stats, jax.random.fold_in(rng, 1))
        parts = _split_rows(out, 1 + len(joint))
        main = with_teacher(parts[0], batch["image"])
        views.update({k: with_teacher(part, batch[k]) for k, part in zip(joint, parts[1:])})
    else:
        out, stats = student(batch["image"], batch_stats, jax.random.fold_in(rng, 1))
        main = with_teacher(out, batch["image"])
    for i, key in enumerate(k for k in extra_views(weighted_terms) if k not in joint):
        out, stats = student(batch[key], stats, jax.random.fold_in(rng, 100 + i))
        views[key] = with_teacher(out, batch[key])
    inputs = terms_lib.TermInputs(batch, main.student_logits, main.student_taps, main.teacher_logits,
                                  main.teacher_taps, networks.student_fn(params, batch_stats), teacher_fn,
                                  jnp.asarray(step, jnp.int32), jnp.asarray(epoch, jnp.float32), rng, views,
                                  dataset_size, num_classes)
    return inputs, stats


def init_state(networks, weighted_terms, tx, rng, batch, teacher_vars, dataset_size: int = 0,
               num_classes: int = 0) -> TrainState:
    """Initial state from a (global) example batch; run under jit with replicated out_shardings, or eval_shape."""
    model_rng, term_rng, state_rng = jax.random.split(rng, 3)
    variables = networks.student.init(model_rng, batch["image"], train=False)
    params, batch_stats = variables["params"], variables.get("batch_stats", {})
    inputs, _ = forward(networks, weighted_terms, params, batch_stats, teacher_vars, batch, step=0, epoch=1,
                        rng=term_rng, dataset_size=dataset_size, num_classes=num_classes)
    term_params, loss_state = {}, {}
    for i, wt in enumerate(weighted_terms):
        term_params[wt.name], loss_state[wt.name] = wt.term.init(jax.random.fold_in(term_rng, i), inputs)
    all_params = {"model": params, "terms": term_params}
    return TrainState(step=jnp.int32(0), params=all_params, batch_stats=batch_stats, opt_state=tx.init(all_params),
                      loss_state=loss_state, rng=jax.random.key_data(state_rng), tx=tx)


def train_step(state: TrainState, teacher_vars, batch, *, networks, weighted_terms, task, schedules,
               steps_per_epoch, dataset_size: int = 0, num_classes: int = 0):
    """One optimiser step; returns (new state, measurements). `measurements['train/finite']` is 1 only when the
    loss, the gradients and the updated parameters are all finite."""
    rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    epoch = (state.step // steps_per_epoch + 1).astype(jnp.float32)

    def loss_fn(params):
        inputs, batch_stats = forward(networks, weighted_terms, params["model"], state.batch_stats, teacher_vars,
                                      batch, step=state.step, epoch=epoch, rng=rng, dataset_size=dataset_size,
                                      num_classes=num_classes)
        total, measurements, new_loss_state = jnp.float32(0.0), {}, {}
        for wt in weighted_terms:
            value, new_loss_state[wt.name], extra = wt.term(inputs, params["terms"][wt.name],
                                                            state.loss_state[wt.name])
            total = total + wt.factor(epoch) * value
            measurements[f"loss/{wt.name}"] = value
            measurements.update({f"{wt.name}/{k}": v for k, v in extra.items()})
        measurements["loss/total"] = total
        measurements.update(task.train_metrics(inputs.student_logits, inputs.teacher_logits, batch["label"]))
        return total, (batch_stats, new_loss_state, measurements)

    grads, (batch_stats, loss_state, measurements) = jax.grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    l2_grads, l2_params = l2_norm(grads), l2_norm(params)
    measurements.update({"train/l2_grads": l2_grads, "train/l2_params": l2_params, "train/l2_updates": l2_norm(updates),
                         "train/finite": (jnp.isfinite(measurements["loss/total"]) & jnp.isfinite(l2_grads)
                                          & jnp.isfinite(l2_params)).astype(jnp.float32)})
    for group, schedule in schedules.items():
        measurements["train/lr" if group == "default" else f"train/lr_{group}"] = schedule(state.step)
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state,
                              loss_state=loss_state)
    return new_state, measurements


def jit_train_step(mesh, **static):
    """The jitted train step for this mesh: state replicated and donated, batch sharded on 'data'."""
    repl = parallel.replicated(mesh)
    fn = functools.partial(train_step, **static)
    return ops.jit(fn, mesh=mesh, donate_argnums=(0,), out_shardings=(repl, repl))
