"""The KD student step reading the teacher's logits from the teacher-output cache, against PyTorch eager's KD step
(which runs the frozen teacher in every step, as mdistiller, RepDistiller and torchdistill do), in one run.

    python -m benchmarks.teacher_cache [--pairs resnet32x4-resnet8x4,vgg13-vgg8,resnet32x4-shufflev2] [--batch 64]
        [--repeats 7]

Per pair, the steps alternating (kdjax cached, kdjax uncached, PyTorch eager, PyTorch given the logits) so that all
see the same machine: medians over `--repeats` steps after 3 warm-up steps, 0.1 CE + 0.9 KD at T = 4, SGD, batch
64 at 32x32, 100 classes. Then the teacher-only pass as `kdjax.train.teacher_cache.fill` runs it (one forward per
step, dispatched before fetching): images per second. Reading the cache is not in the step times (a chunk of 8 steps
of logits is 200 KB, read once per 8 steps). Last line: `ratio kdjax/reference: X.XX`, the first pair's cached
kdjax step over PyTorch eager's.
"""
import argparse
import statistics
import time

import numpy as np

from benchmarks.train_step import kdjax_step, setup_line, time_interleaved, torch_step


def teacher_pass_rate(teacher_name: str, batch: int, steps: int = 24) -> float:
    """Images per second of the cache's teacher pass: `steps` forwards of one batch, dispatched, then fetched."""
    import jax

    from kdjax import models, ops, parallel
    mesh = parallel.make_mesh()
    teacher = models.get_model(teacher_name, num_classes=100)
    images = np.random.default_rng(0).normal(size=(batch, 32, 32, 3)).astype(np.float32)
    variables = jax.device_put(teacher.init(jax.random.key(0), images, train=False), parallel.replicated(mesh))
    forward = ops.jit(lambda v, x: teacher.apply(v, x, train=False)[0], mesh=mesh)
    sharding = parallel.batch_sharding(mesh)
    x = jax.make_array_from_process_local_data(sharding, images)
    jax.block_until_ready(forward(variables, x))
    rates = []
    for _ in range(3):
        t0 = time.perf_counter()
        outs = [forward(variables, jax.make_array_from_process_local_data(sharding, images)) for _ in range(steps)]
        [np.asarray(o) for o in outs]
        rates.append(steps * batch / (time.perf_counter() - t0))
    return statistics.median(rates)


def torch_cached_step(student_name: str, batch: int):
    import torch

    from benchmarks import torch_reference
    torch.manual_seed(0)
    step = torch_reference.make_cached_kd_step(torch_reference.get_model(student_name))
    x, y, t = torch.randn(batch, 3, 32, 32), torch.randint(0, 100, (batch,)), torch.randn(batch, 100)
    return lambda: step(x, y, t)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", default="resnet32x4-resnet8x4,vgg13-vgg8,resnet32x4-shufflev2")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    import torch  # before TensorFlow (kdjax's data layer): the other order crashes some wheel pairs
    print(f"KD student step with cached teacher logits, batch {args.batch}, 32x32, float32; {setup_line()}; median of "
          f"{args.repeats} steps, in ms")
    print(f"{'pair':<24} {'kdjax cached':>12} {'kdjax':>8} {'torch':>8} {'torch cached':>12} "
          f"{'cached/torch':>12} {'teacher pass img/s':>18}")
    first = None
    for pair in args.pairs.split(","):
        t_name, s_name = pair.split("-")
        cached, n_jax, _ = kdjax_step(t_name, s_name, args.batch, cached=True)
        plain, _, _ = kdjax_step(t_name, s_name, args.batch)
        eager, n_torch = torch_step(t_name, s_name, args.batch)
        if n_jax != n_torch:
            raise SystemExit(f"{pair}: student parameter counts differ (kdjax {n_jax}, torch {n_torch})")
        times = time_interleaved([cached, plain, eager, torch_cached_step(s_name, args.batch)], args.repeats)
        ratio = times[0] / times[2]
        first = ratio if first is None else first
        rate = teacher_pass_rate(t_name, args.batch)
        print(f"{pair:<24} {1000 * times[0]:12.1f} {1000 * times[1]:8.1f} {1000 * times[2]:8.1f} "
              f"{1000 * times[3]:12.1f} {ratio:12.2f} {rate:18,.0f}")
    print(f"ratio kdjax/reference: {first:.2f}")


if __name__ == "__main__":
    main()
