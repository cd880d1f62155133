"""A config's `data` block -> the training and evaluation pipelines of one process.

Keys (DATA_KEYS; every other key is an error):
- `name`, `data_dir`: the dataset (`kdjax.data.sources`);
- `train_split`, `eval_split`: split names (`'test[:64]'` slices); `train_classes` / `eval_classes`: optional
  (lo, hi) class-id ranges (deep metric learning trains on some classes and retrieves the others);
- `views`: training views, {name: ops}, e.g. {'image': 'pad_crop(4)|flip', 'image_strong': '...|randaugment'};
  `eval_view`: the ops of evaluation images (`kdjax.data.ops`); `normalization`: applied last in every view
  (None = the dataset's own constants, or a name, or dict(mean, std); no silent default);
- `sampler`: 'epoch' (shuffled epochs) or 'class_balanced' with `samples_per_class` and `sampler_mode`
  ('class_random' or 'm_per_class'); `per_class` + `subset_seed`: a class-balanced few-shot subset of the train split;
- `contrast_negatives`: K > 0 adds CRD's `contrast_idx` rows to every training batch;
- `expect`: optional dict(train=(classes, images), eval=(classes, images)) that the splits must match.
"""
import dataclasses

import numpy as np

from kdjax.data import contrast, pipeline, samplers, sources

DATA_KEYS = ("name", "data_dir", "train_split", "eval_split", "train_classes", "eval_classes", "views", "eval_view",
             "normalization", "sampler", "samples_per_class", "sampler_mode", "per_class", "subset_seed",
             "contrast_negatives", "expect")


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


def check_keys(cfg: dict) -> None:
    unknown = sorted(set(cfg) - set(DATA_KEYS))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown}; valid keys: {list(DATA_KEYS)}")


def _counts(split: sources.Split) -> tuple[int, int]:
    return int(np.count_nonzero(split.class_counts)), len(split)


def _expect(split, expected, which):
    if expected is not None and _counts(split) != tuple(expected):
        raise ValueError(f"{which} split {split.name} has {_counts(split)} (classes, images); the config expects "
                         f"{tuple(expected)}: a different dataset version or a broken download")


def _range(value):
    return None if value is None else (int(value[0]), int(value[1]))


def build(cfg: dict, *, seed: int, batch_size: int, eval_batch_size: int, process_index: int = 0,
          process_count: int = 1) -> Data:
    check_keys(cfg)
    name, data_dir = cfg["name"], cfg.get("data_dir")
    train_classes = _range(cfg.get("train_classes"))
    train_split = sources.get_split(name, cfg.get("train_split", "train"), data_dir=data_dir, classes=train_classes)
    eval_split = sources.get_split(name, cfg.get("eval_split", "test"), data_dir=data_dir,
                                   classes=_range(cfg.get("eval_classes")))
    expect = dict(cfg.get("expect") or {})
    _expect(train_split, expect.get("train"), "train")
    _expect(eval_split, expect.get("eval"), "eval")
    norm = pipeline.normalization(name, cfg.get("normalization"))

    candidates = np.arange(len(train_split))
    if cfg.get("per_class"):
        subset_seed = cfg.get("subset_seed")
        candidates = samplers.few_shot_indices(train_split.labels, int(cfg["per_class"]),
                                               seed if subset_seed is None else int(subset_seed))
    kind = cfg.get("sampler") or "epoch"
    if kind == "epoch":
        sampler = samplers.EpochSampler(candidates, batch_size, seed)
    elif kind == "class_balanced":
        sampler = samplers.ClassBalancedSampler(candidates, train_split.labels, batch_size, seed,
                                                samples_per_class=int(cfg.get("samples_per_class") or 2),
                                                mode=cfg.get("sampler_mode") or "class_random")
    else:
        raise ValueError(f"unknown sampler {kind!r}; valid samplers: {', '.join(samplers.SAMPLERS)}")
    extras = []
    if cfg.get("contrast_negatives"):
        extras.append(contrast.ContrastRows(train_split.labels, candidates, int(cfg["contrast_negatives"]), seed))
    views = dict(cfg.get("views") or {"image": ""})
    train = pipeline.TrainPipeline(train_split, sampler, views, seed=seed, norm=norm, process_index=process_index,
                                   process_count=process_count, extras=extras)
    evaluation = pipeline.EvalPipeline(eval_split, cfg.get("eval_view") or "", global_batch_size=eval_batch_size,
                                       norm=norm, process_index=process_index, process_count=process_count)
    num_classes = train_classes[1] if train_classes else train_split.num_classes
    return Data(train, evaluation, train_split, eval_split, num_classes)
