"""A sweep's wall time with and without the teacher cache: the KD, DKD and MLLD students of the Fashion-MNIST
mini-benchmark (configs/baselines/fashion_mnist.py: resnet32x4 -> resnet8x4 at width 0.25, 600 steps) over one
teacher, each student a full stage (compilation, evaluation and checkpoints included).

    python -m benchmarks.cache_sweep [--teacher=DIR] [--width=1.0] [--steps=N] [--workdir=W] [--methods=kd,dkd,mlld]

DIR: the teacher's `checkpoints` directory (a run of that config's teacher stage at the same width); without it the
teacher stage runs for `--teacher_steps` first (untimed: wall time does not depend on how well the teacher is
trained). `--width`: both networks' width (0.25, the mini-benchmark's, by default; 1.0 the CIFAR networks). Without
the cache every student runs the teacher in each step; with it, the first student's stage writes the cache (its
teacher pass is in its time) and the others read it; MLLD adds its strong view. Writes `W/cache_sweep.png`; last
line: `ratio kdjax/reference: X.XX`, the total with the cache over the total without.
"""
import argparse
import os
import tempfile
import time

from kdjax import config_files
from kdjax.train import loop


CONFIG = "configs/baselines/fashion_mnist.py"


def run_students(methods, teacher: str, workdir: str, cache: str, width: float, steps: int) -> dict:
    seconds = {}
    for method in methods:
        config = config_files.load(f"{CONFIG}:method={method},teacher_checkpoint={teacher},width={width}")
        config.stages.student.num_steps = steps or config.stages.student.num_steps
        if cache:
            config.stages.student.teacher.cache = cache
        start = time.time()
        result = loop.run_stage(config, "student", os.path.join(workdir, method))
        seconds[method] = time.time() - start
        print(f"{'cached' if cache else 'plain':>6} {method:<5} {seconds[method]:7.1f} s  "
              f"{result['headline']} {result['final'][result['headline']]:.4f}", flush=True)
    return seconds


def plot(plain: dict, cached: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    bottom = {"without cache": 0.0, "with cache": 0.0}
    for method in plain:
        for label, times in (("without cache", plain), ("with cache", cached)):
            ax.barh(label, times[method] / 60, left=bottom[label], edgecolor="white",
                    label=method if label == "without cache" else None)
            bottom[label] += times[method] / 60
    ax.set_xlabel("wall time of the students (min)")
    ax.legend(title="student", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="")
    parser.add_argument("--teacher_steps", type=int, default=20)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--steps", type=int, default=0, help="each student's steps (default: the config's 600)")
    parser.add_argument("--workdir", default="")
    parser.add_argument("--methods", default="kd,dkd,mlld")
    args = parser.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="kdjax_cache_sweep_")
    methods = args.methods.split(",")
    teacher = args.teacher
    if not teacher:
        config = config_files.load(f"{CONFIG}:method=kd,width={args.width}")
        config.stages.teacher.num_steps = args.teacher_steps
        loop.run_stage(config, "teacher", os.path.join(workdir, "teacher"))
        teacher = os.path.join(workdir, "teacher", "teacher", "checkpoints")
    plain = run_students(methods, teacher, os.path.join(workdir, "plain"), "", args.width, args.steps)
    cached = run_students(methods, teacher, os.path.join(workdir, "cached"), os.path.join(workdir, "cache"),
                          args.width, args.steps)
    plot(plain, cached, os.path.join(workdir, "cache_sweep.png"))
    print(f"total: without the cache {sum(plain.values()) / 60:.1f} min, with it {sum(cached.values()) / 60:.1f} min "
          f"(figure: {os.path.join(workdir, 'cache_sweep.png')})")
    print(f"ratio kdjax/reference: {sum(cached.values()) / sum(plain.values()):.2f}")


if __name__ == "__main__":
    main()
