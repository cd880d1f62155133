"""The image-classification input pipeline: deterministic, epoch-based, per-process sharded.

Determinism is by construction, so that a resumed run sees exactly the batches an uninterrupted one would:
- epoch e's order is a shuffle seeded by (seed, e, process index); nothing carries over between epochs;
- augmentation uses stateless TF ops seeded by (seed, e) and the example's global index;
- resuming at step s means: epoch s // steps_per_epoch, skipping s % steps_per_epoch batches *before* augmentation.
Each process keeps a disjoint, strided part of the split (`Dataset.shard` over the global index order), so the
global batch is the concatenation of the process-local batches. Every process runs the same number of steps:
steps_per_epoch is computed from the smallest shard.
"""
import dataclasses
from typing import Iterator, Sequence

import numpy as np
import tensorflow as tf

from kdjax.data import randaugment

# TensorFlow only feeds data here; it must not reserve GPU memory that JAX needs.
tf.config.set_visible_devices([], "GPU")

# Per-dataset normalisation constants (mean, std per channel, on [0, 1] pixels).
NORMALIZATION = {
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),  # mdistiller / RepDistiller
    "reviewkd": ((125.3 / 255, 123.0 / 255, 113.9 / 255), (63.0 / 255, 62.1 / 255, 66.7 / 255)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "digits": ((0.3054,), (0.3760,)),  # measured on the 1,437-image train split
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "none": ((0.0,), (1.0,)),
}


def normalization_for(name: str, override: str | None = None):
    key = override or name.removeprefix("tfds:")
    if key not in NORMALIZATION:
        if override:
            raise ValueError(f"Unknown normalization {override!r}; valid: {sorted(NORMALIZATION)}")
        return (0.5,), (0.5,)
    return NORMALIZATION[key]


def few_shot_indices(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Sorted global indices of `per_class` examples of every class, drawn without replacement from `seed`."""
    rng = np.random.default_rng([seed, 0x5B5E7])
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < per_class:
            raise ValueError(f"few-shot subset: class {c} has {len(members)} examples, fewer than per_class={per_class}")
        chosen.append(rng.choice(members, per_class, replace=False))
    return np.sort(np.concatenate(chosen))


AUGMENT_OPS = ("crop", "flip", "randaugment", "cutout")  # applied in this order, whatever order the config lists


def negative_pools(all_labels: np.ndarray, subset: np.ndarray | None = None) -> dict:
    """class -> indices of the (trained-on) examples of every other class."""
    members = np.arange(len(all_labels)) if subset is None else np.asarray(subset)
    return {c: members[all_labels[members] != c] for c in np.unique(all_labels[members])}


def contrast_indices(index: np.ndarray, labels: np.ndarray, pools: dict, num_negatives: int,
                     rng: np.random.Generator) -> np.ndarray:
    """CRD 'exact' contrast rows [B, K+1]: column 0 is the example's own index, then K indices drawn uniformly
    without replacement among the examples of other classes (RepDistiller CIFAR100InstanceSample)."""
    rows = np.empty((len(index), num_negatives + 1), np.int32)
    rows[:, 0] = index
    for i, c in enumerate(labels):
        others = pools[c]
        if len(others) < num_negatives:
            raise ValueError(f"CRD: {num_negatives} negatives requested but class {c} has only {len(others)} "
                             f"examples of other classes")
        rows[i, 1:] = rng.choice(others, num_negatives, replace=False)
    return rows


def _epoch_seed(seed: int, epoch: int, process_index: int = 0) -> int:
    return int(np.random.SeedSequence([seed, epoch, process_index]).generate_state(1)[0] & 0x7FFFFFFF)


@dataclasses.dataclass
class Pipeline:
    """Train or eval batches of one split, for one process.

    Attributes:
      source: a `kdjax.data.sources` source.
      split: split name.
      global_batch_size: examples per step over all processes.
      seed: shuffle / augmentation / subset seed.
      image_size: output H = W (resized once, before caching, when it differs from the source).
      mean, std: per-channel normalisation of [0, 1] pixels.
      augment: for training, ops among 'crop' (random crop after zero padding), 'flip', 'randaugment' and
        'cutout' (`randaugment` module; always applied in that order).
      strong_augment: when set, a second independently augmented view 'image_strong' of every training example
        (MLLD's weak/strong views: augment=('crop', 'flip'), strong_augment=('crop', 'flip', 'randaugment',
        'cutout')).
      contrast_negatives: K > 0 adds 'contrast_idx' [B, K+1] (CRD's exact-mode rows) to every training batch,
        drawn on the host from (seed, epoch, process, batch), so resumed runs see the same rows.
      crop_padding: zero padding before the random crop.
      subset: optional sorted global indices to keep (few-shot subsets).
      process_index, process_count: this process's shard.
    """
    source: object
    split: str
    global_batch_size: int
    seed: int = 0
    image_size: int | None = None
    mean: Sequence[float] = (0.5,)
    std: Sequence[float] = (0.5,)
    augment: Sequence[str] = ()
    crop_padding: int = 4
    strong_augment: Sequence[str] = ()
    contrast_negatives: int = 0
    subset: np.ndarray | None = None
    process_index: int = 0
    process_count: int = 1

    def __post_init__(self):
        if self.global_batch_size % self.process_count:
            raise ValueError(f"batch size {self.global_batch_size} is not divisible by the process count "
                             f"{self.process_count}")
        bad = (set(self.augment) | set(self.strong_augment)) - set(AUGMENT_OPS)
        if bad:
            raise ValueError(f"Unknown augmentation {sorted(bad)}; valid: {list(AUGMENT_OPS)}")
        self.local_batch_size = self.global_batch_size // self.process_count
        self.num_examples = (len(self.source.labels(self.split)) if self.subset is None else len(self.subset))
        self._base = self._build_base()

    # ---- construction -------------------------------------------------------------------------------------------
    def _build_base(self) -> tf.data.Dataset:
        ds = self.source.dataset(self.split)
        if self.subset is not None:
            keep = np.zeros(len(self.source.labels(self.split)), bool)
            keep[self.subset] = True
            keep = tf.constant(keep)
            ds = ds.filter(lambda ex: tf.gather(keep, ex["index"]))
        ds = ds.shard(self.process_count, self.process_index)
        size = self.image_size

        def resize(ex):
            image = ex["image"]
            if size is not None:
                image = tf.cast(tf.clip_by_value(tf.round(tf.image.resize(image, (size, size))), 0, 255), tf.uint8)
            return dict(ex, image=image)

        return ds.map(resize, num_parallel_calls=tf.data.AUTOTUNE).cache()

    @property
    def split_size(self) -> int:
        """Examples in the whole split: the range of the global 'index' (CRD's memory-bank rows)."""
        return len(self.source.labels(self.split))

    @property
    def shard_size(self) -> int:
        """Examples of the smallest process shard (strided sharding: sizes differ by at most one)."""
        return self.num_examples // self.process_count

    @property
    def steps_per_epoch(self) -> int:
        steps = self.shard_size // self.local_batch_size
        if steps == 0:
            raise ValueError(f"split {self.split!r} has {self.num_examples} examples, fewer than one global batch "
                             f"of {self.global_batch_size}")
        return steps

    def _normalize(self, image):
        image = tf.cast(image, tf.float32) / 255.0
        return (image - tf.constant(self.mean, tf.float32)) / tf.constant(self.std, tf.float32)

    def _augmented(self, image, seed, ops):
        seeds = tf.random.experimental.stateless_split(seed, 4)
        if "crop" in ops:
            p = self.crop_padding
            h, w, c = image.shape
            padded = tf.pad(image, [[p, p], [p, p], [0, 0]])
            image = tf.image.stateless_random_crop(padded, (h, w, c), seed=seeds[0])
        if "flip" in ops:
            image = tf.image.stateless_random_flip_left_right(image, seed=seeds[1])
        if "randaugment" in ops:
            image = randaugment.rand_augment(image, seeds[2])
        if "cutout" in ops:
            image = randaugment.cutout(image, seeds[3])
        return image

    def _augment(self, ex, epoch_seed):
        seed = tf.stack([tf.cast(epoch_seed, tf.int64), ex["index"]])
        out = dict(ex, image=self._augmented(ex["image"], seed, self.augment))
        if self.strong_augment:
            strong_seed = tf.random.experimental.stateless_fold_in(seed, 1)
            out["image_strong"] = self._augmented(ex["image"], strong_seed, self.strong_augment)
        return out

    # ---- training -----------------------------------------------------------------------------------------------
    def epoch(self, epoch: int, skip_batches: int = 0) -> tf.data.Dataset:
        """Local batches of one training epoch, starting after `skip_batches` batches."""
        seed = _epoch_seed(self.seed, epoch, self.process_index)
        ds = self._base.shuffle(self.shard_size + 1, seed=seed, reshuffle_each_iteration=False)
        ds = ds.take(self.steps_per_epoch * self.local_batch_size).skip(skip_batches * self.local_batch_size)
        aug_seed = _epoch_seed(self.seed, epoch)
        ds = ds.map(lambda ex: self._augment(ex, aug_seed), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        views = ("image", "image_strong") if self.strong_augment else ("image",)
        ds = ds.map(lambda ex: dict(ex, **{v: self._normalize(ex[v]) for v in views}),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.batch(self.local_batch_size, drop_remainder=True).prefetch(2)

    def train_batches(self, start_step: int = 0) -> Iterator[dict]:
        """Infinite iterator of local numpy batches from global step `start_step` on."""
        epoch, offset = divmod(start_step, self.steps_per_epoch)
        pools = negative_pools(self.source.labels(self.split), self.subset) if self.contrast_negatives else None
        while True:
            for b, batch in enumerate(self.epoch(epoch, offset).as_numpy_iterator(), start=offset):
                if self.contrast_negatives:
                    rng = np.random.default_rng([self.seed, epoch, self.process_index, b, 0xC0D])
                    batch["contrast_idx"] = contrast_indices(batch["index"], batch["label"], pools,
                                                             self.contrast_negatives, rng)
                yield batch
            epoch, offset = epoch + 1, 0

    # ---- evaluation ---------------------------------------------------------------------------------------------
    @property
    def eval_steps(self) -> int:
        largest_shard = -(-self.num_examples // self.process_count)
        return -(-largest_shard // self.local_batch_size)

    def eval_batches(self) -> Iterator[dict]:
        """All local examples once, in order, padded with `_mask` = 0 so every process runs `eval_steps` batches."""
        ds = self._base.map(lambda ex: dict(ex, image=self._normalize(ex["image"])), num_parallel_calls=tf.data.AUTOTUNE)
        it = ds.batch(self.local_batch_size).prefetch(2).as_numpy_iterator()
        template = None
        for _ in range(self.eval_steps):
            batch = next(it, None)
            if batch is None:  # this process ran out: send a fully masked batch
                batch = {k: np.zeros_like(v[:0]) for k, v in template.items()}
            template = batch
            n = len(batch["label"])
            pad = self.local_batch_size - n
            batch = {k: np.concatenate([v, np.zeros((pad,) + v.shape[1:], v.dtype)]) for k, v in batch.items()}
            batch["_mask"] = np.arange(self.local_batch_size) < n
            yield batch
