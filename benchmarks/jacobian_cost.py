"""Cost of Jacobian matching in a KD train step: VGG-9 -> VGG-4, batch 128, 32x32, 100 classes; kdjax against
PyTorch double backprop (`torch.autograd.grad(..., create_graph=True)`) in the same run.

    python -m benchmarks.jacobian_cost [--batch 128] [--repeats 5] [--variants kd,kd_jacobian,kd_jvp,torch_kd,torch_kd_jacobian]

Each variant is kdjax's real train step (teacher forward in eval mode, student forward/backward, SGD update):
- kd:          0.1 * CE + 0.9 * KD (T = 4)
- kd_jacobian: + exact true-class Jacobian matching (one VJP per network, then double backprop)
- kd_jvp:      + the forward-mode all-outputs estimator (one JVP per network and tangent, 1 tangent)
Every variant runs in its own subprocess, so the memory it reports is that variant's own, measured: the peak
resident set while the timed steps run (sampled every millisecond from /proc/self/statm after `malloc_trim`: the
memory training holds, without what compilation left in the allocator) and the process's lifetime peak (`ru_maxrss`, compile included); XLA's
compiled-buffer figure (temp + arguments + outputs, from the compiled executable's memory analysis) is printed too. Times are medians over `--repeats` steps after 2 warm-up steps.
PyTorch variants (`benchmarks/torch_reference.py`, eager, same architectures and losses): torch_kd and
torch_kd_jacobian. Printed: each variant's step time, its overhead over its own framework's KD step, and peak
memory. Last line: `ratio kdjax/reference: X.XX` = kdjax's exact Jacobian step / PyTorch's (without the torch
variants: kdjax's Jacobian step / kdjax's KD step, the overhead alone).
"""
import argparse
import contextlib
import ctypes
import json
import os
import statistics
import subprocess
import sys
import threading
import time

VARIANTS = {
    "kd": {"ce": dict(weight=0.1), "kd": dict(weight=0.9, temperature=4.0)},
    "kd_jacobian": {"ce": dict(weight=0.1), "kd": dict(weight=0.9, temperature=4.0),
                    "jacobian_matching": dict(weight=1.0)},
    "kd_jvp": {"ce": dict(weight=0.1), "kd": dict(weight=0.9, temperature=4.0),
               "jacobian_matching_jvp": dict(weight=1.0, num_tangents=1)},
}


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@contextlib.contextmanager
def sampled_peak_rss(period_s: float = 1e-3):
    """Yields a dict whose "mib" holds, on exit, the largest resident set seen while the block ran."""
    peak = {"mib": _rss_mib()}
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak["mib"] = max(peak["mib"], _rss_mib())
            time.sleep(period_s)
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()
        peak["mib"] = max(peak["mib"], _rss_mib())


def _timed_steps(run, repeats):
    """Median seconds over `repeats` calls after 2 warm-ups, and the peak RSS while the timed calls ran."""
    for _ in range(2):
        out = run()
    # hand freed heap back to the OS first (glibc keeps it): the figure is then what the steps hold, not what
    # compiling (XLA) or building the graph left in the allocator; done alike for both frameworks
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    times = []
    with sampled_peak_rss() as peak:
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = run()
            times.append(time.perf_counter() - t0)
    return out, times, peak["mib"]


def measure_torch(variant: str, batch: int, repeats: int) -> dict:
    import resource

    import torch

    from benchmarks.train_step import torch_step
    run, _ = torch_step("vgg9", "vgg4", batch, jacobian=variant == "torch_kd_jacobian")
    loss, times, step_peak = _timed_steps(run, repeats)
    return {"variant": variant, "median_s": statistics.median(times), "times": times, "step_peak_rss_mib": step_peak,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "xla_buffers_mib": 0.0,
            "loss": float(loss), "devices": torch.get_num_threads()}


def measure(variant: str, batch: int, repeats: int) -> dict:
    if variant.startswith("torch_"):
        return measure_torch(variant, batch, repeats)
    import resource

    import jax

    from benchmarks.train_step import kdjax_step
    run, _, xla_mib = kdjax_step("vgg9", "vgg4", batch, losses=VARIANTS[variant])
    loss, times, step_peak = _timed_steps(run, repeats)
    return {"variant": variant, "median_s": statistics.median(times), "times": times, "step_peak_rss_mib": step_peak,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "xla_buffers_mib": xla_mib, "loss": float(loss), "devices": jax.device_count()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--variants", default=",".join(list(VARIANTS) + ["torch_kd", "torch_kd_jacobian"]))
    parser.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        print(json.dumps(measure(args._child, args.batch, args.repeats)))
        return
    results = {}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    for variant in args.variants.split(","):
        out = subprocess.run([sys.executable, "-m", "benchmarks.jacobian_cost", f"--_child={variant}",
                              f"--batch={args.batch}", f"--repeats={args.repeats}"], capture_output=True, text=True,
                             env=env, check=True)
        results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
    import jax
    print(f"VGG-9 -> VGG-4, batch {args.batch}, 32x32, {jax.devices()[0].platform}, jax {jax.__version__}, "
          f"median of {args.repeats} steps")
    print(f"{'variant':<18} {'step (ms)':>10} {'x own KD':>9} {'RSS in steps (MiB)':>19} {'peak RSS (MiB)':>15} "
          f"{'XLA buffers (MiB)':>18}")
    for v, r in results.items():
        base = results.get("torch_kd" if v.startswith("torch_") else "kd")
        ratio = f"{r['median_s'] / base['median_s']:.2f}" if base else "-"
        print(f"{v:<18} {1000 * r['median_s']:>10.1f} {ratio:>9} {r['step_peak_rss_mib']:>19.0f} "
              f"{r['peak_rss_mib']:>15.0f} "
              f"{r['xla_buffers_mib']:>18.1f}")
    if "kd_jacobian" in results and "torch_kd_jacobian" in results:
        print(f"ratio kdjax/reference: {results['kd_jacobian']['median_s'] / results['torch_kd_jacobian']['median_s']:.2f}")
    elif "kd_jacobian" in results and "kd" in results:
        print(f"ratio kdjax/reference: {results['kd_jacobian']['median_s'] / results['kd']['median_s']:.2f}")


if __name__ == "__main__":
    main()
