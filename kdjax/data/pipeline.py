"""The input pipeline: a sampler's global batches, this process's slice, per-view preprocessing, batches.

Training, for global step s:
1. host: the sampler gives the global batch's dataset indices (a pure function of (seed, s)); this process keeps
   rows [p * L, (p + 1) * L) (L = global batch / process count); pipeline extras (CRD's contrast rows) are drawn
   for those rows. This runs inside tf.data's prefetching threads, not in the training loop's thread.
2. per example: the image is read (decoded in memory, or encoded bytes decoded here), then every named view
   applies its ops in order (`kdjax.data.ops`), seeded by (seed, s, row, view), then the dataset's normalisation.
3. batch of L, prefetched.
So a run restarted at step s sees exactly the batches an uninterrupted one does, whatever the process count.
Evaluation reads every example once in order, each process a contiguous part, padded with `_mask` = False so
that every process runs the same number of batches.
"""
import zlib
from typing import Iterator, Sequence

import numpy as np

from kdjax.data import ops as ops_lib
from kdjax.quiet_tensorflow import tf
from kdjax.data.sources import Split

# Per-dataset normalisation constants (mean, std per channel, on [0, 1] pixels).
NORMALIZATION = {
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),  # mdistiller / RepDistiller
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "digits": ((0.3054,), (0.3760,)),  # measured on the 1,437-image train split
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "none": ((0.0,), (1.0,)),  # [0, 1] pixels (L2D's multi-label recipe)
}


def normalization(dataset: str, choice=None) -> tuple[tuple, tuple]:
    """(mean, std) for `data.normalization`: None = the dataset's own constants (where kdjax knows them), a name
    from NORMALIZATION, or dict(mean=..., std=...)."""
    if isinstance(choice, dict) or hasattr(choice, "to_dict"):
        choice = dict(choice)
        if set(choice) != {"mean", "std"}:
            raise ValueError(f"normalization={choice}: a dict needs exactly 'mean' and 'std'")
        return tuple(choice["mean"]), tuple(choice["std"])
    key = choice or dataset.removeprefix("tfds:")
    if key in NORMALIZATION:
        return NORMALIZATION[key]
    if choice:
        raise ValueError(f"Unknown normalization {choice!r}; valid: {sorted(NORMALIZATION)} or "
                         "dict(mean=(...), std=(...))")
    raise ValueError(f"dataset {dataset!r} has no normalisation kdjax knows: set data.normalization to one of "
                     f"{sorted(NORMALIZATION)} (e.g. 'imagenet' for ImageNet-pretrained backbones, 'none' for [0, 1] "
                     "pixels) or dict(mean=(...), std=(...))")


def _view_seed_tag(name: str) -> int:
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


class _Reader:
    """Reads example `index` of a split as a uint8 HWC image tensor and its label."""

    def __init__(self, split: Split):
        self.split = split
        self._labels = tf.constant(split.labels)
        self._images = None if split.images is None else tf.constant(split.images)

    def __call__(self, index):
        label = tf.gather(self._labels, index)
        if self._images is not None:
            return tf.gather(self._images, index), label
        encoded = tf.numpy_function(lambda i: self.split.records[int(i)], [index], tf.string, stateful=False)
        image = tf.io.decode_image(encoded, channels=self.split.channels, expand_animations=False)
        return tf.ensure_shape(image, [None, None, self.split.channels]), label


class _Views:
    """Named views, each an op list applied in order, then the normalisation; output shapes fixed up front."""

    def __init__(self, views: dict[str, str], norm: tuple, reader: _Reader, probe: Sequence[int]):
        self.specs = dict(views)
        self.ops = {name: ops_lib.build(ops) + [ops_lib.normalize(*norm)] for name, ops in self.specs.items()}
        self.channels = reader.split.channels
        self.shapes = {}
        for name in self.specs:  # two examples: variable-size images need a size-fixing op in every view
            shapes = {tuple(self._apply(name, reader(tf.constant(i, tf.int64))[0], tf.constant([0, i], tf.int64))
                            .shape) for i in probe}
            if len(shapes) > 1:
                raise ValueError(f"view {name!r} = {self.specs[name]!r} gives images of different sizes {sorted(shapes)}"
                                 " for different examples; end it with a fixed-size op (resize(h, w), center_crop, "
                                 "random_resized_crop)")
            self.shapes[name] = shapes.pop()

    def _apply(self, name, image, seed):
        seed = tf.random.experimental.stateless_fold_in(seed, _view_seed_tag(name))
        for i, op in enumerate(self.ops[name]):
            image = op(image, tf.random.experimental.stateless_fold_in(seed, i))
            image = tf.ensure_shape(image, [None, None, self.channels])
        return image

    def __call__(self, image, seed) -> dict:
        return {name: tf.ensure_shape(self._apply(name, image, seed), self.shapes[name]) for name in self.specs}


def _probe(split: Split) -> list[int]:
    return sorted({0, len(split) - 1})


class TrainPipeline:
    """Training batches of one process: `batches(start_step)` yields local numpy batches with one key per view,
    `label`, `index` (the example's index in the split) and one key per extra."""

    def __init__(self, split: Split, sampler, views: dict[str, str], *, seed: int, norm: tuple,
                 process_index: int = 0, process_count: int = 1, extras: Sequence = ()):
        if sampler.batch_size % process_count:
            raise ValueError(f"batch size {sampler.batch_size} is not divisible by the process count {process_count}")
        if "image" not in views:
            raise ValueError(f"the training views {sorted(views)} need an 'image' view (what the networks see)")
        self.split, self.sampler, self.seed, self.extras = split, sampler, seed, tuple(extras)
        self.global_batch_size = sampler.batch_size
        self.local_batch_size = sampler.batch_size // process_count
        self.rows = np.arange(process_index * self.local_batch_size, (process_index + 1) * self.local_batch_size)
        self._reader = _Reader(split)
        self.views = _Views(views, norm, self._reader, _probe(split))

    @property
    def steps_per_epoch(self) -> int:
        return self.sampler.steps_per_epoch

    def _plan(self, step):
        index = self.sampler(int(step))[self.rows]
        out = [index.astype(np.int64), self.rows.astype(np.int64), np.full(len(index), step, np.int64)]
        return out + [np.asarray(extra(int(step), self.rows, index), np.int64) for extra in self.extras]

    def _dataset(self, start_step: int) -> tf.data.Dataset:
        keys = ["index", "row", "step"] + [e.key for e in self.extras]
        tout = [tf.int64] * len(keys)

        def plan(step):
            arrays = tf.numpy_function(self._plan, [step], tout, stateful=False)
            shapes = [(self.local_batch_size,)] * 3 + [(self.local_batch_size,) + e.shape() for e in self.extras]
            return {k: tf.ensure_shape(a, s) for k, a, s in zip(keys, arrays, shapes)}

        def element(ex):
            image, label = self._reader(ex["index"])
            seed = tf.random.experimental.stateless_fold_in(tf.stack([tf.constant(self.seed, tf.int64), ex["step"]]),
                                                            tf.cast(ex["row"], tf.int32))
            # int32 on the device side: JAX runs without 64-bit types by default
            out = dict(self.views(image, seed), label=label, index=tf.cast(ex["index"], tf.int32))
            out.update({e.key: tf.cast(ex[e.key], tf.int32) for e in self.extras})
            return out

        ds = tf.data.Dataset.range(start_step, np.iinfo(np.int64).max)
        ds = ds.map(plan, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()
        ds = ds.map(element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        options = tf.data.Options()
        options.deterministic = True
        return ds.batch(self.local_batch_size, drop_remainder=True).prefetch(2).with_options(options)

    def batches(self, start_step: int = 0) -> Iterator[dict]:
        """Infinite iterator of local numpy batches from global step `start_step` on."""
        return self._dataset(start_step).as_numpy_iterator()

    def element_spec(self) -> dict:
        """{key: (local shape, numpy dtype)} of one batch, without reading data."""
        return {k: ((self.local_batch_size,) + tuple(v.shape[1:]), v.dtype.as_numpy_dtype)
                for k, v in self._dataset(0).element_spec.items()}


class EvalPipeline:
    """Every example of a split once, in order: process p reads the p-th contiguous part; batches padded with
    `_mask` = False to the same count on every process."""

    def __init__(self, split: Split, view: str, *, global_batch_size: int, norm: tuple, process_index: int = 0,
                 process_count: int = 1):
        if global_batch_size % process_count:
            raise ValueError(f"eval batch size {global_batch_size} is not divisible by the process count "
                             f"{process_count}")
        self.split, self.norm, self.global_batch_size = split, norm, global_batch_size
        self.process_index, self.process_count = process_index, process_count
        self.local_batch_size = global_batch_size // process_count
        part = -(-len(split) // process_count)
        self.start, self.stop = min(process_index * part, len(split)), min((process_index + 1) * part, len(split))
        self.num_batches = max(1, -(-part // self.local_batch_size))
        self._reader = _Reader(split)
        self.views = _Views({"image": view}, norm, self._reader, _probe(split))

    def _dataset(self) -> tf.data.Dataset:
        def element(position):
            index = self.start + position
            valid = index < self.stop
            image, label = self._reader(tf.where(valid, index, 0))
            out = self.views(image, tf.constant([0, 0], tf.int64))
            return dict(out, label=label, index=tf.cast(index, tf.int32), _mask=valid)

        ds = tf.data.Dataset.range(self.num_batches * self.local_batch_size)
        ds = ds.map(element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.batch(self.local_batch_size).prefetch(2)

    def batches(self) -> Iterator[dict]:
        return self._dataset().as_numpy_iterator()
