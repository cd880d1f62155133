"""The multi-label evaluator's metrics (L2D convention: mAP, OF1, CF1) on COCO-2014-val-sized scores, kdjax against
scikit-learn in the same run.

    python -m benchmarks.multilabel_eval [--n 40137] [--classes 80] [--repeats 3]

Data: 40,137 x 80 logits (the COCO-2014 validation list of L2D) with about 2.9 positive labels per image, as COCO;
logits rounded to 1/64 so that tied scores occur, as in half-precision evaluation. Reference: what L2D's
evaluate.py does: `average_precision_score` per class on sigmoid scores, the oracle top-k prediction (vectorised in NumPy),
`f1_score(average='micro')` and `f1_score(average='macro')`. kdjax: `metrics.multilabel_scores(convention='l2d')`
(every class at once: one column sort, tie groups by a reversed running minimum). The values must agree (printed).
Times: medians over `--repeats` after one warm-up. Last line: `ratio kdjax/reference` (<= 1 means kdjax is faster).
"""
import argparse
import statistics
import time

import numpy as np


def coco_like(n, classes, seed=0):
    rng = np.random.default_rng(seed)
    prevalence = rng.lognormal(0.0, 1.0, classes)
    prevalence = np.clip(prevalence * (2.9 / classes) / prevalence.mean(), 1e-3, 0.6)
    targets = (rng.random((n, classes)) < prevalence).astype(np.float32)
    logits = rng.normal(-3.0, 1.5, (n, classes)) + 4.0 * targets
    return (np.round(logits * 64) / 64).astype(np.float32), targets


def reference(logits, targets):
    from scipy.special import expit
    from sklearn.metrics import average_precision_score, f1_score
    scores = expit(logits)
    ap = [average_precision_score(targets[:, c], scores[:, c]) for c in range(targets.shape[1])
          if targets[:, c].any()]
    # L2D's threshold: the (k+1)-th largest score of the image (vectorised here, so that only the metric calls
    # are compared)
    k = targets.sum(1).astype(int)
    ranked = -np.sort(-scores, axis=1)
    threshold = np.where(k < scores.shape[1], ranked[np.arange(len(k)), np.minimum(k, scores.shape[1] - 1)], -np.inf)
    predicted = scores > threshold[:, None]
    return {"mAP": float(np.mean(ap)), "OF1": f1_score(targets, predicted, average="micro", zero_division=0),
            "CF1": f1_score(targets, predicted, average="macro", zero_division=0)}


def timed(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=40137)
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import sklearn

    from kdjax import metrics
    logits, targets = coco_like(args.n, args.classes)
    ours, t_ours = timed(lambda: metrics.multilabel_scores(logits, targets, convention="l2d"), args.repeats)
    ref, t_ref = timed(lambda: reference(logits, targets), args.repeats)
    print(f"{args.n} x {args.classes} logits, {targets.sum(1).mean():.2f} positives per image; "
          f"scikit-learn {sklearn.__version__}")
    for key in ("mAP", "OF1", "CF1"):
        print(f"  {key:4s} kdjax {ours[key]:.6f}  scikit-learn {ref[key]:.6f}")
        if abs(ours[key] - ref[key]) > 1e-6:
            raise SystemExit(f"{key} differs: kdjax {ours[key]} vs scikit-learn {ref[key]}")
    print(f"kdjax {t_ours:.3f} s  scikit-learn {t_ref:.3f} s")
    print(f"ratio kdjax/reference: {t_ours / t_ref:.2f}")


if __name__ == "__main__":
    main()
