"""Evaluators selected by the config: `config.evals = {name: dict(type=<registered type>, every_epochs=...,
**options)}`; their metrics are logged as `<name>/<metric>`. New evaluators subclass `Evaluator` and register in
`EVALUATORS` (`EVALUATORS.register('name', cls)`); the trainer does not change."""
from kdjax.evaluators.base import EVALUATORS, Evaluator, collect_outputs
from kdjax.evaluators import classification, multilabel, retrieval  # noqa: F401  (registration)

ENTRY_KEYS = ("type", "every_epochs", "split")  # split: 'eval' (default) or 'train' (with the evaluation view)
SPLITS = ("eval", "train")


def check(name: str, entry: dict) -> None:
    """Raises ValueError for an unknown evaluator type or option, naming the valid ones."""
    if entry.get("split", "eval") not in SPLITS:
        raise ValueError(f"evals.{name}.split={entry['split']!r}; valid: {', '.join(map(repr, SPLITS))}")
    try:
        cls = EVALUATORS.get(entry.get("type"))
    except ValueError as e:
        raise ValueError(f"evals.{name}.type: {e}") from e
    valid = list(ENTRY_KEYS) + cls.options()
    unknown = sorted(set(entry) - set(valid))
    if unknown:
        raise ValueError(f"evals.{name}: unknown option(s) {unknown} for a {entry['type']!r} evaluator; valid: {valid}")


def build(name: str, entry: dict, *, mesh, data) -> Evaluator:
    """`data`: a `kdjax.data.Data`; the evaluator reads the split its entry names."""
    check(name, entry)
    options = {k: v for k, v in entry.items() if k not in ENTRY_KEYS}
    return EVALUATORS.get(entry["type"])(mesh=mesh, data=data.evaluation(entry.get("split", "eval")), **options)


__all__ = ["ENTRY_KEYS", "EVALUATORS", "Evaluator", "build", "check", "collect_outputs"]
