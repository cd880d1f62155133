"""Multi-host data parallelism on localhost: 2 processes x 4 CPU devices, jax.distributed + gloo collectives; the
retrieval evaluator gathers the embeddings of both processes; the teacher cache is written and read by each
process for its own rows."""
import glob
import json
import os
import socket
import subprocess
import sys

import pytest

from tests import helpers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_train_on_disjoint_shards_with_identical_replicas(tmp_path):
    port = str(_free_port())
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=helpers.REPO,
               XLA_FLAGS="--xla_force_host_platform_device_count=4")
    # output to files: a full pipe that nobody reads would block one process and time out the other's barrier
    logs = [(open(tmp_path / f"out{i}", "w+"), open(tmp_path / f"err{i}", "w+")) for i in range(2)]
    procs = [subprocess.Popen([sys.executable, "-m", "tests.train.multiprocess_worker", str(i), port,
                               str(tmp_path / "run")], cwd=helpers.REPO, env=env, stdout=out, stderr=err, text=True)
             for i, (out, err) in enumerate(logs)]
    for p in procs:
        p.wait(timeout=600)
    outputs = [(open(tmp_path / f"out{i}").read(), open(tmp_path / f"err{i}").read()) for i in range(2)]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    results = [json.loads(next(l for l in out.splitlines() if l.startswith("RESULT "))[7:]) for out, _ in outputs]
    for r in results:
        assert r["process_count"] == 2 and r["devices"] == 8 and r["local_devices"] == 4
        assert r["local_batch"] == 8  # global batch 16 split over 2 processes
        assert len(r["global_ids"]) == 16 and len(set(r["global_ids"])) == 16  # one global batch, no duplicates
        assert r["step"] == 3
        assert r["checksums"][0] == r["checksums"][1]  # replicated state identical on both hosts
        # each process read half of the evaluation split; the evaluator saw all of it, padding dropped
        assert r["eval_rows_here"] == 32
        assert r["retrieval"] == pytest.approx(r["retrieval_reference"], abs=1e-9)
        assert r["cached_checksum"] == r["checksum_here"]  # the cached student is the uncached one
    # only process 0 writes logs and results
    assert (tmp_path / "run" / "student" / "results.json").exists()
    lines = open(tmp_path / "run" / "student" / "metrics.jsonl").read().splitlines()
    assert len([l for l in lines if '"loss/total"' in l]) == 3
    # the cache holds one block of 8 rows per process, both written; one process of 8 devices reads both
    from kdjax.train import loop, teacher_cache
    (folder,) = glob.glob(str(tmp_path / "run" / "cache" / "*"))
    assert json.load(open(os.path.join(folder, "layout.json")))["rows_per_block"] == 8
    checks = teacher_cache.open_array(os.path.join(folder, "checks"), create=False).read().result()
    assert checks.shape[1] == 2 and (checks >= 0).all()
    config = helpers.tiny_config(steps=3)
    config.stage_order = ("student",)
    block = config.stages.student.teacher
    block.stage, block.checkpoint = "", str(tmp_path / "run" / "teacher" / "checkpoints")
    block.model, block.cache = dict(name="vgg4", width=0.125), str(tmp_path / "run" / "cache")
    loop.run_stage(config, "student", str(tmp_path / "reader"))
    record = json.load(open(tmp_path / "reader" / "student" / "teacher.json"))["cache"]
    assert record["chunks_written"] == 0
