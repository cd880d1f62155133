"""The retrieval evaluator's work (R@1/2/4/8, MAP@R, NMI) on SOP-test-sized embeddings, kdjax against the faiss
pipeline DML codes use (Roth's Revisiting-DML / S2SD evaluation: faiss-cpu `IndexFlatL2` kNN, faiss k-means), in the
same run.

    python -m benchmarks.retrieval [--n 60502] [--classes 11316] [--dim 128] [--repeats 1] [--nmi_backend sklearn]

Embeddings: one Gaussian cluster per class, L2-normalised, float32; every class has at least 2 members (SOP's test
split: 60,502 images of 11,316 classes). Both sides search exactly, each query excluded from its own neighbours,
as deep as MAP@R needs (the largest class minus one), and cluster with 20 k-means iterations, k = the number of
classes. kdjax: `metrics.retrieval_metrics` (one chunked GEMM + two-level top-k search under jit) and `metrics.nmi`
(`--nmi_backend`: scikit-learn by default, or faiss). Reference: faiss kNN, NumPy Recall@K / MAP@R from its
neighbours, faiss k-means + scikit-learn NMI. The values must agree (printed; NMI up to k-means initialisation).
Times: medians over `--repeats` after one warm-up (kdjax's compile excluded). Last line: `ratio kdjax/reference`.
"""
import argparse
import statistics
import time

import numpy as np

KS = (1, 2, 4, 8)


def sop_like(n, classes, dim, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.arange(classes), np.arange(classes), rng.integers(0, classes, n - 2 * classes)])
    centers = rng.normal(size=(classes, dim)).astype(np.float32)
    x = centers[labels] + 1.6 * rng.normal(size=(n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def reference_ranking(x, labels, depth, faiss):
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    _, idx = index.search(x, depth + 1)
    own = idx == np.arange(len(x))[:, None]
    # drop the query itself wherever it landed (ties may put it later); keep `depth` others
    order = np.argsort(own, axis=1, kind="stable")[:, :depth]
    neighbors = np.take_along_axis(idx, order, axis=1)
    rel = labels[neighbors] == labels[:, None]
    result = {f"recall@{k}": float(np.mean(np.any(rel[:, :k], axis=1))) for k in KS}
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    r = counts[inverse] - 1
    ranks = np.arange(1, depth + 1)
    precision = np.cumsum(rel, axis=1) / ranks
    ap = np.sum(precision * rel * (ranks[None, :] <= r[:, None]), axis=1) / np.maximum(r, 1)
    result["map_at_r"] = float(np.mean(ap[r > 0]))
    return result


def reference_nmi(x, labels, classes, faiss):
    from sklearn.metrics import normalized_mutual_info_score
    kmeans = faiss.Clustering(x.shape[1], classes)
    kmeans.niter, kmeans.seed = 20, 0
    kmeans.min_points_per_centroid, kmeans.max_points_per_centroid = 1, 1_000_000_000
    index = faiss.IndexFlatL2(x.shape[1])
    kmeans.train(x, index)
    return float(normalized_mutual_info_score(labels, index.search(x, 1)[1][:, 0]))


def timed(fn, repeats):
    value = fn()  # warm-up (and kdjax's compile)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return value, statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=60_502)
    parser.add_argument("--classes", type=int, default=11_316)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--nmi_backend", default="sklearn", choices=("sklearn", "faiss"))
    args = parser.parse_args()
    import faiss
    import jax

    from kdjax import metrics
    x, labels = sop_like(args.n, args.classes, args.dim)
    depth = int(np.bincount(labels).max()) - 1

    ranking_jax, t_rank_jax = timed(lambda: metrics.retrieval_metrics(x, labels, ks=KS, roth_map_r=None),
                                    args.repeats)
    ranking_ref, t_rank_ref = timed(lambda: reference_ranking(x, labels, depth, faiss), args.repeats)
    nmi_jax, t_nmi_jax = timed(lambda: metrics.nmi(x, labels, backend=args.nmi_backend), args.repeats)
    nmi_ref, t_nmi_ref = timed(lambda: reference_nmi(x, labels, args.classes, faiss), args.repeats)

    print(f"{args.n} x {args.dim} float32, {args.classes} classes, search depth {depth}; jax {jax.__version__} "
          f"({jax.devices()[0].platform}), faiss {faiss.__version__} ({faiss.omp_get_max_threads()} threads)")
    for key in ranking_jax:
        print(f"  {key:10s} kdjax {ranking_jax[key]:.4f}  faiss {ranking_ref[key]:.4f}")
    print(f"  {'nmi':10s} kdjax {nmi_jax:.4f}  faiss {nmi_ref:.4f}  (k-means: {args.nmi_backend} vs faiss)")
    print(f"R@K + MAP@R   kdjax {t_rank_jax:7.2f} s  faiss {t_rank_ref:7.2f} s  ratio {t_rank_jax / t_rank_ref:.2f}")
    print(f"NMI           kdjax {t_nmi_jax:7.2f} s  faiss {t_nmi_ref:7.2f} s  ratio {t_nmi_jax / t_nmi_ref:.2f}")
    total_jax, total_ref = t_rank_jax + t_nmi_jax, t_rank_ref + t_nmi_ref
    print(f"ratio kdjax/reference: {total_jax / total_ref:.2f}")


if __name__ == "__main__":
    main()
