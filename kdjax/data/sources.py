"""Where examples come from: random-access splits (global index -> example), whatever the storage.

A `Split` is one split of a dataset, read by global index. It holds every label in memory (class ids [N] int32,
or multi-hot [N, C] float32), computed once when the split is opened, and reaches the images either decoded in
memory (`images`, uint8 [N, H, W, C]: the small offline datasets) or encoded (`records[i]` -> PNG/JPEG bytes),
decoded by the input pipeline per step, so a dataset never has to fit in RAM decoded.

Dataset names:
- `digits`: scikit-learn's bundled 8x8 digits (1,797 images, 10 classes), a fixed stratified split of 1,437 train /
  360 test images (random_state 0), pixel values 0..16 scaled to 0..255;
- `fashion_mnist`: the IDX files of Debian's `dataset-fashion-mnist` package (60,000 / 10,000 28x28 images), or of
  the folder `data.data_dir` or $KDJAX_FASHION_MNIST_DIR names;
- `fashion_mnist_mosaic`: multi-label 2x2 mosaics of those images (24,000 / 4,000, 10 labels; `kdjax.data.mosaic`);
- any TFDS name (`cifar100`, `caltech_birds2011`, `tfds:fashion_mnist` to force TFDS for a name used above):
  random access through `tfds.data_source` when the dataset was prepared as ArrayRecord; a split prepared as
  TFRecord (TFDS's default) is read once into memory as encoded bytes (its file size in RAM);
- `folder:<root>`: images in class folders, `<root>/<split>/<class>/<image>`, classes in sorted order;
- `voc/2007`, `coco/2014` (TFDS) and `nus_wide:<root>` (official files): multi-hot labels, as L2D reads them
  (`kdjax.data.multilabel_datasets`);
- `tiny_imagenet:<root>`: the official Tiny-ImageNet archive unpacked (`tiny-imagenet-200/`): splits `train`
  (100,000 images) and `val` (10,000, labels from `val/val_annotations.txt`), 200 classes in sorted wnid order.
Split names may take a first-N slice, `test[:64]` (every source), and TFDS split arithmetic (`train+test`).
"""
import dataclasses
import difflib
import functools
import gzip
import os
import re
from typing import Callable, Sequence

import numpy as np

from kdjax.data import mosaic, multilabel_datasets
from kdjax.registry import Registry

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_ENV = "KDJAX_FASHION_MNIST_DIR"
_FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
TFDS_PREFIX = "tfds:"
FOLDER_PREFIX = "folder:"
TINY_IMAGENET_PREFIX = "tiny_imagenet:"
TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def parse_split(split: str) -> tuple[str, int | None]:
    """'test[:64]' -> ('test', 64): the first N examples. Other strings pass unchanged."""
    match = re.fullmatch(r"([\w+]+)\[:(\d+)\]", split)
    return (match.group(1), int(match.group(2))) if match else (split, None)


class _Taken(Sequence):
    """records[indices[i]]: a subset of a random-access sequence without copying it."""

    def __init__(self, records, indices):
        self._records, self._indices = records, np.asarray(indices)

    def __len__(self):
        return len(self._indices)

    def __getitem__(self, i):
        return self._records[int(self._indices[i])]


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
    """One split, random access. Exactly one of `images` (decoded, in memory) and `records` (encoded bytes) is set."""
    name: str
    labels: np.ndarray
    num_classes: int
    class_names: tuple[str, ...]
    images: np.ndarray | None = None
    records: Sequence | None = None
    channels: int = 3

    def __post_init__(self):
        if (self.images is None) == (self.records is None):
            raise ValueError(f"split {self.name}: set exactly one of images and records")
        if len(self.labels) != (len(self.images) if self.images is not None else len(self.records)):
            raise ValueError(f"split {self.name}: {len(self.labels)} labels for a different number of images")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def label_kind(self) -> str:
        """'class' (int class ids) or 'multi_hot' (float 0/1 per class)."""
        return "class" if self.labels.ndim == 1 else "multi_hot"

    @functools.cached_property
    def class_counts(self) -> np.ndarray:
        """Examples per class (positives per class for multi-hot labels)."""
        if self.label_kind == "class":
            return np.bincount(self.labels, minlength=self.num_classes)
        return self.labels.sum(axis=0).astype(np.int64)

    def take(self, indices, name: str) -> "Split":
        """The examples at `indices`, renumbered 0..len-1."""
        indices = np.asarray(indices, np.int64)
        return dataclasses.replace(
            self, name=name, labels=self.labels[indices],
            images=None if self.images is None else self.images[indices],
            records=None if self.records is None else _Taken(self.records, indices))

    def with_classes(self, lo: int, hi: int) -> "Split":
        """The examples whose class id lies in [lo, hi) (deep-metric-learning class splits); labels stay as they
        are (Roth et al.'s convention: raw class keys)."""
        if self.label_kind != "class":
            raise ValueError(f"split {self.name}: a class range needs class-id labels, not multi-hot labels")
        if not 0 <= lo < hi <= self.num_classes:
            raise ValueError(f"split {self.name}: class range [{lo}, {hi}) outside the {self.num_classes} classes")
        keep = np.flatnonzero((self.labels >= lo) & (self.labels < hi))
        return self.take(keep, f"{self.name}[classes {lo}:{hi}]")


# ---- offline sources ------------------------------------------------------------------------------------------------
def _array_split(dataset, split, images, labels, num_classes):
    return Split(f"{dataset}:{split}", np.asarray(labels, np.int32), num_classes,
                 tuple(str(c) for c in range(num_classes)), images=images, channels=images.shape[-1])


@functools.cache
def _digits(data_dir=None) -> dict:
    del data_dir  # bundled with scikit-learn
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    x_tr, x_te, y_tr, y_te = train_test_split(images, digits.target, test_size=360, stratify=digits.target,
                                              random_state=0)
    return {"train": _array_split("digits", "train", x_tr, y_tr, 10),
            "test": _array_split("digits", "test", x_te, y_te, 10)}


def read_idx(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist_directory(data_dir: str | None = None) -> str:
    """Where the Fashion-MNIST IDX files are: `data.data_dir`, else $KDJAX_FASHION_MNIST_DIR, else Debian's
    `dataset-fashion-mnist` location."""
    return data_dir or os.environ.get(FASHION_MNIST_ENV) or FASHION_MNIST_DIR


def fashion_mnist(data_dir: str | None = None) -> dict:
    """{'train', 'test'} Splits of Fashion-MNIST read from its four IDX files (`fashion_mnist_directory`)."""
    return _fashion_mnist_from(fashion_mnist_directory(data_dir))


@functools.cache
def _fashion_mnist_from(directory: str) -> dict:
    splits = {}
    for split, (image_file, label_file) in _FASHION_MNIST_FILES.items():
        paths = [os.path.join(directory, f) for f in (image_file, label_file)]
        missing = [p for p in paths if not os.path.exists(p)]
        if missing:
            raise FileNotFoundError(
                f"Fashion-MNIST files not found: {missing}. Install them with "
                "`apt-get install -y dataset-fashion-mnist` (Debian/Ubuntu, as root), or point "
                f"${FASHION_MNIST_ENV} (or data.data_dir) at a folder holding the four IDX files of "
                "https://github.com/zalandoresearch/fashion-mnist, or set "
                f"data.name='{TFDS_PREFIX}fashion_mnist' to download the dataset through TFDS.")
        splits[split] = _array_split("fashion_mnist", split, read_idx(paths[0])[..., None], read_idx(paths[1]), 10)
    return splits


@functools.cache
def _fashion_mnist_mosaic(data_dir=None) -> dict:
    splits = {}
    for split, single in fashion_mnist(data_dir).items():
        images, labels = mosaic.build(single.images, single.labels, mosaic.SIZES[split], mosaic.SEEDS[split])
        splits[split] = Split(f"fashion_mnist_mosaic:{split}", labels, len(mosaic.NAMES), mosaic.NAMES,
                              images=images, channels=1)
    return splits


# ---- TFDS -----------------------------------------------------------------------------------------------------------
def _class_label(key: str) -> Callable:
    return lambda example: int(example[key])


# How to read the label of each TFDS dataset kdjax knows; every other one uses its `label` feature. Multi-hot
# datasets (VOC, COCO) are read by `multilabel_datasets.TFDS_MULTI_HOT`.
TFDS_LABELS: dict[str, Callable] = {"stanford_online_products": _class_label("class_id")}
TFDS_LABELS.update({family: m.read for family, m in multilabel_datasets.TFDS_MULTI_HOT.items()})
TFDS_LABEL_FEATURES: dict[str, str] = {"stanford_online_products": "class_id"}


def _tfds_builder(name: str, data_dir):
    import tensorflow_datasets as tfds
    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as e:
        close = difflib.get_close_matches(name, tfds.list_builders(), n=5)
        known = ", ".join(n + "<root>" if n.endswith(":") else n for n in DATASETS.names())
        raise ValueError(f"Unknown dataset {name!r}: neither a registered dataset ({known}) nor a TFDS builder. "
                         f"Close TFDS names: {close or 'none'}") from e


class _FeatureColumn(Sequence):
    """data_source[i][key]: one feature of a random-access TFDS split."""

    def __init__(self, source, key):
        self._source, self._key = source, key

    def __len__(self):
        return len(self._source)

    def __getitem__(self, i):
        return self._source[int(i)][self._key]


def _tfds_split(name: str, split: str, data_dir) -> Split:
    import tensorflow_datasets as tfds
    builder = _tfds_builder(name, data_dir)
    family = name.split("/")[0]
    features = builder.info.features
    label_key = TFDS_LABEL_FEATURES.get(family, "label")
    if "image" not in features or (family not in TFDS_LABELS and label_key not in features):
        raise ValueError(f"TFDS dataset {name!r} has features {list(features)}; kdjax needs an 'image' and a label "
                         f"(register how to read it in kdjax.data.sources.TFDS_LABELS)")
    label_of = TFDS_LABELS.get(family, _class_label(label_key))
    decoders = {"image": tfds.decode.SkipDecoding()}
    try:
        source = tfds.data_source(name, split=split, data_dir=data_dir, decoders=decoders)
        records = _FeatureColumn(source, "image")
        labels = [label_of(source[i]) for i in range(len(source))]
    except NotImplementedError:  # prepared as TFRecord: one sequential pass, images kept encoded
        try:
            ds = builder.as_dataset(split=split, shuffle_files=False, decoders=decoders)
        except (AssertionError, ValueError, KeyError) as e:
            raise ValueError(f"Cannot read split {split!r} of dataset {name!r}: {e}") from e
        records, labels = [], []
        for example in tfds.as_numpy(ds):
            records.append(example["image"])
            labels.append(label_of(example))
    except (AssertionError, ValueError, KeyError) as e:
        raise ValueError(f"Cannot read split {split!r} of dataset {name!r}: {e}") from e
    label_feature = features[label_key] if label_key in features else None
    multi_hot = multilabel_datasets.TFDS_MULTI_HOT.get(family)
    labels = np.asarray(labels, np.float32 if multi_hot else np.int32)
    if multi_hot and multi_hot.keep is not None:
        kept = np.flatnonzero([multi_hot.keep(label) for label in labels])
        records, labels = _Taken(records, kept), labels[kept]
    num_classes = len(multi_hot.names) if multi_hot else getattr(label_feature, "num_classes", None)
    names = multi_hot.names if multi_hot else tuple(getattr(label_feature, "names", None) or
                                                    (str(c) for c in range(num_classes)))
    channels = (features["image"].shape[-1] or 3) if features["image"].shape else 3
    return Split(f"{name}:{split}", labels, num_classes, names, records=records, channels=channels)


# ---- image folders --------------------------------------------------------------------------------------------------
class _FileBytes(Sequence):
    def __init__(self, paths):
        self._paths = paths

    def __len__(self):
        return len(self._paths)

    def __getitem__(self, i):
        with open(self._paths[int(i)], "rb") as f:
            return f.read()


def _folder_split(root: str, split: str) -> Split:
    directory = os.path.join(root, split)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"image folder {directory!r} does not exist; expected {root}/<split>/<class>/<images>")
    classes = sorted(d for d in os.listdir(directory) if os.path.isdir(os.path.join(directory, d)))
    if not classes:
        raise FileNotFoundError(f"image folder {directory!r} holds no class folders")
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(f for f in os.listdir(os.path.join(directory, name)) if f.lower().endswith(IMAGE_EXTENSIONS))
        paths += [os.path.join(directory, name, f) for f in files]
        labels += [label] * len(files)
    return Split(f"{FOLDER_PREFIX}{root}:{split}", np.asarray(labels, np.int32), len(classes), tuple(classes),
                 records=_FileBytes(paths), channels=3)


def _tiny_imagenet_split(root: str, split: str) -> Split:
    """The official archive's layout: train/<wnid>/images/*.JPEG; val/images/*.JPEG + val/val_annotations.txt."""
    train_dir = os.path.join(root, "train")
    how = (f"download {TINY_IMAGENET_URL}, unzip it (`unzip tiny-imagenet-200.zip`) and pass "
           f"data.name='{TINY_IMAGENET_PREFIX}<path>/tiny-imagenet-200'")
    if not os.path.isdir(train_dir):
        raise FileNotFoundError(f"Tiny-ImageNet: {train_dir} does not exist; {how}")
    wnids = sorted(d for d in os.listdir(train_dir) if os.path.isdir(os.path.join(train_dir, d)))
    index = {w: i for i, w in enumerate(wnids)}
    if split == "train":
        paths, labels = [], []
        for w in wnids:
            folder = os.path.join(train_dir, w, "images")
            files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
            paths += [os.path.join(folder, f) for f in files]
            labels += [index[w]] * len(files)
    elif split == "val":
        annotations = os.path.join(root, "val", "val_annotations.txt")
        if not os.path.exists(annotations):
            raise FileNotFoundError(f"Tiny-ImageNet: {annotations} does not exist; {how}")
        with open(annotations, encoding="utf-8") as f:
            rows = sorted(line.split("\t")[:2] for line in f if line.strip())
        unknown = sorted({w for _, w in rows} - set(index))
        if unknown:
            raise ValueError(f"Tiny-ImageNet: val_annotations.txt names classes without a train folder: {unknown[:5]}")
        paths = [os.path.join(root, "val", "images", name) for name, _ in rows]
        labels = [index[w] for _, w in rows]
    else:
        raise ValueError(f"Dataset 'tiny_imagenet' has no split {split!r}; valid splits: ['train', 'val']")
    return Split(f"{TINY_IMAGENET_PREFIX}{root}:{split}", np.asarray(labels, np.int32), len(wnids), tuple(wnids),
                 records=_FileBytes(paths), channels=3)


def _nus_wide_split(root: str, split: str) -> Split:
    paths, labels, concepts = multilabel_datasets.read_nus_wide(root, split)
    return Split(f"{multilabel_datasets.NUS_WIDE_PREFIX}{root}:{split}", labels, len(concepts), concepts,
                 records=_FileBytes(paths), channels=3)


# ---- entry point ----------------------------------------------------------------------------------------------------
def _offline(splits: Callable[[], dict]) -> Callable:
    def open_split(name, split, data_dir):
        available = splits(data_dir)
        if split not in available:
            raise ValueError(f"Dataset {name!r} has no split {split!r}; valid splits: {sorted(available)} "
                             "(optionally sliced as 'name[:N]')")
        return available[split]
    return open_split


# name -> open(argument, split, data_dir) -> Split. A name ending in ':' is a family taking what follows it (a root
# directory, a TFDS name); every unregistered name is a TFDS builder.
DATASETS = Registry("dataset")
DATASETS.register("digits", _offline(_digits))
DATASETS.register("fashion_mnist", _offline(fashion_mnist))
DATASETS.register("fashion_mnist_mosaic", _offline(_fashion_mnist_mosaic))
DATASETS.register(FOLDER_PREFIX, lambda root, split, data_dir: _folder_split(root, split))
DATASETS.register(TINY_IMAGENET_PREFIX, lambda root, split, data_dir: _tiny_imagenet_split(root, split))
DATASETS.register(multilabel_datasets.NUS_WIDE_PREFIX, lambda root, split, data_dir: _nus_wide_split(root, split))
DATASETS.register(TFDS_PREFIX, _tfds_split)


def _source(name: str) -> tuple[Callable, str]:
    """(opener, its argument) for a dataset name."""
    if name in DATASETS:
        return DATASETS.get(name), name
    family, colon, rest = name.partition(":")
    if colon and family + colon in DATASETS:
        argument = rest if family + colon == TFDS_PREFIX else os.path.expanduser(rest)
        return DATASETS.get(family + colon), argument
    return DATASETS.get(TFDS_PREFIX), name


@functools.lru_cache(maxsize=32)
def open_split(name: str, split: str, data_dir) -> Split:
    """Split `split` of dataset `name`, opened once per process (labels read, images reachable)."""
    opener, argument = _source(name)
    return opener(argument, split, data_dir)


def get_split(name: str, split: str, *, data_dir: str | None = None,
              classes: tuple[int, int] | None = None) -> Split:
    """Opens (once per process) split `split` of dataset `name`; optionally the first N (`'test[:N]'`) and only
    the classes in [lo, hi) (`classes=(lo, hi)`, applied before the slice)."""
    base, first = parse_split(split)
    result = open_split(name, base, data_dir)
    if classes is not None:
        result = result.with_classes(*classes)
    if first is not None:
        result = result.take(np.arange(min(first, len(result))), f"{result.name}[:{first}]")
    return result
