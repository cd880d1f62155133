"""Retrieval on the evaluation split (deep metric learning: the evaluation classes are unseen in training): every
embedding queries all the others, as Roth et al.'s Revisiting-DML protocol (reference: MLforHealth/S2SD
metrics/). Embeddings of the whole split are gathered from every process, padding dropped, then:
Recall@K (`recall@K`), MAP@R (`map_at_r`, Musgrave et al.), Roth's mAP over the R nearest (`map@R`, R = 1000 by
default: S2SD's mAP@R column) and NMI of k-means clusters (`nmi`, k = number of evaluation classes).
`term_heads=True` also reports these metrics for every embedding a loss term defines (`Term.eval_embeddings`:
S2SD's target branches and the normalised pooled feature), as `<term>/<head>/<metric>`.
`EmbeddingSpace` (type 'embedding_space', usually with split='train') logs pi_ratio and the spectral decay rho.
"""
from kdjax import metrics
from kdjax.evaluators.base import EVALUATORS, Evaluator, collect_outputs


@EVALUATORS.register("retrieval")
class Retrieval(Evaluator):
    def __init__(self, *, mesh, data, ks=(1, 2, 4, 8), map_at_r: bool = True, roth_map_r=1000, nmi: bool = True,
                 nmi_backend: str = "sklearn", num_clusters=None, seed: int = 0, term_heads: bool = False):
        super().__init__(mesh=mesh, data=data)
        self.ks = tuple(int(k) for k in ks)
        self.map_at_r, self.roth_map_r, self.nmi = map_at_r, roth_map_r, nmi
        self.nmi_backend, self.num_clusters, self.seed = nmi_backend, num_clusters, seed
        self.reads_terms = bool(term_heads)
        self._cache = {}

    def _metrics(self, embeddings, labels) -> dict[str, float]:
        ks = [k for k in self.ks if k < len(labels)]
        result = metrics.retrieval_metrics(embeddings, labels, ks=ks, map_at_r=self.map_at_r,
                                           roth_map_r=self.roth_map_r)
        if self.nmi:
            result["nmi"] = metrics.nmi(embeddings, labels, num_clusters=self.num_clusters, seed=self.seed,
                                        backend=self.nmi_backend)
        return result

    def run(self, apply_fn, variables, terms=None) -> dict[str, float]:
        if terms is None:
            return self._metrics(*collect_outputs(apply_fn, variables, self.data, self.mesh, cache=self._cache))
        weighted_terms, term_params = terms
        if ("heads", apply_fn) not in self._cache:  # one function per model, so that it compiles once
            def with_heads(both, images, train):
                outputs, taps = apply_fn(both["model"], images, train=train)
                heads = {f"{w.name}/{head}": z for w in weighted_terms
                         for head, z in w.term.eval_embeddings(both["terms"].get(w.name), outputs, taps).items()}
                return dict(heads, model=outputs), taps
            self._cache[("heads", apply_fn)] = with_heads
        embeddings, labels = collect_outputs(self._cache[("heads", apply_fn)], {"model": variables,
                                             "terms": term_params}, self.data, self.mesh, cache=self._cache)
        result = self._metrics(embeddings.pop("model"), labels)
        for head, z in embeddings.items():
            result.update({f"{head}/{k}": v for k, v in self._metrics(z, labels).items()})
        return result


@EVALUATORS.register("embedding_space")
class EmbeddingSpace(Evaluator):
    """`pi_ratio`, the density, and `rho`, the spectral decay without the `drop` largest singular values."""
    lower_is_better = frozenset()

    def __init__(self, *, mesh, data, drop: int = 10):
        super().__init__(mesh=mesh, data=data)
        self.drop = drop
        self._cache = {}

    def run(self, apply_fn, variables) -> dict[str, float]:
        embeddings, labels = collect_outputs(apply_fn, variables, self.data, self.mesh, cache=self._cache)
        return {"pi_ratio": metrics.embedding_density(embeddings, labels),
                "rho": metrics.spectral_decay(embeddings, drop=self.drop)}
