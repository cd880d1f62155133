"""The train step and the train state's initialisation.

The step is written for the global batch; `jax.jit` with the state replicated and the batch sharded on the mesh's
'data' axis makes it data-parallel (no pmap, no explicit pmean). What the loss terms see is assembled in one place,
`forward`, for the step and for the initialisation alike.
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax

from kdjax import ops, parallel
from kdjax.train import terms as terms_lib
from kdjax.train.state import TrainState


def l2_norm(tree) -> jax.Array:
    return jnp.sqrt(sum(jnp.vdot(x, x) for x in jax.tree.leaves(tree)))


@dataclasses.dataclass(frozen=True)
class Networks:
    """Apply functions of the student and the (optional, frozen) teacher. With `teacher_layout` (a
    `kdjax.train.teacher_cache.Layout`) the teacher's outputs come with the batch, read from the teacher cache, and
    the step never runs the teacher."""
    student: object
    teacher: object = None
    teacher_layout: object = None

    def teacher_fn(self, teacher_vars):
        """The frozen teacher as a callable `fn(x, train=False) -> (logits, taps)`. No stop_gradient on the call
        itself: Jacobian terms differentiate it w.r.t. its input; its parameters are constants anyway (not an
        argument of the differentiated function). `train=True` runs BN on batch statistics (OFD's teacher mode)
        and discards the running-statistic update: the teacher stays frozen."""
        if self.teacher is None or self.teacher_layout is not None:
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


def _declared(taps: dict | None, names) -> dict | None:
    """The taps a term declared it reads (a term reading another one fails loudly, here and in every mode)."""
    return None if taps is None else {k: taps[k] for k in names if k in taps}


def _split_rows(outputs, taps: dict, parts: int, shared):
    """Splits the outputs and every per-example tap of one forward pass over `parts` stacked views into equal row
    blocks; `shared` taps (parameters, not rows) go whole to every part."""
    n = outputs.shape[0] // parts

    def rows(i):
        return lambda x: x[i * n:(i + 1) * n]
    return [(rows(i)(outputs), {k: v if k in shared else jax.tree.map(rows(i), v) for k, v in taps.items()})
            for i in range(parts)]


def forward(networks: Networks, weighted_terms, params, batch_stats, teacher_vars, batch, *, step, epoch,
            rng) -> tuple[terms_lib.TermInputs, dict]:
    """Student (train mode) and teacher outputs on `batch['image']` and on every extra view a term reads.

    The student's BatchNorm statistics are threaded through the views in order (one running-statistic update per
    forward pass, as PyTorch references that forward each view). Returns (TermInputs, updated batch_stats).
    """
    needs = terms_lib.Needs.of(weighted_terms)
    teacher_fn = networks.teacher_fn(teacher_vars)

    def student(images, stats, dropout_rng):
        out, updated = networks.student.apply({"params": params, "batch_stats": stats}, images, train=True,
                                              mutable=["batch_stats"], rngs={"dropout": dropout_rng})
        return out, updated.get("batch_stats", stats)

    def outputs(student_out, key):
        s_out, s_taps = student_out
        if networks.teacher_layout is not None:
            t_out, t_taps = networks.teacher_layout.outputs(batch, key)
        else:
            t_out, t_taps = jax.lax.stop_gradient(teacher_fn(batch[key])) if teacher_fn else (None, None)
        return terms_lib.ViewOutputs(s_out, _declared(s_taps, needs.student_taps), t_out,
                                     _declared(t_taps, needs.teacher_taps))

    missing = [k for k in needs.extra_views if k not in batch]
    if missing:
        raise ValueError(f"a loss term needs batch view(s) {missing}, which the pipeline did not produce; add them "
                         f"to data.views (batch keys: {sorted(batch)})")
    main, joint, views = terms_lib.MAIN_VIEW, needs.joint_views, {}
    # 'image' and the joint views as one batch through the student: one set of BN batch statistics
    images = jnp.concatenate([batch[main]] + [batch[k] for k in joint], axis=0) if joint else batch[main]
    (out, taps), stats = student(images, batch_stats, jax.random.fold_in(rng, 1))
    taps = _declared(taps, needs.student_taps)
    parts = _split_rows(out, taps, 1 + len(joint), needs.shared_taps) if joint else [(out, taps)]
    views.update({key: outputs(part, key) for key, part in zip((main,) + joint, parts)})
    for i, key in enumerate(k for k in needs.extra_views if k not in joint):
        out, stats = student(batch[key], stats, jax.random.fold_in(rng, 100 + i))
        views[key] = outputs(out, key)
    inputs = terms_lib.TermInputs(batch, views, networks.student_fn(params, batch_stats), teacher_fn,
                                  jnp.asarray(step, jnp.int32), jnp.asarray(epoch, jnp.float32), rng)
    return inputs, stats


def init_state(networks, weighted_terms, tx, rng, batch, teacher_vars) -> TrainState:
    """Initial state from a (global) example batch; run under jit with replicated out_shardings, or eval_shape."""
    model_rng, term_rng, state_rng = jax.random.split(rng, 3)
    variables = networks.student.init(model_rng, batch["image"], train=False)
    params, batch_stats = variables["params"], variables.get("batch_stats", {})
    inputs, _ = forward(networks, weighted_terms, params, batch_stats, teacher_vars, batch, step=0, epoch=1,
                        rng=term_rng)
    term_params, loss_state = {}, {}
    for i, wt in enumerate(weighted_terms):
        term_params[wt.name], loss_state[wt.name] = wt.term.init(jax.random.fold_in(term_rng, i), inputs)
    all_params = {"model": params, "terms": term_params}
    return TrainState(step=jnp.int32(0), params=all_params, batch_stats=batch_stats, opt_state=tx.init(all_params),
                      loss_state=loss_state, rng=jax.random.key_data(state_rng), tx=tx)


def train_step(state: TrainState, teacher_vars, batch, *, networks, weighted_terms, task, schedules,
               steps_per_epoch):
    """One optimiser step; returns (new state, measurements). `measurements['train/finite']` is 1 only when the
    loss, the gradients and the updated parameters are all finite."""
    rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    epoch = (state.step // steps_per_epoch + 1).astype(jnp.float32)

    def loss_fn(params):
        inputs, batch_stats = forward(networks, weighted_terms, params["model"], state.batch_stats, teacher_vars,
                                      batch, step=state.step, epoch=epoch, rng=rng)
        total, measurements, new_loss_state = jnp.float32(0.0), {}, {}
        for wt in weighted_terms:
            value, new_loss_state[wt.name], extra = wt.term(inputs, params["terms"][wt.name],
                                                            state.loss_state[wt.name])
            total = total + wt.factor(epoch) * value
            measurements[f"loss/{wt.name}"] = value
            measurements.update({f"{wt.name}/{k}": v for k, v in extra.items()})
        measurements["loss/total"] = total
        measurements.update(task.train_metrics(inputs.student, inputs.teacher, batch["label"]))
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
