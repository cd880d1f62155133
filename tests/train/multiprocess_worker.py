"""One process of the 2-process test (tests/train/test_multiprocess.py): argv = process id, port, workdir."""
import json
import sys

import jax

process_id, port, workdir = int(sys.argv[1]), sys.argv[2], sys.argv[3]
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2, process_id=process_id)

import numpy as np  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402

from kdjax import parallel  # noqa: E402
from kdjax.train import loop, recipe  # noqa: E402
from kdjax.train import checkpoint as ckpt_lib  # noqa: E402
from tests import helpers  # noqa: E402

config = helpers.tiny_config(steps=3)
spec = recipe.resolve_stage(config, "teacher")
_, train_data, _ = loop.make_pipelines(config, spec)
local = next(train_data.train_batches())
global_ids = multihost_utils.process_allgather(local["index"])
for stage in ("teacher", "student"):
    loop.run_stage(config, stage, workdir)
checkpointer = ckpt_lib.Checkpointer(f"{workdir}/student/checkpoints")
tree, _, step = checkpointer.restore_raw()
checkpointer.close()
checksum = float(sum(np.abs(np.asarray(x, np.float64)).sum() for x in jax.tree.leaves(tree["params"])))
checksums = multihost_utils.process_allgather(np.float64(checksum))
print("RESULT " + json.dumps({
    "process_count": jax.process_count(), "devices": jax.device_count(), "local_devices": jax.local_device_count(),
    "local_batch": int(len(local["index"])), "global_ids": np.asarray(global_ids).ravel().tolist(),
    "step": int(step), "checksums": np.asarray(checksums).ravel().tolist()}), flush=True)
