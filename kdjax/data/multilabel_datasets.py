"""How the multi-label benchmarks of the multi-label KD literature are read, following L2D (Yang et al., ICCV 2023;
reference: penghui-yang/L2D dataloader.py, data/{voc,coco,nus}.py):

- PASCAL VOC 2007 (TFDS `voc/2007`; splits `train` + `validation` = VOC's trainval, 5,011 images, and `test`,
  4,952): 20 classes in VOC's order; label c is positive iff any object of class c is annotated, objects flagged
  difficult INCLUDED (L2D keeps them; no ignore label).
- MS-COCO 2014 (TFDS `coco/2014`; `train` 82,783 images, `validation` 40,504): 80 classes in L2D's order (the
  category names with '_' for ' ', sorted alphabetically: 0 = airplane, 9 = bicycle, 49 = person); label c is
  positive iff an object of class c is annotated (crowd annotations included, kdjax's reading of L2D's lists); only
  images with at least one annotation are kept (L2D's appendix/{train,val}_anno.json: 40,137 validation images;
  82,081 train images expected, unverified).
- NUS-WIDE (81 concepts), from the official files under a root the user gives (`nus_wide:<root>`): image lists
  `ImageList/{Train,Test}Imagelist.txt` (Windows separators turned into '/'), concepts `Concepts81.txt`, labels
  `TrainTestLabels/Labels_<concept>_{Train,Test}.txt` (one 0/1 per line, per image of the list) and the images
  under `<root>/images/`; no image is dropped (official split: 161,789 train / 107,859 test; every config asserts
  its own counts, which depend on the copy downloaded).
"""
import dataclasses
import os
from typing import Callable

import numpy as np

VOC_NAMES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
             "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
# COCO's 80 categories in category-id order: the order of TFDS `coco/*`'s ClassLabel
COCO_NAMES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow", "elephant",
    "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard",
    "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli",
    "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", "dining table", "toilet",
    "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush")
L2D_COCO_NAMES = tuple(sorted(n.replace(" ", "_") for n in COCO_NAMES))
_COCO_TO_L2D = np.array([L2D_COCO_NAMES.index(n.replace(" ", "_")) for n in COCO_NAMES])

NUS_WIDE_PREFIX = "nus_wide:"
NUS_WIDE_SPLITS = {"train": "Train", "test": "Test"}


@dataclasses.dataclass(frozen=True)
class MultiHot:
    """How a TFDS multi-label dataset becomes multi-hot labels: `read(example) -> [C] float32`, the class names in
    label order, and `keep(label) -> bool` (examples that fail are dropped)."""
    read: Callable
    names: tuple
    keep: Callable | None = None


def _multi_hot(indices, num_classes: int) -> np.ndarray:
    label = np.zeros(num_classes, np.float32)
    label[np.asarray(indices, np.int64)] = 1.0
    return label


def voc_label(example) -> np.ndarray:
    """Every annotated object's class, difficult ones included."""
    return _multi_hot(example["objects"]["label"], len(VOC_NAMES))


def coco_label(example) -> np.ndarray:
    return _multi_hot(_COCO_TO_L2D[np.asarray(example["objects"]["label"], np.int64)], len(COCO_NAMES))


TFDS_MULTI_HOT = {"voc": MultiHot(voc_label, VOC_NAMES),
                  "coco": MultiHot(coco_label, L2D_COCO_NAMES, keep=lambda label: label.any())}


# ---- NUS-WIDE -------------------------------------------------------------------------------------------------------
def nus_wide_files(root: str, split: str) -> dict:
    """The official files one split needs, by role."""
    if split not in NUS_WIDE_SPLITS:
        raise ValueError(f"Dataset 'nus_wide' has no split {split!r}; valid splits: {list(NUS_WIDE_SPLITS)}")
    tag = NUS_WIDE_SPLITS[split]
    return {"list": os.path.join(root, "ImageList", f"{tag}Imagelist.txt"),
            "concepts": os.path.join(root, "Concepts81.txt"),
            "labels": os.path.join(root, "TrainTestLabels", "Labels_{concept}_" + f"{tag}.txt")}


def _lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def read_nus_wide(root: str, split: str) -> tuple[list[str], np.ndarray, tuple[str, ...]]:
    """(image paths, multi-hot labels [N, 81] float32, concept names) of one official split; a FileNotFoundError
    lists every missing file."""
    files = nus_wide_files(root, split)
    missing = [files[k] for k in ("list", "concepts") if not os.path.exists(files[k])]
    concepts = tuple(_lines(files["concepts"])) if os.path.exists(files["concepts"]) else ()
    label_files = [files["labels"].format(concept=c) for c in concepts]
    missing += [p for p in label_files if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(
            f"NUS-WIDE under {root!r}: {len(missing)} file(s) missing: {missing[:6]}{' ...' if len(missing) > 6 else ''}"
            f". Expected the official layout: ImageList/{{Train,Test}}Imagelist.txt, Concepts81.txt, "
            f"TrainTestLabels/Labels_<concept>_{{Train,Test}}.txt and the images under images/")
    names = [n.replace("\\", "/") for n in _lines(files["list"])]
    columns = []
    for concept, path in zip(concepts, label_files):
        column = np.asarray([int(v) for v in _lines(path)], np.float32)
        if len(column) != len(names):
            raise ValueError(f"NUS-WIDE: {path} has {len(column)} labels for the {len(names)} images of "
                             f"{files['list']}")
        columns.append(column)
    paths = [os.path.join(root, "images", n) for n in names]
    return paths, np.stack(columns, axis=1), concepts
