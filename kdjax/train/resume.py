"""A stage's starting state: fresh, initialised from another checkpoint (`init_from`), or resumed.

Resume: when the stage's `checkpoints/` holds a checkpoint, the state, the data position (a function of the step) and
the best metrics so far are restored, so the run continues exactly as if it had not stopped. A checkpoint written
under another trajectory (`identity`: model, losses, data, optimiser, schedule, teacher, init, seed, steps) or with
other teacher weights is refused (`ResumeError`); `allow_extend=True` lets a finished or running stage continue to a
larger step count, and records it.
"""
import dataclasses
import json
import re
import time

import jax
import jax.numpy as jnp
import numpy as np

from kdjax import ops, parallel
from kdjax.errors import ConfigError, MissingCheckpointError, ResumeError
from kdjax.train import checkpoint as ckpt_lib
from kdjax.train import optim
from kdjax.train.logging import say

STEP_KEYS = ("num_epochs", "num_steps")  # what allow_extend may change


def identity(stage_spec) -> dict:
    """Everything that determines a stage's trajectory, from its config alone; a resumed run must match it."""
    teacher = None
    if stage_spec.teacher:
        teacher = {k: getattr(stage_spec.teacher, k) for k in ("stage", "checkpoint", "pretrained", "model")}
        if stage_spec.teacher.cache and stage_spec.teacher.cache_dtype != "float32":  # rounded teacher outputs
            teacher["cache_dtype"] = stage_spec.teacher.cache_dtype
    record = {"model": stage_spec.model, "losses": stage_spec.losses, "data": dataclasses.asdict(stage_spec.data),
              "batch_size": stage_spec.batch_size,
              "seed": stage_spec.seed, "optimizer": stage_spec.optimizer, "schedule": stage_spec.schedule,
              "teacher": teacher,
              "init_from": stage_spec.init_from, "init_allow_random": list(stage_spec.init_allow_random),
              "task": stage_spec.task.name, "num_epochs": stage_spec.num_epochs, "num_steps": stage_spec.num_steps}
    return json.loads(json.dumps(record, default=str))


def check_identity(stage: str, where: str, saved: dict, current: dict, *, allow_extend: bool) -> bool:
    """Raises ResumeError on a changed trajectory; returns True when only the step count changed and extension is
    allowed."""
    changed = sorted(k for k in current if saved.get(k) != current[k])
    if changed and set(changed) <= set(STEP_KEYS) and allow_extend:
        return True
    if changed:
        details = "; ".join(f"{k}: checkpoint {saved.get(k)} vs config {current[k]}" for k in changed)
        hint = (" To train a finished or running stage for more steps, set --config.allow_extend=True."
                if set(changed) & set(STEP_KEYS) else "")
        raise ResumeError(f"stage {stage!r}: {where} holds a run of a different config ({details}). Use a new "
                          f"--workdir, or restore the original settings to resume.{hint}")
    return False


def check_init_from(stage_spec) -> None:
    if stage_spec.init_from and not ckpt_lib.has_checkpoint(stage_spec.init_from):
        raise MissingCheckpointError(f"stages.{stage_spec.name}.init_from={stage_spec.init_from!r}: no kdjax "
                                     "checkpoint there "
                                     "(the `checkpoints` directory of a kdjax stage)")


def _copy_matching(source: dict, target: dict):
    """`target` with every leaf replaced by `source`'s leaf of the same path and shape; (tree, copied, kept)."""
    copied, kept = [], []

    def pick(path, leaf):
        node = source
        for key in path:
            node = node.get(key.key) if isinstance(node, dict) else None
            if node is None:
                break
        if node is not None and np.shape(node) == leaf.shape:
            copied.append(path)
            return jnp.asarray(node, leaf.dtype)
        kept.append(optim.path_string(path))
        return leaf
    return jax.tree_util.tree_map_with_path(pick, target), copied, kept


def initialise_from(stage_spec, state):
    """Copies student parameters and BN statistics of matching path and shape from a kdjax checkpoint (pretrained
    initialisation). Every array left at its random init must match `init_allow_random` (regexes on paths such as
    'params/Dense_0/kernel'): a new head of another size is expected, a silently skipped backbone layer is not."""
    source, _ = ckpt_lib.load_model_variables(stage_spec.init_from)
    loaded, copied, kept = _copy_matching(source, jax.device_get(state.model_variables()))
    allowed = [re.compile(p) for p in stage_spec.init_allow_random]
    unexpected = [k for k in kept if not any(p.search(k) for p in allowed)]
    if not copied or unexpected:
        raise ConfigError(f"stage {stage_spec.name!r}: init_from={stage_spec.init_from}: "
                          + ("no array matches this model" if not copied else
                             f"{len(unexpected)} arrays have no counterpart of the same shape: {unexpected[:8]}")
                          + "; list the paths that may stay randomly initialised in init_allow_random "
                            f"(now {list(stage_spec.init_allow_random)})")
    say(stage_spec.name, f"initialised {len(copied)} arrays from {stage_spec.init_from}; random as allowed: "
                         f"{kept or 'none'}")
    return state.replace(params=dict(state.params, model=loaded["params"]), batch_stats=loaded["batch_stats"])


def initial_state(plan, teacher_vars, mesh):
    """The fresh state of a stage (jitted init, replicated), with `init_from` applied."""
    repl = parallel.replicated(mesh)
    init = ops.jit(lambda rng, tv, b: plan.init_fn(tv, b)(rng), mesh=mesh, run_once=True, out_shardings=repl)
    state = init(jax.random.key(plan.spec.seed), teacher_vars, plan.zeros_batch())
    optim.check_groups_match(state.params, plan.spec.optimizer)
    if plan.spec.init_from:
        state = jax.device_put(initialise_from(plan.spec, state), repl)
        state = state.replace(opt_state=jax.jit(plan.tx.init, out_shardings=repl)(state.params))
    return state


def new_meta(plan, teacher_fingerprint) -> dict:
    """What a checkpoint records beside the state (best and last evaluations, wall time, identity, ...)."""
    return {"best": {}, "last_eval": {}, "wall_time": 0.0, "run_id": f"{plan.spec.name}-{int(time.time())}",
            "identity": plan.identity, "total_steps": plan.total_steps, "teacher_fingerprint": teacher_fingerprint,
            "extensions": []}


def _check_saved(plan, checkpointer, start: int, saved: dict, teacher_fingerprint) -> bool:
    """Refuses a checkpoint of another trajectory; returns whether the run is being extended."""
    name, where = plan.spec.name, checkpointer.directory
    extended = check_identity(name, where, saved.get("identity", {}), plan.identity,
                              allow_extend=plan.spec.allow_extend)
    if saved.get("teacher_fingerprint") != teacher_fingerprint:
        raise ResumeError(f"stage {name!r}: the teacher's weights changed since the checkpoint in {where} was written "
                          f"(fingerprint {saved.get('teacher_fingerprint')} vs {teacher_fingerprint}); use a new "
                          "--workdir")
    if start > plan.total_steps:
        raise ResumeError(f"stage {name!r}: the checkpoint in {where} is at step {start}, beyond this config's "
                          f"{plan.total_steps} steps; use a new --workdir")
    return extended


def restore(plan, checkpointer, state, mesh, teacher_fingerprint) -> tuple:
    """(state, start step, meta): the latest checkpoint's, or the given fresh state at step 0."""
    meta, start = new_meta(plan, teacher_fingerprint), checkpointer.latest_step()
    if start is None:
        return state, 0, meta
    abstract = ckpt_lib.abstract_with_sharding(jax.eval_shape(state.checkpoint_tree), parallel.replicated(mesh))
    try:
        tree, saved = checkpointer.restore(start, abstract)
    except ValueError as e:
        raise ResumeError(f"stage {plan.spec.name!r}: the checkpoint in {checkpointer.directory} does not fit this "
                          f"config ({e}); use a new --workdir") from e
    if _check_saved(plan, checkpointer, start, saved, teacher_fingerprint):
        old = saved.get("total_steps")
        saved["extensions"] = saved.get("extensions", []) + [
            {"at_step": start, "from_steps": old, "to_steps": plan.total_steps, "time": time.time()}]
        say(plan.spec.name, f"extending the run from {old} to {plan.total_steps} steps (allow_extend; schedules "
                            "follow the new step count from here on)")
    meta.update({k: saved[k] for k in ("best", "last_eval", "wall_time", "run_id", "extensions") if k in saved})
    say(plan.spec.name, f"resumed from step {start} (epoch {start / plan.steps_per_epoch:.2f}) in "
                        f"{checkpointer.directory}")
    return state.replace_from_checkpoint(tree), start, meta
