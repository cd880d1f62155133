"""Small, structurally faithful fakes of TFDS datasets for `tfds.testing.mock_data(as_data_source_fn=...)`.

TFDS's own random mock generator cannot encode bounding boxes (CUB, CARS, VOC, COCO fail in it), so these builders
return lists of examples with the features kdjax reads: PNG-encoded images and the dataset's label feature.
"""
import contextlib
import io

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image


def _png(rng, size, channels=3):
    shape = (size, size) if channels == 1 else (size, size, channels)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def class_dataset(label_key: str, num_classes: int, per_class: dict, size: int = 24):
    """as_data_source_fn for a class-labelled dataset: `per_class` = {split: examples per class}, in blocks of one
    class (the released files are sorted by class); every 5th image is grayscale."""
    def as_data_source(builder, split, decoders=None, **kwargs):
        del builder, decoders, kwargs
        parts = split.split("+")
        examples = []
        for part in parts:
            rng = np.random.default_rng(abs(hash(part)) % 2**31)
            n = per_class[part] * num_classes
            examples += [{"image": _png(rng, size, 1 if i % 5 == 4 else 3), label_key: np.int64(i // per_class[part])}
                         for i in range(n)]
        return examples
    return as_data_source


@contextlib.contextmanager
def mock(as_data_source):
    with tfds.testing.mock_data(as_data_source_fn=as_data_source):
        yield


def detection_dataset(num_classes: int, sizes: dict, *, with_difficult: bool = False, empty_every: int = 0,
                      size: int = 24):
    """as_data_source_fn for an object-annotated dataset (VOC, COCO): example i of a split has objects of classes
    (i % C) and ((3 i + 1) % C), the second flagged difficult when `with_difficult`; every `empty_every`-th example
    has no object. Returns (as_data_source, {split: list of object-class lists}) so tests can restate the labels."""
    truth = {}
    for split, n in sizes.items():
        truth[split] = [[] if empty_every and i % empty_every == empty_every - 1
                        else [i % num_classes, (3 * i + 1) % num_classes] for i in range(n)]

    def as_data_source(builder, split, decoders=None, **kwargs):
        del builder, decoders, kwargs
        rng = np.random.default_rng(len(split))
        examples = []
        for objects in (o for part in split.split("+") for o in truth[part]):
            annotation = {"label": np.asarray(objects, np.int64)}
            if with_difficult:
                annotation["is_difficult"] = np.asarray([False, True][:len(objects)])
            examples.append({"image": _png(rng, size), "objects": annotation})
        return examples
    return as_data_source, truth
