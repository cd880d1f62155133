"""CRD's contrast rows, drawn on the host inside the input pipeline's prefetching threads.

Per example: its own dataset index, then K indices drawn uniformly without replacement among the (trained-on)
examples of every other class (reference: HobbitLong/RepDistiller dataset/cifar100.py CIFAR100InstanceSample,
'exact' mode). Each row is seeded by (seed, step, row of the global batch), so rows do not depend on the process
count and a resumed run draws the same ones.
"""
import numpy as np


def negative_pools(all_labels: np.ndarray, subset: np.ndarray | None = None) -> dict:
    """class -> indices of the (trained-on) examples of every other class."""
    members = np.arange(len(all_labels)) if subset is None else np.asarray(subset)
    return {c: members[all_labels[members] != c] for c in np.unique(all_labels[members])}


def contrast_indices(index: np.ndarray, labels: np.ndarray, pools: dict, num_negatives: int,
                     rngs) -> np.ndarray:
    """[B, K+1] rows: column 0 the example's own index, then K distinct indices of other classes.
    `rngs`: one numpy Generator per row (or a single Generator used for every row)."""
    rows = np.empty((len(index), num_negatives + 1), np.int64)
    rows[:, 0] = index
    for i, c in enumerate(labels):
        others = pools[c]
        if len(others) < num_negatives:
            raise ValueError(f"CRD: {num_negatives} negatives requested but class {c} has only {len(others)} "
                             f"examples of other classes")
        rng = rngs[i] if isinstance(rngs, (list, tuple)) else rngs
        rows[i, 1:] = rng.choice(others, num_negatives, replace=False)
    return rows


class ContrastRows:
    """Pipeline extra: adds `contrast_idx` [local batch, K+1] to every training batch."""
    key = "contrast_idx"

    def __init__(self, labels: np.ndarray, candidates: np.ndarray, num_negatives: int, seed: int):
        self.labels, self.num_negatives, self.seed = np.asarray(labels), num_negatives, seed
        self.pools = negative_pools(self.labels, candidates)
        short = {int(c): len(p) for c, p in self.pools.items() if len(p) < num_negatives}
        if short:
            raise ValueError(f"CRD: contrast_negatives={num_negatives}, but classes {sorted(short)} have only "
                             f"{min(short.values())} examples of other classes; lower data.contrast_negatives")

    def shape(self) -> tuple:
        return (self.num_negatives + 1,)

    def __call__(self, step: int, rows: np.ndarray, index: np.ndarray) -> np.ndarray:
        rngs = [np.random.default_rng([self.seed, int(step), int(r), 0xC0D]) for r in rows]
        return contrast_indices(index, self.labels[index], self.pools, self.num_negatives, rngs)
