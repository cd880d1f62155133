"""Evaluators selected by the config: `config.evals = {name: dict(type=<registered type>, every_epochs=...,
**options)}`; their metrics are logged as `<name>/<metric>`. New evaluators subclass `Evaluator` and register in
`EVALUATORS`; the trainer does not change."""
from kdjax.evaluators.base import Evaluator, collect_outputs
from kdjax.evaluators.classification import Classification
from kdjax.evaluators.retrieval import Retrieval

EVALUATORS = {"classification": Classification, "retrieval": Retrieval}
ENTRY_KEYS = ("type", "every_epochs")


def check(name: str, entry: dict) -> None:
    """Raises ValueError for an unknown evaluator type or option, naming the valid ones."""
    kind = entry.get("type")
    if kind not in EVALUATORS:
        raise ValueError(f"evals.{name}.type: unknown evaluator {kind!r}; valid evaluators: {', '.join(EVALUATORS)}")
    valid = list(ENTRY_KEYS) + EVALUATORS[kind].options()
    unknown = sorted(set(entry) - set(valid))
    if unknown:
        raise ValueError(f"evals.{name}: unknown option(s) {unknown} for a {kind!r} evaluator; valid: {valid}")


def build(name: str, entry: dict, *, mesh, data) -> Evaluator:
    check(name, entry)
    options = {k: v for k, v in entry.items() if k not in ENTRY_KEYS}
    return EVALUATORS[entry["type"]](mesh=mesh, data=data, **options)


__all__ = ["ENTRY_KEYS", "EVALUATORS", "Evaluator", "build", "check", "collect_outputs"]
