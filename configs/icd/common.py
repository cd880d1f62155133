"""Shared pieces of the ICD configs ("Enriching Knowledge Distillation with Intra-Class Contrastive Learning",
anonymous ICLR submission, arXiv 2509.22053): datasets, model names, the paper's Tables 1-3."""
from configs import common

# paper name -> kdjax registry name. "Resnet34" is BasicBlock [3, 4, 6, 3] on the CIFAR ResNet-50 stem; "MobileNet"
# is the zoo's MobileNetV2 (both kdjax readings, not stated in the paper).
MODELS = {"resnet50": "resnet50_cifar", "resnet34": "resnet34_cifar", "wrn_40_2": "wrn_40_2", "wrn_16_2": "wrn_16_2",
          "vgg13": "vgg13", "vgg8": "vgg8", "mobilenetv2": "mobilenetv2", "shufflev2": "shufflev2"}
TEACHERS = ("resnet50", "wrn_40_2", "vgg13")
HOMOGENEOUS = ("resnet50-resnet34", "wrn_40_2-wrn_16_2", "vgg13-vgg8")
HETEROGENEOUS = ("resnet50-mobilenetv2", "vgg13-mobilenetv2", "wrn_40_2-shufflev2")
PAIRS = HOMOGENEOUS + HETEROGENEOUS
DATASETS = ("cifar100", "cifar10", "tiny_imagenet")
METHODS = ("ce", "kd", "fitnet", "rkd", "crd", "ofd", "reviewkd", "vid", "mlld", "ours", "ours_rkd")
TINY_IMAGENET_ROOT = "~/data/tiny-imagenet-200"

# Paper top-1 (%), mean of 5 runs, last epoch: Table 1 (homogeneous) and 2 (heterogeneous) for CIFAR-100 and Tiny
# ImageNet, Table 3 for CIFAR-10 ('-': not reported). Per (dataset, pair): teacher, student alone, then METHODS[1:].
_ROWS = ("teacher", "ce") + METHODS[1:]
_T1 = {
    ("cifar100", "resnet50-resnet34"): (78.31, 78.19, 78.38, 75.20, 78.65, 78.57, 76.64, 77.55, 77.43, 79.09, 79.10, 79.39),
    ("cifar100", "wrn_40_2-wrn_16_2"): (76.89, 76.4, 76.6, 75.03, 78.30, 78.69, 76.88, 77.94, 77.63, 79.50, 79.09, 79.53),
    ("cifar100", "vgg13-vgg8"): (74.40, 73.80, 73.99, 72.33, 74.73, 74.48, 72.64, 73.24, 73.51, 75.07, 74.96, 75.70),
    ("tiny_imagenet", "resnet50-resnet34"): (59.48, 58.56, 59.47, 56.43, 59.33, 58.89, 56.26, 58.07, 57.69, 59.98, 59.64, 60.02),
    ("tiny_imagenet", "wrn_40_2-wrn_16_2"): (59.48, 58.68, 59.17, 58.09, 60.03, 59.19, 55.74, 58.79, 57.69, 60.65, 60.16, 60.79),
    ("tiny_imagenet", "vgg13-vgg8"): (55.91, 53.80, 53.68, 50.29, 53.59, 53.69, 50.32, 53.24, 53.37, 54.77, 54.96, 55.24),
}
_T2 = {  # no CRD / OFD rows for the heterogeneous pairs
    ("cifar100", "resnet50-mobilenetv2"): (78.31, 65.18, 66.22, 67.52, 65.41, None, None, 67.59, 67.88, 68.99, 68.72, 69.03),
    ("cifar100", "vgg13-mobilenetv2"): (74.40, 65.18, 65.82, 63.51, 66.51, None, None, 65.67, 66.18, 65.58, 66.44, 66.79),
    ("cifar100", "wrn_40_2-shufflev2"): (76.89, 69.23, 70.16, 65.06, 72.11, None, None, 72.42, 72.71, 65.89, 72.00, 72.86),
    ("tiny_imagenet", "resnet50-mobilenetv2"): (58.77, 40.29, 41.82, 43.69, 45.16, None, None, 44.83, 44.76, 41.00, 45.32, 45.54),
    ("tiny_imagenet", "vgg13-mobilenetv2"): (55.91, 40.29, 44.68, 40.64, 45.51, None, None, 44.83, 43.18, 43.20, 46.01, 47.17),
    ("tiny_imagenet", "wrn_40_2-shufflev2"): (59.48, 44.12, 46.81, 37.04, 49.08, None, None, 49.10, 48.98, 48.24, 48.64, 49.71),
}
_T3 = {  # CIFAR-10; the extracted table is garbled: columns read as the Table 1 / Table 2 pairs (kdjax's reading)
    ("cifar10", "resnet50-resnet34"): (94.08, 93.16, 93.92, 93.53, 94.13, 90.97, 94.08, 94.04, 94.02, 92.32, 94.17, 94.36),
    ("cifar10", "wrn_40_2-wrn_16_2"): (94.85, 93.22, 93.82, 93.74, 94.05, 90.70, 94.09, 94.02, 93.99, 92.18, 94.23, 94.29),
    ("cifar10", "vgg13-vgg8"): (91.54, 91.04, 91.96, 91.38, 92.22, 89.31, 92.01, 92.18, 91.87, 90.28, 92.33, 92.25),
    ("cifar10", "resnet50-mobilenetv2"): (94.08, None, 84.72, 86.39, 86.26, None, None, 86.09, 86.49, 85.78, 86.51, 86.81),
    ("cifar10", "wrn_40_2-shufflev2"): (94.85, None, 88.64, 85.48, 89.41, None, None, 90.86, 90.31, 87.33, 90.96, 91.91),
    ("cifar10", "vgg13-mobilenetv2"): (91.54, None, 78.83, 82.70, 85.21, None, None, 83.97, 86.23, 84.12, 85.98, 86.59),
}
TABLES = {key: (table, dict(zip(_ROWS, row))) for table, rows in (("Table 1", _T1), ("Table 2", _T2), ("Table 3", _T3))
          for key, row in rows.items()}


def published(dataset: str, pair: str, method: str) -> tuple[str, float | None]:
    """(table, top-1 %) of a cell; None where the paper reports no number."""
    table, row = TABLES[(dataset, pair)]
    return table, row[method]


def data_block(dataset: str, *, two_views: bool, data_root: str = TINY_IMAGENET_ROOT):
    """RandomCrop with 4-pixel zero padding + flip (the CIFAR benchmark recipe; Tiny ImageNet at 64 px likewise,
    ImageNet normalisation; the paper states neither). `two_views` adds ICD's positive view `image_view2`."""
    crop_flip = "pad_crop(4)|flip"
    views = {"image": crop_flip, "image_view2": crop_flip} if two_views else {"image": crop_flip}
    if dataset == "tiny_imagenet":
        return common.data_block(f"tiny_imagenet:{data_root}", views=views, eval_split="val", normalization="imagenet")
    return common.data_block(dataset, views=views)


def check(dataset: str, **choices):
    if dataset not in DATASETS:
        raise ValueError(f"Unknown dataset {dataset!r}; valid datasets: {', '.join(DATASETS)}")
    for name, (value, valid) in choices.items():
        if value not in valid:
            raise ValueError(f"Unknown {name} {value!r}; valid: {', '.join(valid)}")
