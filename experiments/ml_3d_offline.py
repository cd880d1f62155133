"""The offline study of paper 001 (configs/ml_3d/fashion_mnist_mosaic.py): one mosaic teacher per seed, the student
trained alone and with MLD, L2D, PS and 3D (default options; `swap_weights`; NDD on an image's two views, and its
control with the same two views but NDD across images), the same 1,125 steps each; tables and a plot in the workdir.

    python -m experiments.ml_3d_offline --workdir=/tmp/kdjax_ml_3d_offline [--seeds=0,1,2] [--variants=mld,3d]
        [--teachers=W]

`--teachers=W`: the workdir of `experiments.reproduce --config=configs/multilabel/fashion_mnist_mosaic.py`, whose
`seed<N>/teacher` is the teacher and whose `seed<N>/student` is the student trained alone (the same stage as
`method=student` here); missing seeds are trained there first (default `<workdir>/mosaic`).
Finished cells are skipped on relaunch; `--collect` writes the tables from finished cells only. Writes `table.md`,
`summary.json` and `ml_3d_offline.png`. About 6 minutes per student cell on 2 CPU cores, 10 per teacher.
"""
import argparse
import json
import os
import time

import numpy as np

from configs.ml_3d import fashion_mnist_mosaic
from configs.multilabel import fashion_mnist_mosaic as mosaic
from experiments.reproduce import mean_std, prepare_workdir, run_stage_once

METRICS = (("eval/mAP", "mAP"), ("eval/OF1", "OF1"), ("eval/CF1", "CF1"))
# name -> the config arguments of configs/ml_3d/fashion_mnist_mosaic.py
VARIANTS = {
    "student": "method=student",
    "mld": "method=mld",
    "l2d": "method=l2d",
    "ps": "method=ps",
    "3d": "method=3d",
    "3d_swap": "method=3d,swap_weights=true",
    "3d_views": "method=3d,views=both,ndd_pairs=views",
    # the control of 3d_views: the same two views (student strong, teacher weak), NDD still across images
    "3d_two_views": "method=3d,views=both",
}


def teacher_and_student_alone(teachers: str, seed: int, collect: bool):
    """(teacher results, teacher checkpoint dir, student-alone results) of the mosaic sweep's seed."""
    config = mosaic.get_config(f"seed={seed}")
    workdir = os.path.join(teachers, f"seed{seed}")
    teacher = run_stage_once(config, "teacher", workdir, collect=collect)
    student = run_stage_once(config, "student", workdir, collect=collect)
    return teacher, os.path.join(workdir, "teacher", "checkpoints"), student


def cell(result) -> dict:
    return {**{k: result["final"][k] for k, _ in METRICS}, "wall_time": result["wall_time"],
            "commit": result["code"]["commit"][:10]}


def run(workdir, teachers, variants, seeds, collect=False) -> dict:
    """Seeds are the outer loop, so a sweep cut short leaves every cell with the same number of seeds."""
    cells = {}
    for seed in seeds:
        teacher, checkpoint, alone = teacher_and_student_alone(teachers, seed, collect)
        if teacher is None:
            continue
        cells[("teacher", seed)] = cell(teacher)
        for variant in variants:
            if variant == "student":
                result = alone
            else:
                config = fashion_mnist_mosaic.get_config(f"{VARIANTS[variant]},seed={seed},"
                                                         f"teacher_checkpoint={checkpoint}")
                result = run_stage_once(config, "student", os.path.join(workdir, f"{variant}_seed{seed}"),
                                        collect=collect)
            if result is None:
                continue
            cells[(variant, seed)] = cell(result)
            print(f"{variant} seed={seed}: " + ", ".join(
                f"{name} {100 * result['final'][k]:.2f}" for k, name in METRICS), flush=True)
    return cells


def values(cells, name, key, seeds):
    return [100 * cells[(name, s)][key] for s in seeds if (name, s) in cells]


def write(workdir, cells, variants, seeds):
    names = ["teacher"] + list(variants)
    lines = ["| network / method | " + " | ".join(name for _, name in METRICS) + " | mAP - student alone, same seed |",
             "|---|" + "---|" * (len(METRICS) + 1)]
    for name in names:
        row = []
        for key, _ in METRICS:
            v = [x / 100 for x in values(cells, name, key, seeds)]
            row.append(mean_std(v, len(seeds)) if v else "not run")
        paired = [100 * (cells[(name, s)]["eval/mAP"] - cells[("student", s)]["eval/mAP"]) for s in seeds
                  if (name, s) in cells and ("student", s) in cells and name not in ("teacher", "student")]
        delta = (f"{np.mean(paired):+.2f}" + (f" ± {np.std(paired, ddof=1):.2f}" if len(paired) > 1 else "")
                 if paired else "")
        lines.append(f"| {name} | " + " | ".join(row) + f" | {delta} |")
    wall = sum(c["wall_time"] for c in cells.values())
    commits = sorted({c["commit"] for c in cells.values()})
    lines.append(f"\nFashion-MNIST mosaics, 10 labels, 4,000 test mosaics; teacher ResNet8x4, student ResNet8 "
                 f"(ML-Decoder heads, width 128), 1,125 steps; mean ± std (ddof 1) over seeds {list(seeds)}; "
                 f"commits {commits}; {wall / 60:.0f} min of stage wall time.")
    with open(os.path.join(workdir, "table.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(workdir, "summary.json"), "w", encoding="utf-8") as f:
        json.dump({"/".join(map(str, k)): c for k, c in cells.items()}, f, indent=1)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4.8 * len(METRICS), 3.8))
    xs = np.arange(len(names))
    for ax, (key, name) in zip(axes, METRICS):
        for i, n in enumerate(names):
            v = values(cells, n, key, seeds)
            ax.scatter([i] * len(v), v, s=12, color="0.6", zorder=2)
            if v:
                ax.errorbar([i], [np.mean(v)], yerr=[np.std(v, ddof=1) if len(v) > 1 else 0], marker="o",
                            capsize=4, color="C0", zorder=3)
        alone = values(cells, "student", key, seeds)
        if alone:
            ax.axhline(np.mean(alone), color="C1", lw=1, ls="--", label="student alone (mean)")
            ax.legend(fontsize=8)
        ax.set(xticks=xs, title=f"{name} (%)")
        ax.set_xticklabels(names, rotation=30, ha="right")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(workdir, "ml_3d_offline.png"), dpi=110)
    print("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--teachers", default="", help="workdir of the mosaic teacher/student sweep")
    parser.add_argument("--collect", action="store_true", help="write the tables from finished cells only")
    args = parser.parse_args(argv)
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; valid: {', '.join(VARIANTS)}")
    prepare_workdir(args.workdir)
    seeds = [int(s) for s in args.seeds.split(",")]
    start = time.time()
    cells = run(args.workdir, args.teachers or os.path.join(args.workdir, "mosaic"), variants, seeds, args.collect)
    write(args.workdir, cells, variants, seeds)
    print(f"done in {(time.time() - start) / 60:.1f} min")


if __name__ == "__main__":
    main()
