"""The input pipeline: shapes, determinism, resume position, per-process shards, few-shot subsets, sources."""
import numpy as np
import pytest
import tensorflow_datasets as tfds

from kdjax import data
from kdjax.data import sources


@pytest.fixture(scope="module")
def digits():
    return data.get_source("digits")


def _pipeline(source, **kw):
    args = dict(split="train", global_batch_size=32, seed=0, image_size=16, mean=(0.3,), std=(0.4,),
                augment=("crop", "flip"))
    args.update(kw)
    return data.Pipeline(source, **args)


def test_digits_source(digits):
    assert digits.num_classes == 10
    assert len(digits.labels("train")) == 1437 and len(digits.labels("test")) == 360
    # stratified split: every class in both splits
    assert set(digits.labels("test")) == set(range(10))


def test_batch_shapes_and_dtypes(digits):
    batch = next(_pipeline(digits).train_batches())
    assert batch["image"].shape == (32, 16, 16, 1) and batch["image"].dtype == np.float32
    assert batch["label"].dtype == np.int32 and batch["index"].dtype == np.int64
    # normalised: (x/255 - mean)/std lies in [(0-0.3)/0.4, (1-0.3)/0.4]
    assert batch["image"].min() >= -0.75 - 1e-6 and batch["image"].max() <= 1.75 + 1e-6


def test_same_seed_same_batches_other_seed_other_order(digits):
    a = [b["index"] for _, b in zip(range(3), _pipeline(digits).train_batches())]
    b = [b["index"] for _, b in zip(range(3), _pipeline(digits).train_batches())]
    c = [b["index"] for _, b in zip(range(3), _pipeline(digits, seed=1).train_batches())]
    np.testing.assert_array_equal(np.stack(a), np.stack(b))
    assert not np.array_equal(np.stack(a), np.stack(c))


def test_epochs_reshuffle_and_cover_each_example_once(digits):
    p = _pipeline(digits)
    e0 = np.concatenate([b["index"] for b in p.epoch(0).as_numpy_iterator()])
    e1 = np.concatenate([b["index"] for b in p.epoch(1).as_numpy_iterator()])
    assert len(e0) == p.steps_per_epoch * 32 == len(np.unique(e0))
    assert not np.array_equal(e0, e1)


def test_resume_position_gives_identical_batches(digits):
    """Starting the iterator at step s yields exactly the batches an uninterrupted iterator yields from s on."""
    p = _pipeline(digits)
    spe = p.steps_per_epoch
    full = [b for _, b in zip(range(spe + 3), p.train_batches(0))]
    for start in (2, spe - 1, spe + 1):
        resumed = [b for _, b in zip(range(2), p.train_batches(start))]
        for r, f in zip(resumed, full[start:start + 2]):
            np.testing.assert_array_equal(r["index"], f["index"])
            np.testing.assert_array_equal(r["image"], f["image"])  # augmentation too


def test_augmentation_changes_images_but_not_labels(digits):
    plain = _pipeline(digits, augment=())
    augmented = _pipeline(digits)
    a, b = next(plain.train_batches()), next(augmented.train_batches())
    np.testing.assert_array_equal(a["index"], b["index"])
    assert not np.allclose(a["image"], b["image"])


def test_process_shards_are_disjoint_and_cover_the_split(digits):
    shards = [_pipeline(digits, process_index=i, process_count=4) for i in range(4)]
    assert len({s.steps_per_epoch for s in shards}) == 1
    assert shards[0].local_batch_size == 8
    # one global batch = the 4 local batches: unique example ids
    global_ids = np.concatenate([next(s.train_batches())["index"] for s in shards])
    assert len(np.unique(global_ids)) == 32
    # whole epoch: disjoint across processes
    per_process = [set(np.concatenate([b["index"] for b in s.epoch(0).as_numpy_iterator()])) for s in shards]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not per_process[i] & per_process[j]
    # eval: every example exactly once over all processes, same number of batches each
    eval_shards = [_pipeline(digits, split="test", process_index=i, process_count=4) for i in range(4)]
    batches = [list(s.eval_batches()) for s in eval_shards]
    assert len({len(b) for b in batches}) == 1
    seen = np.concatenate([b["index"][b["_mask"]] for bs in batches for b in bs])
    assert sorted(seen) == list(range(360))


def test_eval_batches_are_padded_and_masked(digits):
    p = _pipeline(digits, split="test", global_batch_size=64)
    batches = list(p.eval_batches())
    assert len(batches) == 6 and all(len(b["label"]) == 64 for b in batches)
    assert sum(int(b["_mask"].sum()) for b in batches) == 360
    assert not batches[-1]["_mask"][-1]


def test_few_shot_subset_sizes_and_determinism(digits):
    labels = digits.labels("train")
    idx = data.few_shot_indices(labels, 5, seed=3)
    assert len(idx) == 50 and np.all(np.bincount(labels[idx]) == 5)
    np.testing.assert_array_equal(idx, data.few_shot_indices(labels, 5, seed=3))
    assert not np.array_equal(idx, data.few_shot_indices(labels, 5, seed=4))
    p = _pipeline(digits, subset=idx, global_batch_size=10)
    seen = np.concatenate([b["index"] for b in p.epoch(0).as_numpy_iterator()])
    assert sorted(seen) == sorted(idx)
    with pytest.raises(ValueError, match="fewer than per_class"):
        data.few_shot_indices(labels, 1000, seed=0)


def test_mock_cifar100_pipeline():
    with tfds.testing.mock_data(num_examples=40):
        source = data.get_source("cifar100")
        assert source.num_classes == 100
        mean, std = data.normalization_for("cifar100")
        p = data.Pipeline(source, "train", 16, seed=0, mean=mean, std=std, augment=("crop", "flip"))
        batch = next(p.train_batches())
        assert batch["image"].shape == (16, 32, 32, 3) and batch["image"].dtype == np.float32
        again = next(data.Pipeline(source, "train", 16, seed=0, mean=mean, std=std,
                                   augment=("crop", "flip")).train_batches())
        np.testing.assert_array_equal(batch["image"], again["image"])
        labels = source.labels("train")
        np.testing.assert_array_equal(labels[batch["index"]], batch["label"])
        shards = [data.Pipeline(source, "train", 16, seed=0, mean=mean, std=std, process_index=i, process_count=2)
                  for i in range(2)]
        ids = [set(np.concatenate([b["index"] for b in s.epoch(0).as_numpy_iterator()])) for s in shards]
        assert not ids[0] & ids[1]


def test_fashion_mnist_missing_files_explain_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install -y dataset-fashion-mnist.*tfds:fashion_mnist"):
        sources._load_fashion_mnist(str(tmp_path))


def test_fashion_mnist_idx_reader(tmp_path):
    """The IDX parser on a hand-made file: magic, dims, then uint8 data."""
    import gzip
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 8, 3]) + b"".join(int(d).to_bytes(4, "big") for d in images.shape)
    with gzip.open(tmp_path / "x.gz", "wb") as f:
        f.write(header + images.tobytes())
    np.testing.assert_array_equal(sources._read_idx(str(tmp_path / "x.gz")), images)


def test_unknown_dataset_and_split_name_the_choices(digits):
    with pytest.raises(ValueError, match="Unknown dataset 'cifar1000'.*cifar100"):
        data.get_source("cifar1000")
    with pytest.raises(ValueError, match="no split 'validation'.*'test', 'train'"):
        digits.labels("validation")
    with pytest.raises(ValueError, match="Unknown augmentation"):
        _pipeline(digits, augment=("rotate",))


def test_contrast_rows_hold_own_index_then_distinct_other_class_negatives(digits):
    pipe = _pipeline(digits, contrast_negatives=50)
    labels = digits.labels("train")
    first, again = next(pipe.train_batches(3)), next(_pipeline(digits, contrast_negatives=50).train_batches(3))
    rows = first["contrast_idx"]
    assert rows.shape == (32, 51)
    np.testing.assert_array_equal(rows[:, 0], first["index"])
    for row, y in zip(rows, first["label"]):
        assert len(set(row[1:])) == 50 and np.all(labels[row[1:]] != y)
    np.testing.assert_array_equal(again["contrast_idx"], rows)  # resumed at step 3: the same rows


def test_contrast_negatives_are_uniform_over_other_classes():
    labels = np.repeat(np.arange(4), 25)
    pools = data.negative_pools(labels)
    rng = np.random.default_rng(0)
    counts = np.zeros(100)
    for _ in range(400):
        counts[data.contrast_indices(np.array([0]), np.array([0]), pools, 30, rng)[0, 1:]] += 1
    assert counts[:25].sum() == 0
    # each of the 75 candidates is drawn with probability 30/75 per row: 160 expected, sd about 10
    assert np.all(np.abs(counts[25:] - 160) < 50)
    with pytest.raises(ValueError, match="80 negatives requested but class 0 has only 75"):
        data.contrast_indices(np.array([0]), np.array([0]), pools, 80, rng)


def test_strong_view_is_a_second_independent_augmentation(digits):
    pipe = _pipeline(digits, strong_augment=("crop", "flip", "randaugment", "cutout"))
    batch = next(pipe.train_batches())
    again = next(_pipeline(digits, strong_augment=("crop", "flip", "randaugment", "cutout")).train_batches())
    assert batch["image_strong"].shape == batch["image"].shape
    assert np.mean(np.abs(batch["image_strong"] - batch["image"]) > 1e-6) > 0.1
    np.testing.assert_array_equal(batch["image_strong"], again["image_strong"])
    np.testing.assert_array_equal(batch["image"], next(_pipeline(digits).train_batches())["image"])  # weak view unchanged
    with pytest.raises(ValueError, match=r"Unknown augmentation \['mixup'\]"):
        _pipeline(digits, strong_augment=("mixup",))
