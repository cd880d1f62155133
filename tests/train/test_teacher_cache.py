"""The teacher-output cache: a cached student equals the uncached one bit for bit, a second workdir reads the cache
and ends identically, a changed key is never read, a stopped teacher pass resumes, a corrupted block is refused and
recomputed, stages whose terms need the teacher itself run it, and bfloat16 storage rounds as it says."""
import collections
import glob
import json
import os
import re
import shutil

import numpy as np
import pytest

from kdjax.errors import ConfigError
from kdjax.train import loop, teacher_cache
from tests import helpers
from tests.train.test_loop import assert_same_params, final_state, logged_losses

STEPS = 4


def _config(teacher_dir: str, cache: str = "", **teacher):
    config = helpers.tiny_config(steps=STEPS)
    config.stage_order = ("student",)
    block = config.stages.student.teacher
    block.stage, block.checkpoint, block.model = "", teacher_dir, dict(name="vgg4", width=0.125)
    block.cache = cache
    for k, v in teacher.items():
        setattr(block, k, v)
    return config


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cache_teacher")
    loop.run_stage(helpers.tiny_config(steps=STEPS, distill=False), "teacher", str(workdir))
    return str(workdir / "teacher" / "checkpoints")


@pytest.fixture(scope="module")
def uncached(teacher_dir, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("uncached"))
    loop.run_stage(_config(teacher_dir), "student", workdir)
    return workdir


@pytest.fixture
def one_step_chunks(monkeypatch):
    """One step per chunk (the tiny batch is 16 rows): a pass over several chunks to stop and corrupt."""
    monkeypatch.setattr(teacher_cache, "PASS_IMAGES", 16)


def _cache_record(workdir):
    return json.load(open(os.path.join(workdir, "student", "teacher.json")))["cache"]


def _same_run(reference, workdir):
    assert_same_params(final_state(reference, "student")[0], final_state(workdir, "student")[0])
    assert logged_losses(reference, "student") == logged_losses(workdir, "student")
    ref = json.load(open(os.path.join(reference, "student", "results.json")))
    got = json.load(open(os.path.join(workdir, "student", "results.json")))
    assert got["final"] == ref["final"] and got["best"] == ref["best"]


def test_a_cached_student_equals_the_uncached_one_and_a_second_workdir_reads_it(teacher_dir, uncached, tmp_path,
                                                                              capsys):
    cache = str(tmp_path / "cache")
    loop.run_stage(_config(teacher_dir, cache), "student", str(tmp_path / "a"))
    assert "teacher cache: writing" in capsys.readouterr().out
    _same_run(uncached, str(tmp_path / "a"))
    first = _cache_record(str(tmp_path / "a"))
    assert first["chunks_written"] == 1 and len(first["folders"]) == 1

    loop.run_stage(_config(teacher_dir, cache), "student", str(tmp_path / "b"))
    assert "teacher cache: reading" in capsys.readouterr().out
    assert _cache_record(str(tmp_path / "b"))["chunks_written"] == 0
    _same_run(uncached, str(tmp_path / "b"))


def test_cached_logits_are_the_teachers_on_the_pipelines_batches(teacher_dir, tmp_path):
    """What the folder holds, read back, against the teacher applied to the same steps' batches (float32 rounding
    at most; in practice the same bits)."""
    from kdjax import parallel
    from kdjax.train import checkpoint as ckpt_lib
    from kdjax.train import recipe, stage
    cache = str(tmp_path / "cache")
    config = _config(teacher_dir, cache)
    loop.run_stage(config, "student", str(tmp_path / "w"))
    mesh = parallel.make_mesh()
    plan = stage.build(recipe.resolve_stage(config, "student"), mesh)
    variables, _ = ckpt_lib.load_model_variables(teacher_dir)
    (folder,) = glob.glob(os.path.join(cache, "*"))
    stored = teacher_cache.open_array(os.path.join(folder, "logits"), create=False)[:STEPS].read().result()
    batches = plan.data.train.batches(0)
    for step in range(STEPS):
        logits, _ = plan.teacher_model.apply(variables, next(batches)["image"], train=False)
        np.testing.assert_allclose(stored[step], logits, rtol=1e-6, atol=1e-6)


def test_a_changed_key_is_never_read(teacher_dir, tmp_path):
    cache = str(tmp_path / "cache")
    loop.run_stage(_config(teacher_dir, cache), "student", str(tmp_path / "a"))
    other = _config(teacher_dir, cache)
    other.seed = 1  # another data stream: another folder
    loop.run_stage(other, "student", str(tmp_path / "b"))
    assert _cache_record(str(tmp_path / "b"))["chunks_written"] == 1
    assert len(glob.glob(os.path.join(cache, "*"))) == 2
    for folder in glob.glob(os.path.join(cache, "*")):  # a folder whose key.json says otherwise is refused
        record = json.load(open(os.path.join(folder, "key.json")))
        json.dump(dict(record, seed=7), open(os.path.join(folder, "key.json"), "w"))
    with pytest.raises(teacher_cache.CacheError, match="key.json does not match this stage's key"):
        loop.run_stage(_config(teacher_dir, cache), "student", str(tmp_path / "c"))


def test_a_stopped_teacher_pass_resumes_where_it_stopped(teacher_dir, uncached, tmp_path, one_step_chunks):
    cache, workdir = str(tmp_path / "cache"), str(tmp_path / "w")
    first = loop.run_stage(_config(teacher_dir, cache), "student", workdir,
                           on_event=helpers.sigterm_at("teacher_pass", "student", 2))
    assert first["status"] == "preempted"
    written = _cache_record(workdir)
    second = loop.run_stage(_config(teacher_dir, cache), "student", workdir)
    assert second["status"] == "done"
    assert written["steps_per_chunk"] == 1 and _cache_record(workdir)["chunks_written"] == STEPS - 2
    _same_run(uncached, workdir)


def test_a_corrupted_block_is_refused_then_recomputed(teacher_dir, uncached, tmp_path, one_step_chunks):
    cache = str(tmp_path / "cache")
    loop.run_stage(_config(teacher_dir, cache), "student", str(tmp_path / "a"))
    (folder,) = glob.glob(os.path.join(cache, "*"))
    chunk_files = sorted(f for f in glob.glob(os.path.join(folder, "logits", "c", "**"), recursive=True)
                         if os.path.isfile(f))
    assert len(chunk_files) == STEPS
    with open(chunk_files[2], "r+b") as f:  # flip bytes in the middle of step 2's logits
        f.seek(os.path.getsize(chunk_files[2]) // 2)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(teacher_cache.CacheError, match=r"steps \[2, 3\) .* fail their check"):
        loop.run_stage(_config(teacher_dir, cache), "student", str(tmp_path / "b"))
    shutil.rmtree(tmp_path / "b")
    loop.run_stage(_config(teacher_dir, cache), "student", str(tmp_path / "b"))
    assert _cache_record(str(tmp_path / "b"))["chunks_written"] == 1
    _same_run(uncached, str(tmp_path / "b"))


def test_terms_that_need_the_teacher_itself_run_it(teacher_dir, tmp_path, capsys):
    config = _config(teacher_dir, str(tmp_path / "cache"))
    config.stages.student.losses = {"ce": dict(weight=1.0), "jacobian_matching": dict(weight=1.0)}
    result = loop.run_stage(config, "student", str(tmp_path / "w"))
    assert result["status"] == "done"
    assert ("teacher cache not used: loss term(s) ['jacobian_matching'] call the teacher as a function"
            in capsys.readouterr().out)
    assert not glob.glob(str(tmp_path / "cache" / "*"))


def test_layout_stores_small_declared_taps_and_names_what_it_cannot(teacher_dir, monkeypatch):
    from kdjax import parallel
    from kdjax.train import checkpoint as ckpt_lib
    from kdjax.train import recipe, stage
    variables, _ = ckpt_lib.load_model_variables(teacher_dir)

    def layout(losses):
        config = _config(teacher_dir)
        config.stages.student.losses = losses
        return teacher_cache.layout(stage.build(recipe.resolve_stage(config, "student"), parallel.make_mesh()),
                                    variables)
    pooled = layout({"ce": dict(weight=1.0), "pkt": dict(weight=1.0)})
    assert [name for name, _ in pooled.views["image"].shapes] == ["logits", "taps/pooled"]
    feats = layout({"ce": dict(weight=1.0), "at": dict(weight=1.0)})  # small feature maps at this width
    assert [name for name, _ in feats.views["image"].shapes][:2] == ["logits", "taps/feats/0"]
    monkeypatch.setattr(teacher_cache, "MAX_TAP_FLOATS", 16)
    assert "taps/feats/0" in layout({"ce": dict(weight=1.0), "at": dict(weight=1.0)})
    assert "exceed 16 floats per example" in layout({"ce": dict(weight=1.0), "at": dict(weight=1.0)})
    ofd = layout({"ce": dict(weight=1.0), "ofd": dict(weight=1.0, teacher_bn_mode="eval")})
    assert "teacher tap(s) ['preact_bn'] hold parameters" in ofd


def test_a_cached_student_with_taps_equals_the_uncached_one(teacher_dir, tmp_path):
    losses = {"ce": dict(weight=1.0), "pkt": dict(weight=1.0), "kd": dict(weight=1.0)}
    runs = {}
    for name, cache in (("plain", ""), ("cached", str(tmp_path / "cache"))):
        config = _config(teacher_dir, cache)
        config.stages.student.losses = losses
        loop.run_stage(config, "student", str(tmp_path / name))
        runs[name] = str(tmp_path / name)
    _same_run(runs["plain"], runs["cached"])


def test_bfloat16_storage_rounds_the_logits_and_is_part_of_the_identity(teacher_dir, tmp_path):
    from kdjax.train import recipe, resume
    cache = str(tmp_path / "cache")
    loop.run_stage(_config(teacher_dir, cache, cache_dtype="bfloat16"), "student", str(tmp_path / "w"))
    (folder,) = glob.glob(os.path.join(cache, "*"))
    assert json.load(open(os.path.join(folder, "key.json")))["dtype"] == "bfloat16"
    stored = teacher_cache.open_array(os.path.join(folder, "logits"), create=False)[:STEPS].read().result()
    assert stored.dtype.name == "bfloat16"
    exact_dir = str(tmp_path / "exact")
    loop.run_stage(_config(teacher_dir, exact_dir), "student", str(tmp_path / "x"))
    (exact_folder,) = glob.glob(os.path.join(exact_dir, "*"))
    exact = teacher_cache.open_array(os.path.join(exact_folder, "logits"), create=False)[:STEPS].read().result()
    np.testing.assert_array_equal(np.asarray(stored, np.float32), np.asarray(exact.astype(stored.dtype), np.float32))
    ids = [resume.identity(recipe.resolve_stage(_config(teacher_dir, cache, cache_dtype=d), "student"))["teacher"]
           for d in ("float32", "bfloat16")]
    assert "cache_dtype" not in ids[0] and ids[1]["cache_dtype"] == "bfloat16"
    with pytest.raises(ConfigError, match=r"cache_dtype='float16'; valid: \('float32', 'bfloat16'\)"):
        loop.run_stage(_config(teacher_dir, cache, cache_dtype="float16"), "student", str(tmp_path / "y"))


def test_a_full_disk_is_refused_with_the_size(teacher_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(teacher_cache.shutil, "disk_usage", lambda p: collections.namedtuple("usage", "total used free")(10, 10, 100))
    with pytest.raises(ConfigError, match=r"needs 0.00 GB in .*, which has 0.00 GB free.*cache_dtype='bfloat16'"):
        loop.run_stage(_config(teacher_dir, str(tmp_path / "cache")), "student", str(tmp_path / "w"))


def test_a_longer_stage_grows_the_cache(teacher_dir, tmp_path, one_step_chunks):
    cache = str(tmp_path / "cache")
    loop.run_stage(_config(teacher_dir, cache), "student", str(tmp_path / "a"))
    longer = _config(teacher_dir, cache)
    longer.stages.student.num_steps = STEPS + 2
    loop.run_stage(longer, "student", str(tmp_path / "b"))
    assert _cache_record(str(tmp_path / "b"))["chunks_written"] == 2


def test_a_second_view_is_added_without_recomputing_the_first(teacher_dir, tmp_path, capsys):
    """A KD student writes the weak view; an MLLD student on the same teacher and stream reads it and computes only
    its strong view (the weak view's blocks and checks untouched)."""
    cache = str(tmp_path / "cache")
    loop.run_stage(_config(teacher_dir, cache), "student", str(tmp_path / "kd"))
    (weak,) = glob.glob(os.path.join(cache, "*"))
    checks = teacher_cache.open_array(os.path.join(weak, "checks"), create=False).read().result()
    capsys.readouterr()
    mlld = _config(teacher_dir, cache)
    mlld.data.views = dict(mlld.data.views, image_strong=mlld.data.views["image"] + "|randaugment")
    mlld.stages.student.losses = {"ce": dict(weight=1.0), "mlld": dict(weight=1.0)}
    loop.run_stage(mlld, "student", str(tmp_path / "mlld"))
    out = capsys.readouterr().out
    passes = [line for line in out.splitlines() if "teacher pass:" in line]
    assert len(passes) == 1 and re.search(r"teacher pass: image_strong \d+ steps in", passes[0]), passes
    assert sorted(os.path.basename(f).split("-")[1] for f in glob.glob(os.path.join(cache, "*"))) == [
        "image", "image_strong"]
    np.testing.assert_array_equal(
        teacher_cache.open_array(os.path.join(weak, "checks"), create=False).read().result(), checks)
