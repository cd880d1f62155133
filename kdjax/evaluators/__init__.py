"""Evaluators selected by the config: `config.evals = {name: dict(type=<registered type>, every_epochs=...,
**options)}`; their metrics are logged as `<name>/<metric>`. New evaluators subclass `Evaluator` and register in
`EVALUATORS`; the trainer does not change."""
from kdjax.evaluators.base import Evaluator, collect_outputs
from kdjax.evaluators.classification import Classification
from kdjax.evaluators.multilabel import MultiLabel, TeacherStats
from kdjax.evaluators.retrieval import EmbeddingSpace, Retrieval

EVALUATORS = {"classification": Classification, "retrieval": Retrieval, "embedding_space": EmbeddingSpace,
              "multilabel": MultiLabel, "teacher_stats": TeacherStats}
ENTRY_KEYS = ("type", "every_epochs", "split")  # split: 'eval' (default) or 'train' (with the evaluation view)


def check(name: str, entry: dict) -> None:
    """Raises ValueError for an unknown evaluator type or option, naming the valid ones."""
    kind = entry.get("type")
    if entry.get("split", "eval") not in ("eval", "train"):
        raise ValueError(f"evals.{name}.split={entry['split']!r}; valid: 'eval', 'train'")
    if kind not in EVALUATORS:
        raise ValueError(f"evals.{name}.type: unknown evaluator {kind!r}; valid evaluators: {', '.join(EVALUATORS)}")
    valid = list(ENTRY_KEYS) + EVALUATORS[kind].options()
    unknown = sorted(set(entry) - set(valid))
    if unknown:
        raise ValueError(f"evals.{name}: unknown option(s) {unknown} for a {kind!r} evaluator; valid: {valid}")


def build(name: str, entry: dict, *, mesh, data) -> Evaluator:
    """`data`: a `kdjax.data.Data`; the evaluator reads the split its entry names."""
    check(name, entry)
    options = {k: v for k, v in entry.items() if k not in ENTRY_KEYS}
    return EVALUATORS[entry["type"]](mesh=mesh, data=data.evaluation(entry.get("split", "eval")), **options)


__all__ = ["ENTRY_KEYS", "EVALUATORS", "Evaluator", "build", "check", "collect_outputs"]
