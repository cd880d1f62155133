"""Multi-hot datasets: VOC / COCO label assembly (faked TFDS files), NUS-WIDE's official files, the offline mosaic
dataset, and multi-hot labels through the deterministic, resumable, sharded pipeline."""
import os

import numpy as np
import pytest

from kdjax import data
from kdjax.data import mosaic, multilabel_datasets, sources
from tests import tfds_fakes


def _multi_hot(objects, num_classes, mapping=None):
    y = np.zeros(num_classes, np.float32)
    for c in objects:
        y[c if mapping is None else mapping[c]] = 1
    return y


def test_voc_2007_positives_include_difficult_objects():
    fake, truth = tfds_fakes.detection_dataset(20, {"train": 12, "validation": 10, "test": 9}, with_difficult=True)
    with tfds_fakes.mock(fake):
        trainval = sources.get_split("voc/2007", "train+validation")
        test = sources.get_split("voc/2007", "test")
    assert (len(trainval), len(test)) == (22, 9) and trainval.label_kind == "multi_hot"
    assert trainval.class_names == multilabel_datasets.VOC_NAMES
    want = np.stack([_multi_hot(o, 20) for o in truth["train"] + truth["validation"]])
    np.testing.assert_array_equal(trainval.labels, want)  # the second object of each image is 'difficult'
    assert trainval.labels.sum(1).min() == 2


def test_coco_2014_uses_l2d_class_order_and_drops_unannotated_images():
    fake, truth = tfds_fakes.detection_dataset(80, {"train": 15, "validation": 12}, empty_every=4)
    with tfds_fakes.mock(fake):
        val = sources.get_split("coco/2014", "validation")
    names = multilabel_datasets.L2D_COCO_NAMES
    assert (names[0], names[9], names[44], names[49]) == ("airplane", "bicycle", "motorcycle", "person")
    to_l2d = {i: names.index(n.replace(" ", "_")) for i, n in enumerate(multilabel_datasets.COCO_NAMES)}
    kept = [o for o in truth["validation"] if o]
    assert len(val) == len(kept) == 9 and val.num_classes == 80
    np.testing.assert_array_equal(val.labels, np.stack([_multi_hot(o, 80, to_l2d) for o in kept]))
    # TFDS class 0 = 'person' -> L2D index 49
    assert val.labels[0, 49] == 1 and truth["validation"][0][0] == 0


def _nus_wide_tree(root, concepts=("sky", "water", "zebra"), n=(5, 3)):
    os.makedirs(os.path.join(root, "ImageList"))
    os.makedirs(os.path.join(root, "TrainTestLabels"))
    with open(os.path.join(root, "Concepts81.txt"), "w") as f:
        f.write("\n".join(concepts) + "\n")
    rng = np.random.default_rng(0)
    labels = {}
    for split, count in zip(("Train", "Test"), n):
        with open(os.path.join(root, "ImageList", f"{split}Imagelist.txt"), "w") as f:
            f.write("\n".join(f"actor\\{split}_{i}.jpg" for i in range(count)) + "\n")
        labels[split] = (rng.random((count, len(concepts))) < 0.5).astype(int)
        for c, concept in enumerate(concepts):
            with open(os.path.join(root, "TrainTestLabels", f"Labels_{concept}_{split}.txt"), "w") as f:
                f.write("\n".join(str(v) for v in labels[split][:, c]) + "\n")
    return labels


def test_nus_wide_assembles_the_label_matrix_from_the_official_files(tmp_path):
    labels = _nus_wide_tree(str(tmp_path))
    train = sources.get_split(f"nus_wide:{tmp_path}", "train")
    assert train.class_names == ("sky", "water", "zebra") and len(train) == 5
    np.testing.assert_array_equal(train.labels, labels["Train"])
    assert train.records._paths[1] == os.path.join(str(tmp_path), "images", "actor", "Train_1.jpg")
    os.remove(os.path.join(tmp_path, "TrainTestLabels", "Labels_water_Test.txt"))
    with pytest.raises(FileNotFoundError, match="1 file.*Labels_water_Test.txt.*official layout"):
        sources.get_split(f"nus_wide:{tmp_path}", "test")
    with pytest.raises(FileNotFoundError, match="Concepts81.txt"):
        sources.get_split(f"nus_wide:{tmp_path}/missing", "train")
    with pytest.raises(ValueError, match="no split 'val'; valid splits: \\['train', 'test'\\]"):
        sources.get_split(f"nus_wide:{tmp_path}", "val")


def test_mosaic_labels_are_the_classes_drawn_and_the_outfit_structure_shows():
    images = np.stack([np.full((4, 4, 1), c + 1, np.uint8) for c in range(10)] * 3)  # pixel value = class + 1
    labels = np.tile(np.arange(10), 3)
    mosaics, targets = mosaic.build(images, labels, 2000, seed=5)
    again, _ = mosaic.build(images, labels, 2000, seed=5)
    np.testing.assert_array_equal(mosaics, again)
    for m, y in zip(mosaics[:50], targets[:50]):  # the cells show exactly the labelled classes
        cells = {int(m[r * 4, c * 4, 0]) for r in range(2) for c in range(2)} - {0}
        assert cells == {int(c) + 1 for c in np.flatnonzero(y)}
    counts = targets.sum(1)
    assert counts.min() == 1 and counts.max() == 4 and 2.3 < counts.mean() < 2.8
    tops = list(mosaic.GROUPS[0])
    co = targets.T @ targets
    within = co[np.ix_(tops, tops)][~np.eye(4, dtype=bool)].mean()
    across = co[np.ix_(tops, [1, 3])].mean()
    assert within < 0.4 * across  # look-alike tops rarely appear together


def test_multi_hot_labels_flow_through_a_deterministic_resumable_sharded_pipeline():
    fake, truth = tfds_fakes.detection_dataset(20, {"train": 12, "test": 9}, with_difficult=True)
    with tfds_fakes.mock(fake):
        built = data.build(dict(name="voc/2007", train_split="train", eval_split="test",
                                views={"image": "resize(16)|flip"}, eval_view="resize(16)", normalization="none"),
                           seed=0, batch_size=4, eval_batch_size=8)
        halves = [data.build(dict(name="voc/2007", train_split="train", eval_split="test",
                                  views={"image": "resize(16)|flip"}, eval_view="resize(16)",
                                  normalization="none"), seed=0, batch_size=4, eval_batch_size=8,
                             process_index=p, process_count=2) for p in range(2)]
        batches = [next(built.train.batches(start_step=s)) for s in range(4)]
        resumed = next(built.train.batches(start_step=3))
        shards = [next(h.train.batches(start_step=2)) for h in halves]
        evaluated = list(built.eval.batches())
    assert built.label_kind == "multi_hot" and batches[0]["label"].shape == (4, 20)
    assert batches[0]["label"].dtype == np.float32
    full = np.stack([_multi_hot(o, 20) for o in truth["train"]])
    for b in batches:
        np.testing.assert_array_equal(b["label"], full[b["index"]])
    np.testing.assert_array_equal(resumed["image"], batches[3]["image"])
    np.testing.assert_array_equal(np.concatenate([s["label"] for s in shards]), batches[2]["label"])
    labels = np.concatenate([b["label"][b["_mask"]] for b in evaluated])
    np.testing.assert_array_equal(labels, np.stack([_multi_hot(o, 20) for o in truth["test"]]))
