"""The offline reproduction of paper 004 Tables 1 and 2 on Fashion-MNIST, with tables and plots.

    python -m experiments.jacobian_offline --workdir=/tmp/kdjax_jm_offline [--seeds=0,1,2] [--per_class=1,5,10,50]

Table 1: one VGG-9 teacher (configs/jacobian_matching/fashion_mnist_table1.py), then VGG-4 students for every row
x subset size x seed (subsets are drawn from the seed). Table 2: VGG-9 with the Jacobian-norm penalty for every
lambda x seed, evaluated under Gaussian input noise (fashion_mnist_table2.py). Finished cells are skipped on
relaunch (each cell is a kdjax stage with its own checkpoint). Writes `table1.md`, `table2.md`, `table1.png`,
`table2.png` and `summary.json` into the workdir. Uses JAX's persistent compilation cache: cells that differ only by
seed reuse the compiled step.
"""
import argparse
import json
import os
import time

import numpy as np

from configs.jacobian_matching import common as jm
from configs.jacobian_matching import fashion_mnist_table1, fashion_mnist_table2
from experiments.reproduce import mean_std, prepare_workdir, run_stage_once

LAMBDAS = (0.0, 0.1, 1.0, 10.0)
ROW_NAMES = {"ce": "CE", "ce_act": "CE + match act.", "ce_jac": "CE + match Jac.", "ce_act_jac": "CE + act. + Jac.",
             "act": "match act.", "act_jac": "act. + Jac."}


def table1(workdir, seeds, per_class, collect=False):
    """Seeds are the outer loop, so a sweep cut short leaves every cell with the same number of seeds."""
    teacher_dir = os.path.join(workdir, "teacher")
    teacher = run_stage_once(fashion_mnist_table1.get_config(), "teacher", teacher_dir, collect)
    ckpt = os.path.join(teacher_dir, "teacher", "checkpoints")
    results = {}
    for seed in seeds:
        for n in per_class:
            for method in jm.TABLE1_ROWS:
                cell = os.path.join(workdir, f"t1_{method}_{n}_seed{seed}")
                config = fashion_mnist_table1.get_config(
                    f"method={method},per_class={n},seed={seed},teacher_checkpoint={ckpt}")
                r = run_stage_once(config, "student", cell, collect)
                if r is None:
                    continue
                results.setdefault((method, n), []).append(r["final_accuracy"])
                print(f"table1 {method} per_class={n} seed={seed}: {100 * r['final_accuracy']:.2f}", flush=True)
    return teacher, results


def table2(workdir, seeds, collect=False):
    results = {}
    for lam in LAMBDAS:
        for seed in seeds:
            r = run_stage_once(fashion_mnist_table2.get_config(f"lam={lam},seed={seed}"), "model",
                     os.path.join(workdir, f"t2_lam{lam:g}_seed{seed}"), collect)
            if r is None:
                continue
            accs = [r["final_accuracy"]] + [r[f"final_accuracy_noise_{s:g}"] for s in (0.1, 0.2, 0.3, 0.4)]
            results.setdefault(lam, []).append(accs)
            print(f"table2 lambda={lam:g} seed={seed}: " + " / ".join(f"{100 * a:.2f}" for a in accs), flush=True)
    return results


def write_tables(workdir, teacher, t1, t2, per_class, seeds, t2_seeds):
    lines = [f"Teacher VGG-9 (width 0.25): {100 * teacher['final_accuracy']:.2f}% test top-1.", "",
             "| student VGG-4 (width 0.25) | " + " | ".join(f"{n}/class" for n in per_class) + " |",
             "|---|" + "---|" * len(per_class)]
    for method in jm.TABLE1_ROWS:
        lines.append(f"| {ROW_NAMES[method]} | " + " | ".join(
            mean_std(t1[(method, n)], len(seeds)) if (method, n) in t1 else "not run" for n in per_class) + " |")
    lines.append(f"\nTest top-1 (%), mean ± std (ddof 1) over seeds {list(seeds)} (n = seeds completed where "
                 "fewer); 300 steps per student.")
    open(os.path.join(workdir, "table1.md"), "w").write("\n".join(lines) + "\n")
    lines = ["| lambda | clean | σ=0.1 | σ=0.2 | σ=0.3 | σ=0.4 |", "|---|---|---|---|---|---|"]
    for lam in LAMBDAS:
        runs = np.asarray(t2[lam])
        lines.append(f"| {lam:g} | " + " | ".join(mean_std(runs[:, i], len(t2_seeds)) for i in range(5)) + " |")
    lines.append(f"\nTest top-1 (%) under Gaussian noise on the normalised images, mean ± std over seeds {list(t2_seeds)}.")
    open(os.path.join(workdir, "table2.md"), "w").write("\n".join(lines) + "\n")


def plot(workdir, t1, t2, per_class):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for method in jm.TABLE1_ROWS:
        ns = [n for n in per_class if (method, n) in t1]
        means = [100 * np.mean(t1[(method, n)]) for n in ns]
        stds = [100 * np.std(t1[(method, n)], ddof=1) if len(t1[(method, n)]) > 1 else 0.0 for n in ns]
        ax.errorbar(ns, means, yerr=stds, marker="o", capsize=3, label=ROW_NAMES[method])
    ax.set(xscale="log", xlabel="training images per class", ylabel="test top-1 (%)",
           title="Fashion-MNIST, VGG-9 -> VGG-4 (paper 004 Table 1 protocol)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(workdir, "table1.png"), dpi=120)
    fig, ax = plt.subplots(figsize=(6, 4))
    sigmas = [0, 0.1, 0.2, 0.3, 0.4]
    for lam in LAMBDAS:
        runs = 100 * np.asarray(t2[lam])
        ax.errorbar(sigmas, runs.mean(0), yerr=runs.std(0), marker="o", capsize=3, label=f"λ = {lam:g}")
    ax.set(xlabel="noise std on normalised images", ylabel="test top-1 (%)",
           title="Fashion-MNIST, VGG-9 + Jacobian-norm penalty (Table 2 protocol)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(workdir, "table2.png"), dpi=120)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--seeds", default="0,1,2", help="Table 1 seeds")
    parser.add_argument("--table2_seeds", default="0,1")
    parser.add_argument("--per_class", default="1,5,10,50")
    parser.add_argument("--tables", default="1,2")
    parser.add_argument("--collect", action="store_true", help="write tables from finished cells only")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    per_class = [int(n) for n in args.per_class.split(",")]
    prepare_workdir(args.workdir)
    start = time.time()
    teacher, t1 = table1(args.workdir, seeds, per_class, args.collect) if "1" in args.tables else (None, {})
    t2_seeds = [int(s) for s in args.table2_seeds.split(",")]
    t2 = table2(args.workdir, t2_seeds, args.collect) if "2" in args.tables else {}
    if teacher and t2:
        write_tables(args.workdir, teacher, t1, t2, per_class, seeds, t2_seeds)
        plot(args.workdir, t1, t2, per_class)
    summary = {"wall_time_s": time.time() - start, "table1": {f"{m}/{n}": v for (m, n), v in t1.items()},
               "table2": {f"{lam:g}": v for lam, v in t2.items()}}
    json.dump(summary, open(os.path.join(args.workdir, "summary.json"), "w"), indent=1)
    print(f"done in {summary['wall_time_s'] / 60:.1f} min; tables in {args.workdir}")


if __name__ == "__main__":
    main()
