"""A config's `data` block (`kdjax.schema.Data`, where its keys are declared) -> the training and evaluation
pipelines of one process."""
import dataclasses

import numpy as np

from kdjax import schema
from kdjax.data import contrast, pipeline, samplers, sources


@dataclasses.dataclass
class Data:
    train: pipeline.TrainPipeline
    eval: pipeline.EvalPipeline
    train_split: sources.Split
    eval_split: sources.Split
    num_classes: int          # of the training labels: classifier outputs, per-class parameters (margin beta)
    train_eval: pipeline.EvalPipeline | None = None  # the training split with the evaluation view, on demand

    @property
    def label_kind(self) -> str:
        return self.train_split.label_kind

    @property
    def num_examples(self) -> int:
        return len(self.train_split)

    def evaluation(self, split: str) -> pipeline.EvalPipeline:
        """'eval': the evaluation split; 'train': every training example once with the evaluation view (embedding
        statistics of the training classes, Roth et al.'s pi_ratio and rho)."""
        if split == "eval":
            return self.eval
        if split == "train":
            if self.train_eval is None:
                e = self.eval
                self.train_eval = pipeline.EvalPipeline(self.train_split, e.views.specs["image"],
                                                        global_batch_size=e.global_batch_size, norm=e.norm,
                                                        process_index=e.process_index, process_count=e.process_count)
            return self.train_eval
        raise ValueError(f"evaluation split {split!r}; valid: 'eval', 'train'")


def _counts(split: sources.Split) -> tuple[int, int]:
    return int(np.count_nonzero(split.class_counts)), len(split)


def _expect(split, expected, which):
    if expected is not None and _counts(split) != tuple(expected):
        raise ValueError(f"{which} split {split.name} has {_counts(split)} (classes, images); the config expects "
                         f"{tuple(expected)}: a different dataset version or a broken download")


def _range(value):
    return None if value is None else (int(value[0]), int(value[1]))


def _candidates(cfg: schema.Data, split: sources.Split, seed: int, batch_size: int) -> np.ndarray:
    """The training examples the sampler draws from: the split, or its few-shot subset."""
    if not cfg.per_class:
        return np.arange(len(split))
    subset_seed = seed if cfg.subset_seed is None else int(cfg.subset_seed)
    chosen = samplers.few_shot_indices(split.labels, int(cfg.per_class), subset_seed)
    if len(chosen) < batch_size:
        classes = len(chosen) // int(cfg.per_class)
        raise ValueError(f"per_class={cfg.per_class} x {classes} classes = {len(chosen)} training examples, fewer "
                         f"than one global batch of {batch_size}: raise per_class to at least "
                         f"{-(-batch_size // classes)} or lower the batch size")
    return chosen


def build(cfg, *, seed: int, batch_size: int, eval_batch_size: int, process_index: int = 0,
          process_count: int = 1) -> Data:
    """`cfg`: a `schema.Data` (or a dict / ConfigDict of its keys)."""
    if not isinstance(cfg, schema.Data):
        cfg = schema.resolve(cfg, schema.Data, "data")
    train_classes = _range(cfg.train_classes)
    train_split = sources.get_split(cfg.name, cfg.train_split, data_dir=cfg.data_dir, classes=train_classes)
    eval_split = sources.get_split(cfg.name, cfg.eval_split, data_dir=cfg.data_dir, classes=_range(cfg.eval_classes))
    expect = dict(cfg.expect or {})
    _expect(train_split, expect.get("train"), "train")
    _expect(eval_split, expect.get("eval"), "eval")
    norm = pipeline.normalization(cfg.name, cfg.normalization)
    candidates = _candidates(cfg, train_split, seed, batch_size)
    sampler = samplers.SAMPLERS.get(cfg.sampler or "epoch")(candidates, train_split.labels, batch_size, seed, cfg)
    extras = []
    if cfg.contrast_negatives:
        extras.append(contrast.ContrastRows(train_split.labels, candidates, int(cfg.contrast_negatives), seed))
    train = pipeline.TrainPipeline(train_split, sampler, dict(cfg.views or {"image": ""}), seed=seed, norm=norm,
                                   process_index=process_index, process_count=process_count, extras=extras)
    evaluation = pipeline.EvalPipeline(eval_split, cfg.eval_view or "", global_batch_size=eval_batch_size,
                                       norm=norm, process_index=process_index, process_count=process_count)
    num_classes = train_classes[1] if train_classes else train_split.num_classes
    return Data(train, evaluation, train_split, eval_split, num_classes)
