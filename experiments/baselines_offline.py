"""The Fashion-MNIST mini-benchmark of the KD zoo (configs/baselines/fashion_mnist.py): one teacher, then every
method with the same student and step budget, for each seed; writes `table.md` and `summary.json`.

    python -m experiments.baselines_offline --workdir=/tmp/kdjax_baselines_offline [--seeds=0,1] [--methods=kd,dkd]

Finished cells are skipped on relaunch (each is a kdjax stage with its own checkpoint and results.json).
"""
import argparse
import json
import os
import subprocess
import time

import numpy as np

from configs.baselines import cifar100, fashion_mnist
from experiments.reproduce import mean_std, prepare_workdir, run_stage_once

NAMES = {"ce": "student alone (CE)", "kd": "KD", "fitnet": "FitNet", "at": "AT", "rkd": "RKD", "pkt": "PKT",
         "vid": "VID", "crd": "CRD", "ofd": "OFD", "reviewkd": "ReviewKD", "dkd": "DKD", "mlld": "MLLD"}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--methods", default=",".join(cifar100.METHODS))
    args = parser.parse_args()
    prepare_workdir(args.workdir)
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    start = time.time()
    # the code the cells run is the code at launch: stamp it now, not after an hour in which HEAD may move
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    teacher_dir = os.path.join(args.workdir, "teacher")
    teacher = run_stage_once(fashion_mnist.get_config("method=kd"), "teacher", teacher_dir)
    ckpt = os.path.join(teacher_dir, "teacher", "checkpoints")
    results, walls = {}, {}
    for seed in seeds:
        for method in methods:
            config = fashion_mnist.get_config(f"method={method},seed={seed},teacher_checkpoint={ckpt}")
            t0 = time.time()
            r = run_stage_once(config, "student", os.path.join(args.workdir, f"{method}_seed{seed}"))
            walls.setdefault(method, []).append(time.time() - t0)
            results.setdefault(method, []).append(r["final_accuracy"])
            print(f"{method} seed={seed}: {100 * r['final_accuracy']:.2f}", flush=True)
    base = float(np.mean(results["ce"])) if "ce" in results else None
    lines = [f"Teacher {fashion_mnist.PAIR.split('-')[0]} (width {fashion_mnist.WIDTH}): "
             f"{100 * teacher['final_accuracy']:.2f} % test top-1. Student {fashion_mnist.PAIR.split('-')[1]} "
             f"(width {fashion_mnist.WIDTH}), {fashion_mnist.PER_CLASS} images per class, "
             f"{fashion_mnist.STUDENT_STEPS} steps; seeds {seeds}; commit {commit}.", "",
             "| method | test top-1 (%) | vs. student alone | CIFAR-100 published (res32x4 -> res8x4) |",
             "|---|---|---|---|"]
    for method in methods:
        accs = results[method]
        delta = f"{100 * (np.mean(accs) - base):+.2f}" if base is not None and method != "ce" else ""
        lines.append(f"| {NAMES[method]} | {mean_std(accs, len(seeds))} | {delta} | "
                     f"{cifar100.published_top1(method, fashion_mnist.PAIR):.2f} |")
    table = "\n".join(lines) + "\n"
    with open(os.path.join(args.workdir, "table.md"), "w") as f:
        f.write(table)
    summary = dict(teacher=teacher["final_accuracy"], results=results, wall_time_s=time.time() - start,
                   student_wall_s={m: float(np.mean(w)) for m, w in walls.items()}, commit=commit)
    with open(os.path.join(args.workdir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(table)
    print(f"done in {summary['wall_time_s'] / 60:.1f} min")


if __name__ == "__main__":
    main()
