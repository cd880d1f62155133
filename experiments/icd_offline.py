"""The offline ICD study (configs/icd/fashion_mnist.py): teachers with lambda in {0, 0.01, 0.02, 0.03, 0.3}, the same
KD and KD + RKD students from each, several seeds; tables and a plot in the workdir.

    python -m experiments.icd_offline --workdir=/tmp/kdjax_icd_offline [--seeds=0,1,2] [--lams=0,0.01,0.02,0.03,0.3]

Per teacher: test top-1, the fraction of each batch's samples that fired in the intra-class loss (mean over the
run), and two measures of the intra-class information in its soft labels q = softmax(z / 4) on the test set: the
mean pairwise L2 distance between q vectors of the same class (averaged over classes), and the mean entropy of the
non-target mass (q without the true class, renormalised). Theorem 2 of the paper predicts that the intra-class
spread grows with lambda. Per student: test top-1. Finished cells are skipped on relaunch.
Writes `table.md`, `summary.json` and `icd_offline.png`.
"""
import argparse
import json
import os
import time

import numpy as np

from configs.icd import fashion_mnist
from experiments.reproduce import mean_std, prepare_workdir, run_stage_once

STUDENTS = ("student_kd", "student_kd_rkd")
KD_TEMPERATURE = 4.0


def soft_label_diversity(logits: np.ndarray, labels: np.ndarray, temperature: float = KD_TEMPERATURE) -> dict:
    """Intra-class spread of softmax(z / T): mean same-class pairwise L2 distance, and non-target entropy."""
    z = logits / temperature
    q = np.exp(z - z.max(axis=1, keepdims=True))
    q /= q.sum(axis=1, keepdims=True)
    distances = []
    for c in np.unique(labels):
        members = q[labels == c]
        sq = np.sum(members ** 2, axis=1)
        d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * members @ members.T, 0.0))
        n = len(members)
        distances.append(d.sum() / (n * (n - 1)))
    others = q.copy()
    others[np.arange(len(labels)), labels] = 0.0
    others /= others.sum(axis=1, keepdims=True)
    entropy = -np.sum(np.where(others > 0, others * np.log(np.maximum(others, 1e-30)), 0.0), axis=1)
    return {"intra_class_distance": float(np.mean(distances)), "non_target_entropy": float(np.mean(entropy))}


def teacher_logits(config, workdir) -> tuple[np.ndarray, np.ndarray]:
    from kdjax import data, evaluators, parallel
    from kdjax.train import checkpoint as ckpt_lib
    from kdjax.train import recipe
    from kdjax.train.stage import build_model
    teacher = recipe.resolve_stage(config, "teacher")
    evaluation = data.build(teacher.data, seed=0, batch_size=teacher.batch_size,
                            eval_batch_size=int(config.eval_batch_size)).eval
    checkpointer = ckpt_lib.Checkpointer(os.path.join(workdir, "teacher", "checkpoints"))
    tree, _, _ = checkpointer.restore_raw()
    checkpointer.close()
    model = build_model(teacher.model, 10)
    variables = {"params": tree["params"]["model"], "batch_stats": tree["batch_stats"]}
    return evaluators.collect_outputs(model.apply, variables, evaluation, parallel.make_mesh(), cache={})


def fired_fraction(workdir: str, batch_size: int) -> float:
    with open(os.path.join(workdir, "teacher", "metrics.jsonl"), encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    fired = [r["icd/anchors_fired"] for r in records if "icd/anchors_fired" in r]
    return float(np.mean(fired) / batch_size) if fired else 0.0


def run(workdir, lams, seeds, collect=False) -> dict:
    cells = {}
    for seed in seeds:
        for lam in lams:
            config = fashion_mnist.get_config(f"lam={lam},seed={seed}")
            cell = os.path.join(workdir, f"lam{lam:g}_seed{seed}")
            results = {s: run_stage_once(config, s, cell, collect=collect) for s in ("teacher",) + STUDENTS}
            if any(r is None for r in results.values()):
                continue
            logits, labels = teacher_logits(config, cell)
            entry = {"teacher": results["teacher"]["final_accuracy"],
                     "fired": fired_fraction(cell, int(config.stages.teacher.batch_size)),
                     **soft_label_diversity(logits, labels),
                     **{s: results[s]["final_accuracy"] for s in STUDENTS},
                     "wall_time": sum(r["wall_time"] for r in results.values()),
                     "commit": results["teacher"]["code"]["commit"][:10]}
            cells[(lam, seed)] = entry
            print(f"lambda={lam:g} seed={seed}: teacher {100 * entry['teacher']:.2f}, fired {entry['fired']:.3f}, "
                  f"distance {entry['intra_class_distance']:.4f}, entropy {entry['non_target_entropy']:.3f}, "
                  f"KD {100 * entry['student_kd']:.2f}, KD+RKD {100 * entry['student_kd_rkd']:.2f}", flush=True)
    return cells


def write(workdir, cells, lams, seeds):
    def column(lam, key, scale=100.0):
        values = [cells[(lam, s)][key] for s in seeds if (lam, s) in cells]
        return mean_std(values, len(seeds), scale) if values else "not run"
    lines = ["| lambda | teacher top-1 | fired / batch | intra-class distance | non-target entropy | "
             "KD student | KD + RKD student |", "|---|---|---|---|---|---|---|"]
    for lam in lams:
        lines.append(f"| {lam:g} | {column(lam, 'teacher')} | {column(lam, 'fired', 1.0)} | "
                     f"{column(lam, 'intra_class_distance', 1.0)} | {column(lam, 'non_target_entropy', 1.0)} | "
                     f"{column(lam, 'student_kd')} | {column(lam, 'student_kd_rkd')} |")
    wall = sum(c["wall_time"] for c in cells.values())
    commits = sorted({c["commit"] for c in cells.values()})
    lines.append(f"\nTop-1 (%) on the 10,000 test images, mean ± std (ddof 1) over seeds {list(seeds)}; soft labels "
                 f"at T = {KD_TEMPERATURE:g}; commits {commits}; {wall / 60:.0f} min of stage wall time.")
    with open(os.path.join(workdir, "table.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(workdir, "summary.json"), "w", encoding="utf-8") as f:
        json.dump({f"{lam:g}/{s}": c for (lam, s), c in cells.items()}, f, indent=1)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    xs = np.arange(len(lams))
    for ax, keys, title in ((axes[0], ("intra_class_distance",), "teacher: same-class soft-label distance"),
                            (axes[1], ("non_target_entropy",), "teacher: non-target entropy"),
                            (axes[2], ("teacher",) + STUDENTS, "test top-1 (%)")):
        for key in keys:
            scale = 100.0 if key in ("teacher",) + STUDENTS else 1.0
            values = [[scale * cells[(lam, s)][key] for s in seeds if (lam, s) in cells] for lam in lams]
            ax.errorbar(xs, [np.mean(v) for v in values], yerr=[np.std(v) for v in values], marker="o", capsize=3,
                        label=key)
        ax.set(xticks=xs, xticklabels=[f"{lam:g}" for lam in lams], xlabel="lambda", title=title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(workdir, "icd_offline.png"), dpi=110)
    print("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--lams", default="0,0.01,0.02,0.03,0.3")
    parser.add_argument("--collect", action="store_true", help="write the tables from finished cells only")
    args = parser.parse_args(argv)
    prepare_workdir(args.workdir)
    seeds = [int(s) for s in args.seeds.split(",")]
    lams = [float(x) for x in args.lams.split(",")]
    start = time.time()
    cells = run(args.workdir, lams, seeds, args.collect)
    write(args.workdir, cells, lams, seeds)
    print(f"done in {(time.time() - start) / 60:.1f} min")


if __name__ == "__main__":
    main()
