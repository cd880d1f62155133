"""A thin wrapper around Orbax's CheckpointManager, so the rest of kdjax does not follow Orbax API changes.

Saves are atomic (Orbax writes into a temporary directory and renames it when complete, so a run killed mid-save
leaves the previous checkpoint as the latest), asynchronous, and keep the last `max_to_keep`. A checkpoint holds the
state pytree (`state`) and a JSON record (`meta`: data position, logger run id, wall time so far).
"""
import os

import jax
import orbax.checkpoint as ocp


class Checkpointer:
    def __init__(self, directory: str, *, max_to_keep: int = 3, asynchronous: bool = True):
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                               enable_async_checkpointing=asynchronous, create=True)
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

    def wait(self):
        self._manager.wait_until_finished()

    def close(self):
        self._manager.wait_until_finished()
        self._manager.close()


def abstract_with_sharding(tree, sharding):
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
