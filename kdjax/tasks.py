"""Tasks: what kind of learning a config does, as a small declarative bundle the generic trainer reads.

A task names the labels the data must provide, the train-step metrics that make sense for them, the evaluators a
stage runs unless the config lists its own (`config.evals`), and the headline metric whose best value is tracked
and whose best checkpoint is kept (`config.best_metric` overrides it).

- `classification`: class-id labels, model outputs = logits; train accuracy and teacher agreement; top-1/top-5.
- `metric_learning`: class-id labels used only to form positives and negatives, model outputs = embeddings;
  retrieval on the evaluation classes (Recall@K).
- `multilabel`: multi-hot labels, model outputs = per-label logits.
"""
import dataclasses
from typing import Callable

import jax.numpy as jnp

from kdjax.registry import Registry


def _classification_metrics(logits, teacher_logits, labels) -> dict:
    top1 = jnp.argmax(logits, axis=-1)
    metrics = {"train/accuracy": jnp.mean(top1 == labels)}
    if teacher_logits is not None:
        metrics["train/teacher_agreement"] = jnp.mean(top1 == jnp.argmax(teacher_logits, axis=-1))
    return metrics


def _no_metrics(outputs, teacher_outputs, labels) -> dict:
    del outputs, teacher_outputs, labels
    return {}


def _any_outputs(num_outputs: int, num_labels: int) -> None:
    """A classifier may have other outputs than the data's classes (an ImageNet head on a 67-class dataset)."""


def _one_output_per_label(num_outputs: int, num_labels: int) -> None:
    if num_outputs != num_labels:
        raise ValueError(f"num_classes={num_outputs}, but the data has {num_labels} labels; a multi-label model has "
                         "one output per label (remove model.num_classes)")


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    label_kind: str                   # 'class' (int ids) or 'multi_hot' (0/1 per class)
    train_metrics: Callable           # (student outputs, teacher outputs or None, labels) -> {name: scalar}, in-jit
    evals: dict                       # default config.evals
    headline: str                     # default config.best_metric
    check_outputs: Callable = _any_outputs  # (model outputs, data labels) -> None, raises ValueError

    def check_data(self, label_kind: str, split_name: str) -> None:
        if label_kind != self.label_kind:
            raise ValueError(f"task {self.name!r} needs {self.label_kind} labels; {split_name} has {label_kind} "
                             "labels")


TASKS = Registry("task")
TASKS.register("classification", Task("classification", "class", _classification_metrics,
                                      {"eval": {"type": "classification"}}, "eval/accuracy"))
TASKS.register("metric_learning", Task("metric_learning", "class", _no_metrics, {"eval": {"type": "retrieval"}},
                                       "eval/recall@1"))
TASKS.register("multilabel", Task("multilabel", "multi_hot", _no_metrics, {"eval": {"type": "multilabel"}},
                                  "eval/mAP", _one_output_per_label))


def get_task(name: str) -> Task:
    return TASKS.get(name)
