"""Multi-label evaluation on the whole split: the logits of every example are gathered from all processes, padding
dropped, then scored in NumPy (AP needs a global ranking per label).

- `multilabel`: mAP, OF1, CF1 in L2D's convention (the 3D paper's) as `mAP`, `OF1`, `CF1`, and ML-GCN's meter as
  `mlgcn_mAP`, `mlgcn_OF1`, ..., `mlgcn_CF1_top3` (`conventions` selects; see `kdjax.metrics.multilabel`).
- `teacher_stats` (usually with split='train'): the 3D supplement's Table C.4 columns for a teacher: per-label
  accuracy of sigmoid >= 0.5, mean score on positive and on negative labels.
"""
from kdjax import metrics
from kdjax.evaluators.base import EVALUATORS, Evaluator, collect_outputs
from kdjax.metrics.multilabel import CONVENTIONS


@EVALUATORS.register("multilabel")
class MultiLabel(Evaluator):
    def __init__(self, *, mesh, data, conventions=CONVENTIONS):
        super().__init__(mesh=mesh, data=data)
        self.conventions = tuple(conventions)
        unknown = sorted(set(self.conventions) - set(CONVENTIONS))
        if unknown or not self.conventions:
            raise ValueError(f"multilabel evaluator: conventions {list(self.conventions)}; valid: {list(CONVENTIONS)}")
        self._cache = {}

    def run(self, apply_fn, variables) -> dict[str, float]:
        logits, targets = collect_outputs(apply_fn, variables, self.data, self.mesh, cache=self._cache)
        result = {}
        for convention in self.conventions:
            prefix = "" if convention == self.conventions[0] else f"{convention}_"
            scores = metrics.multilabel_scores(logits, targets, convention=convention)
            result.update({prefix + k: v for k, v in scores.items()})
        return result


@EVALUATORS.register("teacher_stats")
class TeacherStats(Evaluator):
    def __init__(self, *, mesh, data):
        super().__init__(mesh=mesh, data=data)
        self._cache = {}

    def run(self, apply_fn, variables) -> dict[str, float]:
        return metrics.label_statistics(*collect_outputs(apply_fn, variables, self.data, self.mesh, cache=self._cache))
