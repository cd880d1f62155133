"""Does the input pipeline keep up with training? Images/s of kdjax's training pipeline (decode, crop + flip,
normalise, batch; optionally MLLD's RandAugment + Cutout strong view) against the images/s a KD train step consumes
(resnet32x4 -> resnet8x4), on the same machine in the same run.

    python -m benchmarks.input_pipeline [--dataset fashion_mnist] [--image_size 32] [--batch 64] [--batches 200]

Offline default: Debian's Fashion-MNIST resized to 32x32 (any TFDS name works where downloads do). The step side
is benchmarks/train_step.py's kdjax step at the same batch size. Last line: `ratio kdjax/reference: X.XX` =
step images/s / pipeline images/s (below 0.5 means the pipeline is at least 2x faster than training needs).
"""
import argparse
import time

import numpy as np

from benchmarks.train_step import kdjax_step, time_calls


def pipeline_rate(name, image_size, batch, batches, strong):
    from kdjax import data
    source = data.get_source(name)
    mean, std = data.normalization_for(name)
    pipe = data.Pipeline(source, split="train", global_batch_size=batch, image_size=image_size, mean=mean, std=std,
                         augment=("crop", "flip"),
                         strong_augment=("crop", "flip", "randaugment", "cutout") if strong else ())
    it = pipe.train_batches()
    for _ in range(5):  # warm-up: builds the cache of resized images
        next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch / (time.perf_counter() - t0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    weak = pipeline_rate(args.dataset, args.image_size, args.batch, args.batches, strong=False)
    strong = pipeline_rate(args.dataset, args.image_size, args.batch, args.batches // 4, strong=True)
    run, _, _ = kdjax_step("resnet32x4", "resnet8x4", args.batch)
    step_rate = args.batch / time_calls(run, args.repeats)
    print(f"{args.dataset} at {args.image_size}x{args.image_size}, batch {args.batch}")
    print(f"pipeline crop+flip             {weak:9.0f} images/s")
    print(f"pipeline + strong view (MLLD)  {strong:9.0f} images/s")
    print(f"KD step resnet32x4->resnet8x4  {step_rate:9.0f} images/s")
    print(f"headroom: the pipeline makes {weak / step_rate:.0f}x (strong view: {strong / step_rate:.0f}x) the images "
          f"the step consumes (target >= 2x)")
    print(f"ratio kdjax/reference: {step_rate / weak:.2f}")


if __name__ == "__main__":
    main()
