"""The train state: everything that changes during training and is checkpointed.

Teacher variables are not here: they are loaded once, passed to the step as a separate argument, never optimised
and never checkpointed with the student.
"""
from typing import Any

import flax.struct
import jax
import numpy as np
import optax


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any        # {'model': student params, 'terms': {term name: term params}}
    batch_stats: Any   # student BatchNorm statistics
    opt_state: Any
    loss_state: Any    # {term name: term state}
    rng: jax.Array     # raw uint32 key; the step key is fold_in(rng, step)
    tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)

    def model_variables(self) -> dict:
        """The student's Flax variables, as `model.apply` takes them."""
        return model_variables(self.checkpoint_tree())

    def checkpoint_tree(self) -> dict:
        return {"step": self.step, "params": self.params, "batch_stats": self.batch_stats,
                "opt_state": self.opt_state, "loss_state": self.loss_state, "rng": self.rng}

    def replace_from_checkpoint(self, tree: dict) -> "TrainState":
        return self.replace(**tree)


def model_checkpoint_tree(variables: dict, step: int = 0) -> dict:
    """A checkpoint tree holding a model alone (a converted teacher): the inverse of `model_variables`."""
    return {"step": np.int32(step), "params": {"model": variables["params"]},
            "batch_stats": variables.get("batch_stats", {})}


def model_variables(checkpoint_tree: dict) -> dict:
    """The model's Flax variables {'params', 'batch_stats'} inside a checkpoint tree (the student alone: the term
    parameters under params['terms'] and the optimiser state are left out)."""
    return {"params": checkpoint_tree["params"]["model"], "batch_stats": checkpoint_tree["batch_stats"]}
