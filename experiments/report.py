"""Tables and learning curves from kdjax workdirs.

    python -m experiments.report DIR [DIR ...] [--out report.png]

Each DIR is an experiment workdir (stages as subfolders) or a single stage folder. Prints a markdown table with
one row per stage (last and best value of its headline metric, steps, wall time, commit) and writes a PNG with the
training loss and headline-metric curves of every stage, read from `metrics.jsonl`.
"""
import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def find_stages(paths: list[str]) -> list[tuple[str, str]]:
    """(label, stage dir) for every folder holding a metrics.jsonl under the given paths."""
    found = []
    for path in paths:
        if os.path.exists(os.path.join(path, "metrics.jsonl")):
            found.append((os.path.basename(os.path.normpath(path)), path))
            continue
        for name in sorted(os.listdir(path)):
            sub = os.path.join(path, name)
            if os.path.exists(os.path.join(sub, "metrics.jsonl")):
                label = name if len(paths) == 1 else f"{os.path.basename(os.path.normpath(path))}/{name}"
                found.append((label, sub))
    if not found:
        raise SystemExit(f"no metrics.jsonl under {paths}")
    return found


def read_metrics(stage_dir: str) -> list[dict]:
    with open(os.path.join(stage_dir, "metrics.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def summarise(stage_dir: str) -> dict:
    """Last and best value of the stage's headline metric (results.json's, else eval/accuracy), from the log, so a
    running or stopped stage is summarised too. Best = max (all headline metrics kdjax ships are maximised)."""
    records = read_metrics(stage_dir)
    results_path = os.path.join(stage_dir, "results.json")
    results = json.load(open(results_path)) if os.path.exists(results_path) else {}
    metric = results.get("headline") or "eval/accuracy"
    evals = [r for r in records if metric in r]
    return {
        "metric": metric,
        "steps": max((r["step"] for r in records), default=0),
        "final": evals[-1][metric] if evals else float("nan"),
        "best": max((r[metric] for r in evals), default=float("nan")),
        "best_step": max(evals, key=lambda r: r[metric])["step"] if evals else 0,
        "wall_time": results.get("wall_time", float("nan")),
        "status": results.get("status", "running or stopped"),
        "commit": results.get("code", {}).get("commit", "")[:10],
    }


def markdown_table(stages: list[tuple[str, str]]) -> str:
    lines = ["| run | steps | metric | last | best (step) | wall time (s) | status | commit |",
             "|---|---|---|---|---|---|---|---|"]
    for label, path in stages:
        s = summarise(path)
        lines.append(f"| {label} | {s['steps']} | {s['metric']} | {100 * s['final']:.2f} | {100 * s['best']:.2f} "
                     f"({s['best_step']}) | {s['wall_time']:.0f} | {s['status']} | {s['commit']} |")
    return "\n".join(lines)


def plot(stages: list[tuple[str, str]], out: str) -> None:
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for label, path in stages:
        records = read_metrics(path)
        metric = summarise(path)["metric"]
        train = [r for r in records if "loss/total" in r]
        evals = [r for r in records if metric in r]
        ax_loss.plot([r["step"] for r in train], [r["loss/total"] for r in train], label=label)
        ax_acc.plot([r["step"] for r in evals], [100 * r[metric] for r in evals], marker=".", label=f"{label} ({metric})")
    ax_loss.set(xlabel="step", ylabel="training loss (weighted total)", yscale="log", title="Training loss")
    ax_acc.set(xlabel="step", ylabel="headline metric (%)", title="Evaluation")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dirs", nargs="+")
    parser.add_argument("--out", default=None, help="PNG path (default: <first dir>/learning_curves.png)")
    args = parser.parse_args(argv)
    stages = find_stages(args.dirs)
    print(markdown_table(stages))
    out = args.out or os.path.join(args.dirs[0], "learning_curves.png")
    plot(stages, out)
    print(f"\nlearning curves: {out}")


if __name__ == "__main__":
    main()
