"""`compute_dtype='bfloat16'`: bf16 activations in the student and the teacher, float32 parameters, optimiser
state, BatchNorm statistics and losses; the setting is part of the run's identity."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kdjax import models
from kdjax.errors import ConfigError
from kdjax.train import loop, recipe, resume
from kdjax.train.checkpoint import restore_raw
from tests import helpers


def test_bfloat16_compute_keeps_float32_state_and_losses(tmp_path):
    config = helpers.tiny_config(steps=2)
    config.compute_dtype = "bfloat16"
    loop.run(config, str(tmp_path))
    student = recipe.resolve_stage(config, "student")
    assert student.model["dtype"] == "bfloat16" and student.teacher.model["dtype"] == "bfloat16"
    tree, _, _ = restore_raw(str(tmp_path / "student" / "checkpoints"))
    dtypes = {np.asarray(x).dtype for x in jax.tree.leaves((tree["params"], tree["batch_stats"], tree["opt_state"]))
              if np.issubdtype(np.asarray(x).dtype, np.floating)}
    assert dtypes == {np.dtype("float32")}
    model = models.from_config(student.model, num_classes=10)
    variables = {"params": tree["params"]["model"], "batch_stats": tree["batch_stats"]}
    logits, taps = model.apply(variables, jnp.zeros((2, 8, 8, 1)), train=False)
    # activations in bf16; the classifier hands its bf16 result back as float32 logits
    assert taps["feature_map"].dtype == jnp.bfloat16 and logits.dtype == jnp.float32
    assert np.array_equal(np.asarray(logits), np.asarray(logits.astype(jnp.bfloat16), np.float32))
    records = [json.loads(line) for line in open(tmp_path / "student" / "metrics.jsonl")]
    assert all(np.isfinite(r["loss/total"]) for r in records if "loss/total" in r)


def test_compute_dtype_is_checked_and_is_part_of_the_identity():
    config = helpers.tiny_config(steps=2)
    plain = resume.identity(recipe.resolve_stage(config, "student"))
    assert "dtype" not in plain["model"]  # float32 runs keep the identity they had
    config.compute_dtype = "bfloat16"
    assert resume.identity(recipe.resolve_stage(config, "student"))["model"]["dtype"] == "bfloat16"
    config.compute_dtype = "float16"
    with pytest.raises(ConfigError, match=r"compute_dtype='float16'; valid: float32, bfloat16"):
        recipe.resolve_stage(config, "student")
