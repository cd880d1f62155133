"""One process of the 2-process test (tests/train/test_multiprocess.py): argv = process id, port, workdir."""
import json
import sys

import jax

process_id, port, workdir = int(sys.argv[1]), sys.argv[2], sys.argv[3]
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2, process_id=process_id)

import numpy as np  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402

from kdjax import data, evaluators, metrics, parallel  # noqa: E402
from kdjax.train import loop, recipe  # noqa: E402
from kdjax.train import checkpoint as ckpt_lib  # noqa: E402
from kdjax import models  # noqa: E402
from kdjax.train.state import model_variables  # noqa: E402
from tests import helpers  # noqa: E402

config = helpers.tiny_config(steps=3)
spec = recipe.resolve_stage(config, "teacher")
d = data.build(spec.data, seed=0, batch_size=spec.batch_size, eval_batch_size=int(config.eval_batch_size),
               process_index=jax.process_index(), process_count=jax.process_count())
local = next(d.train.batches())
global_ids = multihost_utils.process_allgather(local["index"])
loop.run(config, workdir)


def params_checksum(checkpoints: str) -> float:
    tree, _, _ = ckpt_lib.restore_raw(checkpoints)
    return float(sum(np.abs(np.asarray(x, np.float64)).sum() for x in jax.tree.leaves(tree["params"])))


tree, _, step = ckpt_lib.restore_raw(f"{workdir}/student/checkpoints")
checksum_here = params_checksum(f"{workdir}/student/checkpoints")
checksums = multihost_utils.process_allgather(np.float64(checksum_here))  # float32 on the way (no x64)

# The same student with a teacher cache: each process writes and reads its own rows of every step.
cached = helpers.tiny_config(steps=3)
cached.stage_order = ("student",)
block = cached.stages.student.teacher
block.stage, block.checkpoint, block.model = "", f"{workdir}/teacher/checkpoints", dict(name="vgg4", width=0.125)
block.cache = f"{workdir}/cache"
loop.run(cached, f"{workdir}/cached")
cached_checksum = params_checksum(f"{workdir}/cached/student/checkpoints")

# The retrieval evaluator on logits as embeddings: each process reads half of the 64 evaluation images, the
# evaluator gathers all of them; the reference applies the model to the whole split in this process alone.
model = models.from_config(recipe.resolve_stage(config, "student").model, num_classes=10)
variables = model_variables(tree)
mesh = parallel.make_mesh()
retrieval = evaluators.build("eval", dict(type="retrieval", ks=(1, 4), map_at_r=False, roth_map_r=0, nmi=False),
                             mesh=mesh, data=d)
gathered = retrieval.run(model.apply, jax.device_put(variables, parallel.replicated(mesh)))
whole = data.build(spec.data, seed=0, batch_size=16, eval_batch_size=64).eval
images = np.concatenate([b["image"][b["_mask"]] for b in whole.batches()])
logits = np.asarray(model.apply(variables, images, train=False)[0])
reference = metrics.recall_at_k(logits, whole.split.labels, (1, 4))
print("RESULT " + json.dumps({
    "process_count": jax.process_count(), "devices": jax.device_count(), "local_devices": jax.local_device_count(),
    "local_batch": int(len(local["index"])), "global_ids": np.asarray(global_ids).ravel().tolist(),
    "step": int(step), "checksums": np.asarray(checksums).ravel().tolist(), "cached_checksum": cached_checksum,
    "checksum_here": checksum_here,
    "eval_rows_here": int(sum(b["_mask"].sum() for b in d.eval.batches())),
    "retrieval": gathered, "retrieval_reference": {f"recall@{k}": v for k, v in reference.items()}}), flush=True)
