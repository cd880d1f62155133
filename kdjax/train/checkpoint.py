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


class Checkpointer:
    def __init__(self, directory: str, *, max_to_keep: int = 3, asynchronous: bool = True):
        self.directory = os.path.abspath(directory)
        # Multi-host saves synchronise on barriers named after the step: two managers saving the same step (the
        # last and the best checkpoint) need distinct names, or their barriers collide.
        prefix = os.path.basename(self.directory.rstrip("/"))
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, enable_async_checkpointing=asynchronous, create=True,
            multiprocessing_options=ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=prefix))
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, tree, meta: dict, *, force: bool = True) -> bool:
        """Collective on multi-host: every process calls it. The caller decides when (force=True by default)."""
        return self._manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(tree),
                                                                meta=ocp.args.JsonSave(meta)), force=force)

    def restore(self, step: int, abstract_tree):
        """Restores into the shapes, dtypes and shardings of `abstract_tree` (from jax.eval_shape)."""
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_tree), meta=ocp.args.JsonRestore()))
        return restored["state"], restored["meta"]

    def restore_raw(self, step: int | None = None):
        """Restores the state as saved (host arrays), without a target: used to load a teacher."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        restored = self._manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(),
                                                                       meta=ocp.args.JsonRestore()))
        return restored["state"], restored["meta"], step

    def close(self):
        self._manager.wait_until_finished()
        self._manager.close()


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
