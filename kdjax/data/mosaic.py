"""`fashion_mnist_mosaic`: an offline multi-label dataset, 2x2 mosaics of Fashion-MNIST items (56x56 grey images,
10 labels), so that the multi-label path (multi-hot labels, mAP / OF1 / CF1, multi-label KD) runs without a download.

Each mosaic shows 1-4 items of distinct classes in random cells of a 2x2 grid (empty cells black); its labels are
the classes present. The label sets have co-occurrence structure, as "outfits": the classes form four groups (tops:
T-shirt, Pullover, Coat, Shirt; bottoms: Trouser, Dress; footwear: Sandal, Sneaker, Ankle boot; Bag) and each item
comes from a group not yet in the mosaic, except with probability 0.2, where it is any class not yet present. So
the four look-alike tops rarely appear together, and which of them is present is ambiguous at a small student's
capacity: a teacher has room to beat it, and the label-correlation structure is what multi-label KD transfers.
Number of items: 1, 2, 3, 4 with probabilities 0.15, 0.35, 0.3, 0.2 (about 2.6 labels per image; COCO has 2.9).

Train mosaics take their items from Fashion-MNIST's train split, test mosaics from its test split; everything is
drawn from a fixed seed, so the dataset is the same on every machine: 24,000 train / 4,000 test images.
"""
import numpy as np

NAMES = ("t_shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot")
GROUPS = ((0, 2, 4, 6), (1, 3), (5, 7, 9), (8,))
ITEM_COUNT_PROBS = (0.15, 0.35, 0.3, 0.2)
OFF_GROUP_PROB = 0.2
SIZES = {"train": 24_000, "test": 4_000}
SEEDS = {"train": 0, "test": 1}


def label_sets(count: int, rng: np.random.Generator) -> list[list[int]]:
    """`count` label sets drawn from the outfit model of the module docstring, classes in drawing order."""
    group_of = {c: g for g, members in enumerate(GROUPS) for c in members}
    sets = []
    for items in rng.choice(len(ITEM_COUNT_PROBS), size=count, p=ITEM_COUNT_PROBS) + 1:
        chosen = []
        while len(chosen) < items:
            used_groups = {group_of[c] for c in chosen}
            open_groups = [c for c in range(len(NAMES)) if group_of[c] not in used_groups]
            pool = open_groups if open_groups and rng.random() >= OFF_GROUP_PROB else \
                [c for c in range(len(NAMES)) if c not in chosen]
            chosen.append(int(rng.choice(pool)))
        sets.append(chosen)
    return sets


def build(images: np.ndarray, labels: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(mosaics uint8 [count, 2H, 2W, C], multi-hot float32 [count, 10]) from single-label `images` [N, H, W, C]."""
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(labels == c) for c in range(len(NAMES))]
    h, w = images.shape[1:3]
    mosaics = np.zeros((count, 2 * h, 2 * w, images.shape[3]), np.uint8)
    targets = np.zeros((count, len(NAMES)), np.float32)
    for i, classes in enumerate(label_sets(count, rng)):
        cells = rng.permutation(4)[:len(classes)]
        for c, cell in zip(classes, cells):
            row, col = divmod(int(cell), 2)
            mosaics[i, row * h:(row + 1) * h, col * w:(col + 1) * w] = images[rng.choice(by_class[c])]
            targets[i, c] = 1.0
    return mosaics, targets
