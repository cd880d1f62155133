"""Recall@1 over N x D embeddings (query set = gallery, self excluded): kdjax.metrics.recall_at_k against faiss-cpu
`IndexFlatL2` (exact search, k = 2 so the query itself can be dropped) in the same run.

    python -m benchmarks.retrieval [--n 100000] [--dim 128] [--repeats 3] [--chunk 2048]

Embeddings: 1,000 Gaussian clusters, float32. Both sides compute exact L2 neighbours; the recall values must agree
(printed). Times are medians over `--repeats` full evaluations after one warm-up (kdjax's compile excluded).
Last line: `ratio kdjax/reference: X.XX` (kdjax time / faiss time).
"""
import argparse
import statistics
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=2048)
    args = parser.parse_args()
    import faiss
    import jax

    from kdjax import metrics
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 1000, args.n)
    centers = rng.normal(size=(1000, args.dim)).astype(np.float32)
    x = (centers[labels] + 1.5 * rng.normal(size=(args.n, args.dim))).astype(np.float32)

    def run_faiss():
        index = faiss.IndexFlatL2(args.dim)
        index.add(x)
        _, idx = index.search(x, 2)
        own = idx[:, 0] == np.arange(args.n)
        nearest = np.where(own, idx[:, 1], idx[:, 0])  # drop the query itself (ties may put it second)
        return float(np.mean(labels[nearest] == labels))

    def run_kdjax():
        return metrics.recall_at_k(x, labels, (1,), chunk=args.chunk)[1]

    def timed(fn):
        value = fn()  # warm-up (and kdjax's compile)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return value, statistics.median(times)

    r_jax, t_jax = timed(run_kdjax)
    r_faiss, t_faiss = timed(run_faiss)
    print(f"Recall@1, {args.n} x {args.dim} float32, query = gallery; jax {jax.__version__} "
          f"({jax.devices()[0].platform}), faiss {faiss.__version__} ({faiss.omp_get_max_threads()} threads)")
    print(f"kdjax  recall@1 {r_jax:.4f}  {t_jax:8.2f} s")
    print(f"faiss  recall@1 {r_faiss:.4f}  {t_faiss:8.2f} s")
    print(f"ratio kdjax/reference: {t_jax / t_faiss:.2f}")


if __name__ == "__main__":
    main()
