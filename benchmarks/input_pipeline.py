"""Does the input pipeline keep up with training, and does host-side sampling stay off the training thread?

    python -m benchmarks.input_pipeline [--dataset fashion_mnist] [--batch 64] [--batches 200]

Measured in one run, on the same machine:
1. images/s of kdjax's training pipeline (crop + flip views, and MLLD's extra RandAugment + Cutout view) against the
   images/s a KD train step consumes (resnet32x4 -> resnet8x4, benchmarks/train_step.py);
2. the same crop + flip on grain (`grain.MapDataset` with NumPy ops, prefetched by threads): the reason kdjax keeps
   tf.data for per-view preprocessing;
3. CRD's contrast rows (K = 16384 negatives per example, drawn on the host): the wait the training loop sees per
   step when it consumes batches at the train step's pace, with and without the rows. The rows are drawn inside
   tf.data's prefetching threads, so the wait should stay near zero although drawing them costs ~20 ms a step.
Last line: `ratio kdjax/reference: X.XX` = step images/s / pipeline images/s (below 0.5: the pipeline is at least
2x faster than training needs).
"""
import argparse
import time

import numpy as np

from benchmarks.train_step import kdjax_step, time_calls

VIEW = "resize(32)|pad_crop(4)|flip"


def _data(name, batch, **extra):
    from kdjax import data
    cfg = dict(dict(name=name, views={"image": VIEW}), **extra)
    return data.build(cfg, seed=0, batch_size=batch, eval_batch_size=batch)


def pipeline_rate(name, batch, batches, views=None):
    d = _data(name, batch, **({"views": views} if views else {}))
    it = d.train.batches()
    for _ in range(5):
        next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch / (time.perf_counter() - t0)


def grain_rate(name, batch, batches, threads=2):
    """The same crop + flip in NumPy through grain's random-access MapDataset and its prefetching threads."""
    import grain
    from kdjax import data
    d = _data(name, batch)
    images = d.train_split.images
    mean, std = data.normalization(name)
    images32 = np.stack([np.asarray(_resize32(im)) for im in images[: batch * (batches + 8)]])

    def crop_flip(image, rng):
        padded = np.pad(image, ((4, 4), (4, 4), (0, 0)))
        i, j = rng.integers(0, 9, 2)
        out = padded[i:i + 32, j:j + 32]
        if rng.random() < 0.5:
            out = out[:, ::-1]
        return (out.astype(np.float32) / 255.0 - mean) / std

    ds = grain.MapDataset.source(images32).shuffle(seed=0).random_map(crop_flip, seed=0).batch(batch)
    it = iter(ds.to_iter_dataset(grain.ReadOptions(num_threads=threads, prefetch_buffer_size=4 * batch)))
    for _ in range(5):
        next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch / (time.perf_counter() - t0)


def _resize32(image):
    import tensorflow as tf
    return tf.cast(tf.round(tf.image.resize(tf.cast(image, tf.float32), (32, 32))), tf.uint8).numpy()


def wait_per_step(name, batch, steps, step_seconds, **extra):
    """Mean time the consumer blocks in next() per step when each step takes `step_seconds` (simulated)."""
    d = _data(name, batch, **extra)
    it = d.train.batches()
    for _ in range(5):
        next(it)
    waited = 0.0
    for _ in range(steps):
        t0 = time.perf_counter()
        next(it)
        waited += time.perf_counter() - t0
        time.sleep(step_seconds)
    return waited / steps


def sampling_cost(name, batch, negatives, repeats=20):
    """Host time to draw one step's contrast rows (what would block the loop if done in its thread)."""
    from kdjax import data
    split = data.get_split(name, "train")
    rows = data.ContrastRows(split.labels, np.arange(len(split)), negatives, seed=0)
    index = np.arange(batch)
    t0 = time.perf_counter()
    for step in range(repeats):
        rows(step, index, index)
    return (time.perf_counter() - t0) / repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--negatives", type=int, default=16384)
    args = parser.parse_args()
    weak = pipeline_rate(args.dataset, args.batch, args.batches)
    strong = pipeline_rate(args.dataset, args.batch, args.batches // 4,
                           views={"image": VIEW, "image_strong": VIEW + "|randaugment|cutout"})
    grain_weak = grain_rate(args.dataset, args.batch, args.batches)
    run, _, _ = kdjax_step("resnet32x4", "resnet8x4", args.batch)
    step_time = time_calls(run, args.repeats)
    step_rate = args.batch / step_time
    cost = sampling_cost(args.dataset, args.batch, args.negatives)
    steps = 30
    wait_plain = wait_per_step(args.dataset, args.batch, steps, step_time)
    wait_crd = wait_per_step(args.dataset, args.batch, steps, step_time, contrast_negatives=args.negatives)
    print(f"{args.dataset} resized to 32x32, batch {args.batch}")
    print(f"tf.data crop+flip                 {weak:9.0f} images/s")
    print(f"tf.data + strong view (MLLD)      {strong:9.0f} images/s")
    print(f"grain crop+flip (NumPy, 2 threads){grain_weak:9.0f} images/s  (tf.data / grain {weak / grain_weak:.2f})")
    print(f"KD step resnet32x4->resnet8x4     {step_rate:9.0f} images/s ({1000 * step_time:.0f} ms a step)")
    print(f"CRD rows, K={args.negatives}: {1000 * cost:.1f} ms of host time a step to draw; the training loop waits "
          f"{1000 * wait_crd:.2f} ms a step for batches with them, {1000 * wait_plain:.2f} ms without")
    print(f"headroom: the pipeline makes {weak / step_rate:.0f}x (strong view: {strong / step_rate:.0f}x) the images "
          f"the step consumes (target >= 2x)")
    print(f"ratio kdjax/reference: {step_rate / weak:.2f}")


if __name__ == "__main__":
    main()
