"""An exact cache of a frozen teacher's outputs: computed once, read by every student that shares the teacher and the
data stream.

kdjax's training batches are a pure function of the data block, the seed, the global batch size and the step
(`kdjax.data.pipeline`), and a frozen teacher in eval mode maps each example on its own. So the outputs the loss
terms read (logits on every view they use, and small declared taps such as `pooled`) can be computed by one
teacher-only pass (no student, no gradients, every device; each step's batch in the step's own shape, dispatched
asynchronously, because XLA chooses convolution algorithms by shape and the cached outputs must be the bits the step
computes) and stored; a later stage with the same key, in any workdir, reads them instead of running the teacher in
every step.

A stage asks for it with `teacher=dict(..., cache=DIR)` (`cache_dtype='bfloat16'` halves the size and rounds the
outputs). It cannot be used, and the stage runs its teacher as before (the log says why), when a term calls the
teacher as a function (Jacobian matching, OFD's train-mode teacher), reads a tap that is not one row per example
(OFD's BatchNorm parameters), or reads taps larger than `MAX_TAP_FLOATS` per example (feature maps).

On disk (tensorstore, zarr v3), one folder per view: `DIR/<teacher>-<view>-<hash of the key>/` holds `key.json`
(everything the outputs depend on: the teacher's weights fingerprint and model, the data block without its
evaluation fields, the view's ops, seed, global batch, the stored outputs and their dtype), `layout.json` (steps per
chunk, rows per block), one array per output, [steps, global batch, *shape], and `checks`, [chunks, row blocks]
int64: the crc32 of each written block, -1 until written. A chunk is K steps of one process's rows, written by that
process (multi-host: every process writes and reads its own rows); its check is written after its data, so a pass
stopped anywhere resumes with the blocks it did not finish, and a block whose bytes no longer match its check is
refused when read (and recomputed by the next run). A folder whose key.json differs from the stage's key is never
read. The arrays grow when a later stage needs more steps (steps past a stage's end are well defined: the
pipeline is an infinite function of the step).
"""
import dataclasses
import hashlib
import json
import os
import shutil
import time
import zlib
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from kdjax import ops, parallel
from kdjax.errors import BadFileError, ConfigError
from kdjax.train import preemption
from kdjax.train import terms as terms_lib
from kdjax.train.logging import say

FORMAT = 1
MAX_TAP_FLOATS = 8192          # per example and tap: `pooled` vectors yes, feature maps no
PASS_IMAGES = 512              # images per process in one chunk (K steps of one process's rows)
DTYPES = ("float32", "bfloat16")
EVAL_ONLY_DATA_FIELDS = ("eval_split", "eval_classes", "eval_view", "expect", "contrast_negatives", "data_dir")


class CacheError(BadFileError):
    """A cache folder that cannot be read as the stage needs it (a changed key, a corrupted block)."""


# ---- what is stored ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ViewLayout:
    """The teacher outputs stored for one view: its logits and the declared taps, flattened to named arrays."""
    view: str
    shapes: tuple            # ((array name, per-example shape), ...): 'logits', then 'taps/<path>'
    taps_tree: object        # treedef of the declared taps dict

    def batch_key(self, name: str) -> str:
        return f"teacher/{self.view}/{name}"

    def outputs(self, batch: dict):
        """(logits, taps) of this view from a batch that carries the cached arrays."""
        logits = batch[self.batch_key("logits")]
        leaves = [batch[self.batch_key(name)] for name, _ in self.shapes[1:]]
        return logits, jax.tree.unflatten(self.taps_tree, leaves)


@dataclasses.dataclass(frozen=True)
class Layout:
    views: dict              # view -> ViewLayout

    def outputs(self, batch: dict, view: str):
        return self.views[view].outputs(batch)


def _tap_name(path) -> str:
    return "taps/" + "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def layout(plan, teacher_vars) -> Layout | str:
    """What the stage's terms read from the teacher, per view; or the reason it cannot be cached."""
    needs = terms_lib.Needs.of(plan.weighted_terms)
    if needs.calls_teacher:
        return f"loss term(s) {list(needs.calls_teacher)} call the teacher as a function"
    shared = sorted(needs.teacher_taps & needs.shared_taps)
    if shared:
        return f"teacher tap(s) {shared} hold parameters, not one row per example"
    image = plan.batch_spec["image"]
    one = jax.ShapeDtypeStruct((1,) + image.shape[1:], image.dtype)
    logits, taps = jax.eval_shape(lambda v, x: plan.teacher_model.apply(v, x, train=False), teacher_vars, one)
    taps = {k: taps[k] for k in sorted(needs.teacher_taps) if k in taps}
    flat, tree = jax.tree.flatten_with_path(taps)
    large = [_tap_name(p) for p, leaf in flat if int(np.prod(leaf.shape[1:])) > MAX_TAP_FLOATS]
    if large:
        return f"teacher tap(s) {large} exceed {MAX_TAP_FLOATS} floats per example (feature maps)"
    shapes = (("logits", tuple(logits.shape[1:])),) + tuple((_tap_name(p), tuple(leaf.shape[1:])) for p, leaf in flat)
    views = (terms_lib.MAIN_VIEW,) + needs.extra_views
    return Layout({v: ViewLayout(v, shapes, tree) for v in views})


def key(plan, fingerprint: str, view: str, view_layout: ViewLayout, dtype: str) -> dict:
    """Everything the stored outputs of one view depend on."""
    stage_spec = plan.spec
    data = {k: v for k, v in dataclasses.asdict(stage_spec.data).items() if k not in EVAL_ONLY_DATA_FIELDS}
    data["views"] = {view: data["views"][view]}
    return json.loads(json.dumps({
        "format": FORMAT, "teacher": {"fingerprint": fingerprint, "model": stage_spec.teacher.model},
        "data": data, "seed": stage_spec.seed, "global_batch": stage_spec.batch_size, "view": view,
        "outputs": [[name, list(shape)] for name, shape in view_layout.shapes], "dtype": dtype,
        "num_examples": plan.data.num_examples}, default=str))


def _digest(record: dict) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:12]


# ---- one view's stored arrays -----------------------------------------------------------------------------------
def open_array(path: str, *, create: bool, dtype=None, shape=None, chunks=None, fill=None):
    import tensorstore as ts
    store = {"driver": "zarr3", "kvstore": {"driver": "file", "path": path}}
    if not create:
        return ts.open(store, open=True).result()
    layout_ = ts.ChunkLayout(write_chunk_shape=chunks)
    return ts.open(store, create=True, dtype=dtype, shape=shape, chunk_layout=layout_,
                   fill_value=fill).result()


def _crc(arrays: list) -> int:
    crc = 0
    for a in arrays:
        crc = zlib.crc32(np.ascontiguousarray(a).tobytes(), crc)
    return crc


class Entry:
    """The stored outputs of one view: arrays [steps, global batch, *shape] in blocks of (steps_per_chunk,
    rows_per_block), and their checks."""

    def __init__(self, directory: str, view_layout: ViewLayout, dtype: str, steps_per_chunk: int,
                 rows_per_block: int):
        self.directory, self.view_layout, self.dtype = directory, view_layout, dtype
        self.steps_per_chunk, self.rows_per_block = steps_per_chunk, rows_per_block
        self.arrays = {name: open_array(os.path.join(directory, name), create=False)
                       for name, _ in view_layout.shapes}
        self.checks = open_array(os.path.join(directory, "checks"), create=False)

    @classmethod
    def open(cls, root: str, record: dict, view_layout: ViewLayout, *, steps: int, local_batch: int,
             global_batch: int) -> "Entry":
        """Opens (process 0 creates or grows) the folder of `record`, for at least `steps` steps."""
        teacher = record["teacher"]["model"].get("name", "teacher")
        directory = os.path.join(root, f"{teacher}-{record['view']}-{_digest(record)}")
        steps_per_chunk = max(1, min(64, PASS_IMAGES // local_batch))
        if jax.process_index() == 0:
            _create_or_grow(directory, record, view_layout, steps, steps_per_chunk, local_batch, global_batch)
        _sync("teacher cache open")
        stored = _read_json(os.path.join(directory, "key.json"))
        if stored != record:
            raise CacheError(f"teacher cache {directory}: its key.json does not match this stage's key (changed by "
                             "hand, or a hash collision); it is never read. Delete the folder or use another cache")
        meta = _read_json(os.path.join(directory, "layout.json"))
        return cls(directory, view_layout, record["dtype"], meta["steps_per_chunk"], meta["rows_per_block"])

    @property
    def capacity(self) -> int:
        return int(self.checks.shape[0]) * self.steps_per_chunk

    def my_blocks(self, rows: np.ndarray) -> range:
        return range(int(rows[0]) // self.rows_per_block, int(rows[-1]) // self.rows_per_block + 1)

    def missing_chunks(self, steps: int, rows: np.ndarray) -> list[int]:
        """The chunks up to `steps` in which a block of this process's rows has no check yet."""
        chunks = -(-steps // self.steps_per_chunk)
        blocks = self.my_blocks(rows)
        checks = self.checks[:chunks, blocks.start:blocks.stop].read().result()
        return [int(c) for c in np.nonzero(np.any(checks < 0, axis=1))[0]]

    def write(self, chunk: int, block: int, outputs: dict) -> None:
        """One process's block of one chunk: outputs {name: [steps_per_chunk, rows_per_block, *shape]}; the check
        last, so that a block counts only once all its arrays are on disk."""
        import tensorstore as ts
        steps = slice(chunk * self.steps_per_chunk, (chunk + 1) * self.steps_per_chunk)
        rows = slice(block * self.rows_per_block, (block + 1) * self.rows_per_block)
        stored = []
        for name, _ in self.view_layout.shapes:
            value = np.asarray(outputs[name], np.float32)
            if self.dtype == "bfloat16":
                value = value.astype(ts.bfloat16.numpy_dtype)
            self.arrays[name][steps, rows].write(value).result()
            stored.append(value)
        self.checks[chunk, block].write(np.int64(_crc(stored))).result()

    def read(self, chunk: int, rows: np.ndarray) -> dict:
        """{batch key: float32 [steps_per_chunk, len(rows), *shape]} of one chunk, every block checked."""
        blocks = self.my_blocks(rows)
        checks = self.checks[chunk, blocks.start:blocks.stop].read().result()
        steps = slice(chunk * self.steps_per_chunk, (chunk + 1) * self.steps_per_chunk)
        span = slice(blocks.start * self.rows_per_block, blocks.stop * self.rows_per_block)
        values = {name: self.arrays[name][steps, span].read().result() for name, _ in self.view_layout.shapes}
        for i, block in enumerate(blocks):
            part = slice(i * self.rows_per_block, (i + 1) * self.rows_per_block)
            if checks[i] < 0 or _crc([v[:, part] for v in values.values()]) != checks[i]:
                self._forget(chunk, block)
                raise CacheError(
                    f"teacher cache {self.directory}: steps [{steps.start}, {steps.stop}) rows [{block * self.rows_per_block}, "
                    f"{(block + 1) * self.rows_per_block}) fail their check (a partial copy or disk corruption); the "
                    "block is marked missing and the next run recomputes it")
        offset = int(rows[0]) - span.start
        return {self.view_layout.batch_key(name): np.asarray(v[:, offset:offset + len(rows)], np.float32)
                for name, v in values.items()}

    def _forget(self, chunk: int, block: int) -> None:
        self.checks[chunk, block].write(np.int64(-1)).result()


def _read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _write_json(path: str, record: dict) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def _sync(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(name)


def _create_or_grow(directory, record, view_layout, steps, steps_per_chunk, local_batch, global_batch):
    import tensorstore as ts
    chunks = -(-steps // steps_per_chunk)
    if not os.path.exists(os.path.join(directory, "key.json")):
        os.makedirs(directory, exist_ok=True)
        dtype = ts.bfloat16 if record["dtype"] == "bfloat16" else ts.float32
        for name, shape in view_layout.shapes:
            open_array(os.path.join(directory, name), create=True, dtype=dtype,
                        shape=[chunks * steps_per_chunk, global_batch, *shape],
                        chunks=[steps_per_chunk, local_batch, *shape])
        open_array(os.path.join(directory, "checks"), create=True, dtype=ts.int64,
                    shape=[chunks, global_batch // local_batch], chunks=[1, 1], fill=-1)
        _write_json(os.path.join(directory, "layout.json"),
                    {"steps_per_chunk": steps_per_chunk, "rows_per_block": local_batch})
        _write_json(os.path.join(directory, "key.json"), record)  # last: the folder is complete
        return
    meta = _read_json(os.path.join(directory, "layout.json"))
    checks = open_array(os.path.join(directory, "checks"), create=False)
    if checks.shape[0] < chunks:
        per = meta["steps_per_chunk"]
        chunks = -(-steps // per)
        for name, shape in view_layout.shapes:
            array = open_array(os.path.join(directory, name), create=False)
            array.resize(exclusive_max=[chunks * per, global_batch, *shape], expand_only=True).result()
        checks.resize(exclusive_max=[chunks, checks.shape[1]], expand_only=True).result()


# ---- the teacher pass -------------------------------------------------------------------------------------------
def _size(entries, chunks: int) -> int:
    total = 0
    for entry in entries:
        per_row = sum(int(np.prod(shape)) for _, shape in entry.view_layout.shapes)
        itemsize = 2 if entry.dtype == "bfloat16" else 4
        total += chunks * entry.steps_per_chunk * entry.rows_per_block * per_row * itemsize
    return total


def check_room(root: str, needed: int, dtype: str) -> None:
    free = shutil.disk_usage(root).free
    if needed > free:
        hint = "" if dtype == "bfloat16" else f", or cache_dtype='bfloat16' ({needed / 2e9:.2f} GB)"
        raise ConfigError(f"the teacher cache needs {needed / 1e9:.2f} GB in {root}, which has {free / 1e9:.2f} GB "
                          f"free: free some space, set another teacher.cache directory{hint}")


def _teacher_pass_fn(plan, mesh):
    declared = terms_lib.Needs.of(plan.weighted_terms).teacher_taps

    def forward(variables, images):  # only what is stored: other outputs would change XLA's fusions, and the bits
        logits, taps = plan.teacher_model.apply(variables, images, train=False)
        return logits, {k: taps[k] for k in sorted(declared) if k in taps}
    repl, data = parallel.replicated(mesh), parallel.batch_sharding(mesh)
    # the step's compiler options: the same XLA:CPU convolutions, so that the cached logits are the step's own bits
    return ops.jit(forward, mesh=mesh, in_shardings=(repl, data), out_shardings=data)


def _local(array) -> np.ndarray:
    """This process's rows of a batch-sharded global array, in order."""
    shards = sorted(array.addressable_shards, key=lambda s: s.index[0].start or 0)
    return np.concatenate([np.asarray(s.data) for s in shards], axis=0)


def fill(plan, teacher_vars, mesh, entries: dict, missing: dict, on_event=lambda *a, **k: None) -> str:
    """Computes and writes each view's missing chunks (`missing`: view -> chunk indices; a view another stage has
    already written, such as MLLD's weak view after a KD student, costs nothing); returns 'done' or 'preempted'.
    Calls `on_event('teacher_pass', step=<steps written through>)` after each chunk."""
    missing = {view: set(chunks) for view, chunks in missing.items()}
    chunks = sorted(set().union(*missing.values()))
    if not chunks:
        return "done"
    train, forward = plan.data.train, _teacher_pass_fn(plan, mesh)
    first = next(iter(entries.values()))
    per = first.steps_per_chunk
    block = int(train.rows[0]) // first.rows_per_block
    sharding = parallel.batch_sharding(mesh)
    runs, batches, expected, images = 0, None, None, 0
    started = time.time()
    for chunk in chunks:
        if preemption.should_stop():
            return "preempted"
        if expected != chunk * per:  # not contiguous with the last chunk: restart the stream here
            batches, runs = train.batches(chunk * per), runs + 1
        steps = [next(batches) for _ in range(per)]
        expected = (chunk + 1) * per
        for view, entry in ((v, e) for v, e in entries.items() if chunk in missing[v]):
            # one forward per step, dispatched before any is fetched: the step's own batch shape, so that XLA picks
            # the same convolution algorithms and the cached outputs are the bits the step would compute
            outs = [forward(teacher_vars, jax.make_array_from_process_local_data(sharding, b[view])) for b in steps]
            flat = [[_local(x) for x in [logits] + jax.tree.leaves(taps)] for logits, taps in outs]
            names = [name for name, _ in entry.view_layout.shapes]
            entry.write(chunk, block, {name: np.stack([f[i] for f in flat]) for i, name in enumerate(names)})
            images += per * plan.spec.batch_size
        on_event("teacher_pass", step=(chunk + 1) * per)
    seconds = time.time() - started
    written = ", ".join(f"{view} {len(c) * per} steps" for view, c in missing.items() if c)
    say(plan.spec.name, f"teacher pass: {written} in {seconds:.1f} s "
                        f"({images / max(seconds, 1e-9):,.0f} images/s over all processes)")
    return "done"


# ---- a stage reading it -----------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Prepared:
    plan: object             # the stage's plan, its step reading the teacher from the batch
    batches: callable        # start step -> iterator of local batches with the cached outputs
    record: dict             # for teacher.json: folders, what was read and written
    status: str              # 'done' or 'preempted' (the teacher pass stopped)


def _cached_batches(train, entries: dict) -> callable:
    def batches(start: int) -> Iterator[dict]:
        stream, step = train.batches(start), start
        per = next(iter(entries.values())).steps_per_chunk
        while True:
            chunk = step // per
            outputs = {}
            for entry in entries.values():
                outputs.update(entry.read(chunk, train.rows))
            for i in range(step - chunk * per, per):
                batch = next(stream)
                batch.update({k: v[i] for k, v in outputs.items()})
                step += 1
                yield batch
    return batches


def with_cache(plan, cache_layout: Layout, mesh):
    sharding = parallel.batch_sharding(mesh)
    spec = dict(plan.batch_spec)
    for view_layout in cache_layout.views.values():
        for name, shape in view_layout.shapes:
            spec[view_layout.batch_key(name)] = jax.ShapeDtypeStruct((plan.spec.batch_size,) + shape, jnp.float32,
                                                                     sharding=sharding)
    networks = dataclasses.replace(plan.networks, teacher_layout=cache_layout)
    return dataclasses.replace(plan, batch_spec=spec, networks=networks)


def prepare(plan, teacher, mesh, on_event=lambda *a, **k: None) -> Prepared | None:
    """The cached form of a distillation stage whose teacher block sets `cache`: fills what is missing (the
    teacher pass), then reads. None when the stage has no cache or cannot use one (logged with the reason)."""
    block = plan.spec.teacher
    if block is None or not block.cache:
        return None
    if block.cache_dtype not in DTYPES:
        raise ConfigError(f"stages.{plan.spec.name}.teacher.cache_dtype={block.cache_dtype!r}; valid: {DTYPES}")
    cache_layout = layout(plan, teacher.variables)
    if isinstance(cache_layout, str):
        say(plan.spec.name, f"teacher cache not used: {cache_layout}; the teacher runs in every step")
        return None
    os.makedirs(block.cache, exist_ok=True)
    train = plan.data.train
    entries = {}
    for view, view_layout in cache_layout.views.items():
        record = key(plan, teacher.fingerprint, view, view_layout, block.cache_dtype)
        entries[view] = Entry.open(block.cache, record, view_layout, steps=plan.total_steps,
                                   local_batch=train.local_batch_size, global_batch=plan.spec.batch_size)
    first = next(iter(entries.values()))
    missing_by_view = {v: e.missing_chunks(plan.total_steps, train.rows) for v, e in entries.items()}
    missing = sorted(set().union(*missing_by_view.values()))
    folders = [e.directory for e in entries.values()]
    if missing and first.rows_per_block != train.local_batch_size:
        raise CacheError(f"teacher cache {first.directory} was written by {plan.spec.batch_size // first.rows_per_block}"
                         " process(es) and misses steps this stage needs; fill it with that process count (reading "
                         "works with any)")
    if missing:
        needed = sum(_size([entries[v]], len(c)) for v, c in missing_by_view.items()) * jax.process_count()
        check_room(block.cache, needed, block.cache_dtype)
        say(plan.spec.name, f"teacher cache: writing {len(missing) * first.steps_per_chunk} steps x "
                            f"{plan.spec.batch_size} rows, {needed / 1e6:,.1f} MB ({block.cache_dtype}), to {folders}")
    else:
        say(plan.spec.name, f"teacher cache: reading {folders} (all {plan.total_steps} steps present)")
    status = fill(plan, teacher.variables, mesh, entries, missing_by_view, on_event)
    _sync("teacher cache filled")
    record = {"folders": folders, "dtype": block.cache_dtype, "chunks_written": len(missing),
              "steps_per_chunk": first.steps_per_chunk}
    return Prepared(with_cache(plan, cache_layout, mesh), _cached_batches(train, entries), record, status)
