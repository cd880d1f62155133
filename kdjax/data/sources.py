"""Where examples come from: TFDS builders or offline sources that need no download.

A source yields, per split, a deterministic-order `tf.data.Dataset` of dicts
`{'image': uint8 [H, W, C], 'label': int32, 'index': int64}`; `index` is the example's position in the full split,
the same on every process, so few-shot subsets, per-example augmentation seeds and (later) CRD memory indices refer
to one global numbering.

Offline sources:
- `digits`: scikit-learn's bundled 8x8 digits (1,797 images, 10 classes), a fixed stratified split of 1,437 train /
  360 test images (random_state 0), pixel values 0..16 scaled to 0..255.
- `fashion_mnist`: the IDX files of Debian's `dataset-fashion-mnist` package (60,000 / 10,000 28x28 images).
Any other name is a TFDS builder (`cifar100`, `tfds:fashion_mnist` to force TFDS for a name an offline source uses),
or `folder:<root>` for images in class folders (`<root>/<split>/<class>/*.jpg`, tfds ImageFolder).
"""
import dataclasses
import difflib
import gzip
import os
import re

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
_FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
OFFLINE_NAMES = ("digits", "fashion_mnist")
TFDS_PREFIX = "tfds:"
FOLDER_PREFIX = "folder:"


def parse_split(split: str) -> tuple[str, int | None]:
    """'test[:64]' -> ('test', 64): the first N examples, for every source (ImageFolder has no TFDS slicing).
    Other TFDS slice syntax ('train[10%:]') is passed through unchanged to TFDS builders."""
    match = re.fullmatch(r"(\w+)\[:(\d+)\]", split)
    return (match.group(1), int(match.group(2))) if match else (split, None)


@dataclasses.dataclass(frozen=True)
class ArraySource:
    """A dataset held in memory as uint8 images and int labels per split."""
    name: str
    num_classes: int
    splits: dict  # split -> (images uint8 [N, H, W, C], labels int [N])

    def _split(self, split):
        name, n = parse_split(split)
        if name not in self.splits:
            raise ValueError(f"Dataset {self.name!r} has no split {split!r}; valid splits: {sorted(self.splits)} "
                             "(optionally sliced as 'name[:N]')")
        images, labels = self.splits[name]
        return images[:n], labels[:n]

    def labels(self, split: str) -> np.ndarray:
        return np.asarray(self._split(split)[1], np.int32)

    def dataset(self, split: str) -> tf.data.Dataset:
        images, labels = self._split(split)
        return tf.data.Dataset.from_tensor_slices({
            "image": images, "label": labels.astype(np.int32), "index": np.arange(len(labels), dtype=np.int64)})


class TfdsSource:
    """A TFDS builder with an `image` and a class-label `label` feature, read in its deterministic file order."""

    def __init__(self, name: str, data_dir: str | None = None, builder=None):
        self.name = name
        try:
            self.builder = builder or tfds.builder(name, data_dir=data_dir)
        except tfds.core.registered.DatasetNotFoundError as e:
            close = difflib.get_close_matches(name, tfds.list_builders(), n=5)
            raise ValueError(f"Unknown dataset {name!r}: neither an offline source ({', '.join(OFFLINE_NAMES)}) nor a "
                             f"TFDS builder. Close TFDS names: {close or 'none'}") from e
        features = self.builder.info.features
        if "image" not in features or "label" not in features:
            raise ValueError(f"TFDS dataset {name!r} has features {list(features)}; kdjax image classification "
                             "needs 'image' and 'label'")
        self.num_classes = features["label"].num_classes

    def _as_dataset(self, split, decoders=None):
        name, n = parse_split(split)
        try:
            ds = self.builder.as_dataset(split=name, shuffle_files=False, decoders=decoders)
        except (AssertionError, ValueError, KeyError) as e:
            raise ValueError(f"Cannot read split {split!r} of dataset {self.name!r}: {e}") from e
        return ds if n is None else ds.take(n)

    def labels(self, split: str) -> np.ndarray:
        ds = self._as_dataset(split, decoders={"image": tfds.decode.SkipDecoding()})
        ds = ds.map(lambda ex: ex["label"]).batch(4096)
        return np.concatenate([np.asarray(b) for b in ds.as_numpy_iterator()]).astype(np.int32)

    def dataset(self, split: str) -> tf.data.Dataset:
        ds = self._as_dataset(split).enumerate()
        return ds.map(lambda i, ex: {"image": ex["image"], "label": tf.cast(ex["label"], tf.int32), "index": i})


def _load_digits() -> ArraySource:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int32)
    x_tr, x_te, y_tr, y_te = train_test_split(images, labels, test_size=360, stratify=labels, random_state=0)
    return ArraySource("digits", 10, {"train": (x_tr, y_tr), "test": (x_te, y_te)})


def _read_idx(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _load_fashion_mnist(directory: str = FASHION_MNIST_DIR) -> ArraySource:
    splits = {}
    for split, (image_file, label_file) in _FASHION_MNIST_FILES.items():
        paths = [os.path.join(directory, f) for f in (image_file, label_file)]
        missing = [p for p in paths if not os.path.exists(p)]
        if missing:
            raise FileNotFoundError(
                f"Fashion-MNIST files not found: {missing}. Install them with "
                "`apt-get install -y dataset-fashion-mnist` (Debian/Ubuntu), or set "
                f"data.name='{TFDS_PREFIX}fashion_mnist' to download the dataset through TFDS.")
        splits[split] = (_read_idx(paths[0])[..., None], _read_idx(paths[1]).astype(np.int32))
    return ArraySource("fashion_mnist", 10, splits)


def folder_source(root: str) -> TfdsSource:
    """Images in class folders, `root/<split>/<class>/<image>` (tfds ImageFolder), e.g. MIT Indoor-67."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"image folder {root!r} does not exist; expected {root}/<split>/<class>/<images>")
    return TfdsSource(f"{FOLDER_PREFIX}{root}", builder=tfds.folder_dataset.ImageFolder(root))


def get_source(name: str, *, data_dir: str | None = None):
    """Returns the source for a dataset name: offline name, TFDS name, 'tfds:<name>' or 'folder:<root>'."""
    if name.startswith(FOLDER_PREFIX):
        return folder_source(name.removeprefix(FOLDER_PREFIX))
    if name == "digits":
        return _load_digits()
    if name == "fashion_mnist":
        return _load_fashion_mnist()
    return TfdsSource(name.removeprefix(TFDS_PREFIX), data_dir=data_dir)
