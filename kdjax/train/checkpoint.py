"""A thin wrapper around Orbax's CheckpointManager, so the rest of kdjax does not follow Orbax API changes.

Saves are atomic (Orbax writes into a temporary directory and renames it when complete, so a run killed mid-save
leaves the previous checkpoint as the latest), asynchronous, and keep the last `max_to_keep`. A checkpoint holds the
state pytree (`state`) and a JSON record (`meta`: data position, best metrics so far, logger run id, wall time, the
stage identity a resumed run must match).
"""
import hashlib
import os

import jax
import numpy as np
import orbax.checkpoint as ocp

from kdjax.errors import MissingCheckpointError
from kdjax.train.state import model_checkpoint_tree, model_variables


class Checkpointer:
    def __init__(self, directory: str, *, max_to_keep: int = 3, asynchronous: bool = True):
        self.directory = os.path.abspath(directory)
        # Multi-host saves synchronise on barriers named after the step: two managers saving the same step (the
        # last and the best checkpoint) need distinct names, or their barriers collide.
        prefix = os.path.basename(self.directory.rstrip("/"))
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, enable_async_checkpointing=asynchronous, create=True,
            multiprocessing_options=ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=prefix))
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_handlers={
            "state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()})

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, tree, meta: dict, *, force: bool = True) -> bool:
        """Collective on multi-host: every process calls it. The caller decides when (force=True by default). A
        checkpoint of the same step is replaced: a run that crashed after saving its best state at step s but before
        its last checkpoint of step s reaches s again when it resumes."""
        if step in self._manager.all_steps():
            self._manager.delete(step)
        return self._manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(tree),
                                                                meta=ocp.args.JsonSave(meta)), force=force)

    def restore(self, step: int, abstract_tree):
        """Restores into the shapes, dtypes and shardings of `abstract_tree` (from jax.eval_shape)."""
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_tree), meta=ocp.args.JsonRestore()))
        return restored["state"], restored["meta"]

    def restore_raw(self, step: int | None = None):
        """Restores the state as saved, as host (numpy) arrays, without a target from the caller: used to load a
        teacher, an `init_from`, an export. The saved shardings are not reused (a checkpoint written by 2 processes
        on 8 devices loads on 1 GPU)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise MissingCheckpointError(f"no checkpoint in {self.directory}")
        saved = self._manager.item_metadata(step)["state"]
        target = jax.tree.map(lambda m: np.empty(m.shape, m.dtype), saved.tree)
        restored = self._manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target),
                                                                       meta=ocp.args.JsonRestore()))
        return restored["state"], restored["meta"], step

    def close(self):
        self._manager.wait_until_finished()
        self._manager.close()


def has_checkpoint(directory: str) -> bool:
    """Whether `directory` holds a kdjax checkpoint (without creating the directory)."""
    if not os.path.isdir(directory):
        return False
    checkpointer = Checkpointer(directory)
    try:
        return checkpointer.latest_step() is not None
    finally:
        checkpointer.close()


def restore_raw(directory: str, step: int | None = None):
    """(state tree as saved, meta, step) of the latest (or the given) checkpoint in `directory`."""
    checkpointer = Checkpointer(directory)
    try:
        return checkpointer.restore_raw(step)
    finally:
        checkpointer.close()


def load_model_variables(directory: str, step: int | None = None) -> tuple[dict, int]:
    """(the model's Flax variables {'params', 'batch_stats'}, step) of a kdjax stage's checkpoint in `directory`
    (`<workdir>/<stage>/checkpoints` or `checkpoints_best`): what a teacher, an `init_from`, an evaluation or an
    export reads."""
    tree, _, step = restore_raw(directory, step)
    return model_variables(tree), int(step)


def save_model_variables(directory: str, variables: dict, meta: dict) -> None:
    """Writes a model's variables as a step-0 kdjax checkpoint that `load_model_variables` (a teacher, an
    `init_from`) reads."""
    checkpointer = Checkpointer(directory, asynchronous=False)
    try:
        checkpointer.save(0, jax.tree.map(np.asarray, model_checkpoint_tree(variables)), meta)
    finally:
        checkpointer.close()


def fingerprint(tree) -> str:
    """sha256 of a pytree's leaves (shapes, dtypes and values, in tree order): identifies a teacher's weights."""
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(jax.device_get(tree)):
        leaf = np.ascontiguousarray(leaf)
        digest.update(f"{leaf.shape}{leaf.dtype}".encode())
        digest.update(leaf.tobytes())
    return digest.hexdigest()


def abstract_with_sharding(tree, sharding):
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
