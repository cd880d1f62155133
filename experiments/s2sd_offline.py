"""The offline S2SD study (configs/s2sd/fashion_mnist.py): base losses (multi-similarity, margin) alone and with
DSD, MSD and MSDF, several seeds, the same 1,000-step budget; tables and a plot in the workdir.

    python -m experiments.s2sd_offline --workdir=/tmp/kdjax_s2sd_offline [--seeds=0,1,2] [--losses=multisimilarity,margin] [--variants=base,dsd,msd,msdf]

A variant ending in `_attached` (e.g. `dsd_attached`) lets the distillation reach the branches (`detach_targets=False`,
the supplement's Table 15 ablation).
Per cell: R@1, MAP@R and NMI on the evaluation classes (5-9) after the last step, mean ± std (ddof 1) over seeds.
Finished cells are skipped on relaunch. Writes `table.md`, `summary.json` and `s2sd_offline.png`.
"""
import argparse
import json
import os
import time

import numpy as np

from configs.s2sd import fashion_mnist
from experiments.reproduce import mean_std, prepare_workdir, run_stage_once

METRICS = (("eval/recall@1", "R@1"), ("eval/map_at_r", "MAP@R"), ("eval/nmi", "NMI"))


def run(workdir, losses, variants, seeds, collect=False) -> dict:
    """Seeds are the outer loop, so a sweep cut short leaves every cell with the same number of seeds."""
    cells = {}
    for seed in seeds:
        for loss in losses:
            for variant in variants:
                base_variant, attached = variant.removesuffix("_attached"), variant.endswith("_attached")
                config = fashion_mnist.get_config(f"loss={loss},variant={base_variant},seed={seed},"
                                                  f"detach_targets={not attached}")
                result = run_stage_once(config, "model", os.path.join(workdir, f"{loss}_{variant}_seed{seed}"),
                                        collect=collect)
                if result is None:
                    continue
                cells[(loss, variant, seed)] = {**{k: result["final"][k] for k, _ in METRICS},
                                                "wall_time": result["wall_time"],
                                                "commit": result["code"]["commit"][:10]}
                print(f"{loss} {variant} seed={seed}: " + ", ".join(
                    f"{name} {100 * result['final'][k]:.2f}" for k, name in METRICS), flush=True)
    return cells


def write(workdir, cells, losses, variants, seeds):
    lines = ["| loss | variant | " + " | ".join(name for _, name in METRICS) + " |",
             "|---|---|" + "---|" * len(METRICS)]
    for loss in losses:
        for variant in variants:
            row = []
            for key, _ in METRICS:
                values = [cells[(loss, variant, s)][key] for s in seeds if (loss, variant, s) in cells]
                row.append(mean_std(values, len(seeds)) if values else "not run")
            lines.append(f"| {loss} | {variant} | " + " | ".join(row) + " |")
    wall = sum(c["wall_time"] for c in cells.values())
    commits = sorted({c["commit"] for c in cells.values()})
    lines.append(f"\nEvaluation classes 5-9 (5,000 test images), after 1,000 steps; mean ± std (ddof 1) over seeds "
                 f"{list(seeds)}; commits {commits}; {wall / 60:.0f} min of stage wall time.")
    with open(os.path.join(workdir, "table.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(workdir, "summary.json"), "w", encoding="utf-8") as f:
        json.dump({"/".join(map(str, k)): c for k, c in cells.items()}, f, indent=1)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4.5 * len(METRICS), 3.8))
    xs = np.arange(len(variants))
    for ax, (key, name) in zip(axes, METRICS):
        for loss in losses:
            values = [[100 * cells[(loss, v, s)][key] for s in seeds if (loss, v, s) in cells] for v in variants]
            ax.errorbar(xs, [np.mean(v) if v else np.nan for v in values],
                        yerr=[np.std(v, ddof=1) if len(v) > 1 else 0 for v in values], marker="o", capsize=3,
                        label=loss)
        ax.set(xticks=xs, xticklabels=variants, title=f"{name} (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(workdir, "s2sd_offline.png"), dpi=110)
    print("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--losses", default="multisimilarity,margin")
    parser.add_argument("--variants", default="base,dsd,msd,msdf")
    parser.add_argument("--collect", action="store_true", help="write the tables from finished cells only")
    args = parser.parse_args(argv)
    prepare_workdir(args.workdir)
    seeds = [int(s) for s in args.seeds.split(",")]
    losses, variants = args.losses.split(","), args.variants.split(",")
    start = time.time()
    cells = run(args.workdir, losses, variants, seeds, args.collect)
    write(args.workdir, cells, losses, variants, seeds)
    print(f"done in {(time.time() - start) / 60:.1f} min")


if __name__ == "__main__":
    main()
