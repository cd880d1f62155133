"""Which examples form step s's global batch: pure functions of (seed, step), so the data order survives any
restart and does not depend on the number of processes (each process takes its slice of the global batch).

- `EpochSampler`: each epoch a fresh permutation of the candidate examples, cut into batches, the incomplete last
  batch dropped (PyTorch `DataLoader(shuffle=True, drop_last=True)`).
- `ClassBalancedSampler`: deep metric learning's class-balanced batches. `mode='class_random'` (Roth et al.,
  reference: MLforHealth/S2SD datasampler/class_random_sampler.py): batch_size / m times, a class uniformly with
  replacement, then m of its examples uniformly with replacement (a class can appear 2m, 3m, ... times and an
  example twice; each occurrence is augmented independently). `mode='m_per_class'` (pytorch-metric-learning
  `MPerClassSampler`): distinct classes within a batch, m distinct examples each where the class has m.
  One epoch = len(examples) // batch_size steps, as the reference.
"""
import warnings

import numpy as np

from kdjax.registry import Registry

CLASS_BALANCED_MODES = ("class_random", "m_per_class")


def few_shot_indices(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Sorted indices of `per_class` examples of every class, drawn without replacement from `seed`."""
    rng = np.random.default_rng([seed, 0x5B5E7])
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < per_class:
            raise ValueError(f"few-shot subset: class {c} has {len(members)} examples, fewer than per_class={per_class}")
        chosen.append(rng.choice(members, per_class, replace=False))
    return np.sort(np.concatenate(chosen))


class EpochSampler:
    def __init__(self, candidates: np.ndarray, batch_size: int, seed: int):
        self.candidates = np.asarray(candidates, np.int64)
        self.batch_size, self.seed = batch_size, seed
        self.steps_per_epoch = len(self.candidates) // batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"{len(self.candidates)} training examples are fewer than one global batch of "
                             f"{batch_size}")
        self._cache = (None, None)  # (epoch, order): one tuple, so the pipeline's threads never see half an update

    def __call__(self, step: int) -> np.ndarray:
        """Dataset indices [batch_size] of global batch `step`."""
        epoch, offset = divmod(int(step), self.steps_per_epoch)
        cached_epoch, order = self._cache
        if cached_epoch != epoch:
            order = self.candidates[np.random.default_rng([self.seed, epoch, 0xE90C]).permutation(
                len(self.candidates))]
            self._cache = (epoch, order)
        return order[offset * self.batch_size:(offset + 1) * self.batch_size]


class ClassBalancedSampler:
    def __init__(self, candidates: np.ndarray, labels: np.ndarray, batch_size: int, seed: int, *,
                 samples_per_class: int = 2, mode: str = "class_random"):
        if mode not in CLASS_BALANCED_MODES:
            raise ValueError(f"class-balanced sampler: mode={mode!r}; valid: {', '.join(CLASS_BALANCED_MODES)}")
        if samples_per_class < 1 or batch_size % samples_per_class:
            raise ValueError(f"class-balanced sampler: batch size {batch_size} is not a multiple of "
                             f"samples_per_class={samples_per_class}")
        labels = np.asarray(labels)
        if labels.ndim != 1:
            raise ValueError("class-balanced sampler: needs class-id labels, not multi-hot labels")
        self.candidates = np.asarray(candidates, np.int64)
        self.batch_size, self.seed, self.m, self.mode = batch_size, seed, samples_per_class, mode
        classes, inverse = np.unique(labels[self.candidates], return_inverse=True)
        self.members = [self.candidates[inverse == c] for c in range(len(classes))]
        self.steps_per_epoch = len(self.candidates) // batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"{len(self.candidates)} training examples are fewer than one global batch of "
                             f"{batch_size}")
        classes_per_batch = batch_size // samples_per_class
        if mode == "m_per_class" and classes_per_batch > len(classes):
            raise ValueError(f"m_per_class sampler: a batch of {batch_size} needs {classes_per_batch} distinct "
                             f"classes, the data has {len(classes)}")
        singletons = sum(len(m) < 2 for m in self.members)
        if samples_per_class < 2 or singletons:
            warnings.warn(f"class-balanced sampler: samples_per_class={samples_per_class}, {singletons} classes with "
                          "a single example: batches will hold classes without a second example (no positive "
                          "pair for them)", stacklevel=2)

    def __call__(self, step: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, int(step), 0xC1A5])
        n_classes = self.batch_size // self.m
        if self.mode == "class_random":
            chosen = rng.integers(0, len(self.members), n_classes)
            return np.concatenate([self.members[c][rng.integers(0, len(self.members[c]), self.m)] for c in chosen])
        chosen = rng.choice(len(self.members), n_classes, replace=False)
        return np.concatenate([rng.choice(self.members[c], self.m, replace=len(self.members[c]) < self.m)
                               for c in chosen])


# name -> factory(candidates, labels, batch_size, seed, data block) -> sampler (`sampler(step)` -> global indices)
SAMPLERS = Registry("sampler")
SAMPLERS.register("epoch", lambda candidates, labels, batch_size, seed, cfg: EpochSampler(candidates, batch_size, seed))
SAMPLERS.register("class_balanced", lambda candidates, labels, batch_size, seed, cfg: ClassBalancedSampler(
    candidates, labels, batch_size, seed, samples_per_class=int(cfg.samples_per_class), mode=cfg.sampler_mode))
