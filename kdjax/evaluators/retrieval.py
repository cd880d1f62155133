"""Retrieval on the evaluation split (deep metric learning): every embedding queries all the others.

Recall@K (query set = gallery, the query itself excluded; `kdjax.metrics.recall_at_k`) on the embeddings of the
whole split, gathered from every process with padded rows dropped.
"""
from kdjax import metrics
from kdjax.evaluators.base import Evaluator, collect_outputs


class Retrieval(Evaluator):
    def __init__(self, *, mesh, data, ks=(1, 2, 4, 8)):
        super().__init__(mesh=mesh, data=data)
        self.ks = tuple(int(k) for k in ks)
        self._cache = {}

    def run(self, apply_fn, variables) -> dict[str, float]:
        embeddings, labels = collect_outputs(apply_fn, variables, self.data, self.mesh, cache=self._cache)
        ks = [k for k in self.ks if k < len(labels)]
        return {f"recall@{k}": v for k, v in metrics.recall_at_k(embeddings, labels, ks).items()}
