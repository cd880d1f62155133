"""The input pipeline: sources, samplers, per-view ops in order, determinism, resume, process slices, evaluation."""
import io
import warnings

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from kdjax import data
from kdjax.data import ops, samplers, sources


@pytest.fixture(scope="module")
def digits():
    return data.get_split("digits", "train")


def _build(**kw):
    cfg = dict(name="digits", views={"image": "resize(16)|pad_crop(2)|flip"}, eval_view="resize(16)")
    options = dict(seed=0, batch_size=32, eval_batch_size=64)
    options.update({k: kw.pop(k) for k in list(kw) if k in ("seed", "batch_size", "eval_batch_size",
                                                            "process_index", "process_count")})
    cfg.update(kw)
    return data.build(cfg, **options)


def _take(iterator, n):
    return [next(iterator) for _ in range(n)]


def test_digits_split_and_cached_labels(digits):
    assert digits.num_classes == 10 and len(digits) == 1437 and len(data.get_split("digits", "test")) == 360
    assert set(data.get_split("digits", "test").labels) == set(range(10))  # stratified
    assert data.get_split("digits", "train") is digits  # opened once per process
    assert digits.class_counts.sum() == 1437 and digits.label_kind == "class"
    assert len(data.get_split("digits", "test[:64]")) == 64


def test_batch_shapes_dtypes_and_normalisation():
    batch = next(_build(normalization=dict(mean=(0.3,), std=(0.4,))).train.batches())
    assert batch["image"].shape == (32, 16, 16, 1) and batch["image"].dtype == np.float32
    assert batch["label"].dtype == np.int32 and batch["index"].dtype == np.int32
    # (x/255 - mean)/std lies in [(0-0.3)/0.4, (1-0.3)/0.4] and reaches both ends (digits have 0 and 255 pixels)
    assert np.isclose(batch["image"].min(), -0.75) and np.isclose(batch["image"].max(), 1.75)


def test_same_seed_same_batches_other_seed_other_order():
    a = [b["index"] for b in _take(_build().train.batches(), 3)]
    b = [b["index"] for b in _take(_build().train.batches(), 3)]
    c = [b["index"] for b in _take(_build(seed=1).train.batches(), 3)]
    np.testing.assert_array_equal(np.stack(a), np.stack(b))
    assert not np.array_equal(np.stack(a), np.stack(c))


def test_epochs_reshuffle_and_cover_each_example_once():
    sampler = samplers.EpochSampler(np.arange(100), 32, seed=0)
    assert sampler.steps_per_epoch == 3
    e0 = np.concatenate([sampler(s) for s in range(3)])
    e1 = np.concatenate([sampler(s) for s in range(3, 6)])
    assert len(np.unique(e0)) == 96 == len(np.unique(e1))  # drop_last: 4 examples left out per epoch
    assert not np.array_equal(e0, e1)


def test_resume_at_any_step_gives_identical_batches():
    """Starting at step s yields exactly the batches an uninterrupted iterator yields from s on, across an epoch
    boundary, augmentation included."""
    d = _build(per_class=5)  # 50 examples: 1 step per epoch at batch 32
    full = _take(d.train.batches(0), 5)
    for start in (1, 3):
        for r, f in zip(_take(d.train.batches(start), 2), full[start:start + 2]):
            for k in f:
                np.testing.assert_array_equal(r[k], f[k])


def test_augmentation_changes_images_but_not_labels():
    plain = next(_build(views={"image": "resize(16)"}).train.batches())
    augmented = next(_build().train.batches())
    np.testing.assert_array_equal(plain["index"], augmented["index"])
    assert not np.allclose(plain["image"], augmented["image"])


def test_process_slices_concatenate_to_the_single_process_batch():
    """Four processes' local batches are rows 0-7, 8-15, ... of the one-process global batch, pixels included: the
    data order and the augmentation do not depend on the process count."""
    whole = _take(_build(contrast_negatives=20).train.batches(2), 2)
    parts = [_take(_build(contrast_negatives=20, process_index=i, process_count=4).train.batches(2), 2)
             for i in range(4)]
    for step in range(2):
        for key in whole[step]:
            np.testing.assert_array_equal(np.concatenate([p[step][key] for p in parts]), whole[step][key])
    assert len(np.unique(whole[0]["index"])) == 32  # an epoch sampler never repeats an example within a batch


def test_eval_covers_every_example_once_with_equal_batch_counts():
    shards = [_build(eval_batch_size=64, process_index=i, process_count=4).eval for i in range(4)]
    batches = [list(s.batches()) for s in shards]
    assert len({len(b) for b in batches}) == 1 and all(len(b["label"]) == 16 for bs in batches for b in bs)
    seen = np.concatenate([b["index"][b["_mask"]] for bs in batches for b in bs])
    assert sorted(seen) == list(range(360))
    single = list(_build(eval_batch_size=64).eval.batches())
    assert len(single) == 6 and sum(int(b["_mask"].sum()) for b in single) == 360 and not single[-1]["_mask"][-1]


def test_few_shot_subset_sizes_and_determinism(digits):
    labels = digits.labels
    idx = data.few_shot_indices(labels, 5, seed=3)
    assert len(idx) == 50 and np.all(np.bincount(labels[idx]) == 5)
    np.testing.assert_array_equal(idx, data.few_shot_indices(labels, 5, seed=3))
    assert not np.array_equal(idx, data.few_shot_indices(labels, 5, seed=4))
    d = _build(per_class=5, batch_size=10, subset_seed=3)
    seen = np.concatenate([b["index"] for b in _take(d.train.batches(), 5)])
    assert sorted(seen) == sorted(idx)
    with pytest.raises(ValueError, match="fewer than per_class"):
        data.few_shot_indices(labels, 1000, seed=0)
    with pytest.raises(ValueError, match="per_class=5 x 10 classes = 50 training examples, fewer than one global "
                                         "batch of 64: raise per_class to at least 7"):
        _build(per_class=5, batch_size=64)


def _mock_cifar(n=40):
    return tfds.testing.mock_data(num_examples=n)


def test_mock_tfds_split_reads_randomly_and_decodes_per_step():
    with _mock_cifar():
        split = data.get_split("cifar100", "train")
        assert split.num_classes == 100 and split.images is None and isinstance(split.records[0], bytes)
        d = data.build(dict(name="cifar100", views={"image": "pad_crop(4)|flip"}), seed=0, batch_size=16,
                       eval_batch_size=16)
        batch = next(d.train.batches())
        assert batch["image"].shape == (16, 32, 32, 3) and batch["image"].dtype == np.float32
        np.testing.assert_array_equal(split.labels[batch["index"]], batch["label"])
        again = next(data.build(dict(name="cifar100", views={"image": "pad_crop(4)|flip"}), seed=0, batch_size=16,
                                eval_batch_size=16).train.batches())
        np.testing.assert_array_equal(batch["image"], again["image"])
        plain = data.build(dict(name="cifar100"), seed=0, batch_size=16, eval_batch_size=16)
        first = next(plain.train.batches())
        expected = np.asarray(Image.open(io.BytesIO(split.records[int(first["index"][0])])), np.float32) / 255
        mean, std = data.NORMALIZATION["cifar100"]
        np.testing.assert_allclose(first["image"][0], (expected - mean) / std, rtol=1e-5, atol=1e-5)


def test_class_ranges_split_the_classes(digits):
    train = data.get_split("digits", "train", classes=(0, 5))
    assert set(train.labels) == {0, 1, 2, 3, 4} and len(train) == int(np.sum(digits.labels < 5))
    d = data.build(dict(name="digits", train_classes=(0, 5), eval_classes=(5, 10), expect=dict(
        train=(5, len(train)), eval=(5, int(np.sum(data.get_split("digits", "test").labels >= 5))))),
        seed=0, batch_size=8, eval_batch_size=8)
    assert d.num_classes == 5 and set(d.eval_split.labels) == {5, 6, 7, 8, 9}
    with pytest.raises(ValueError, match=r"has \(5, \d+\) \(classes, images\); the config expects \(5, 3\)"):
        data.build(dict(name="digits", train_classes=(0, 5), expect=dict(train=(5, 3))), seed=0, batch_size=8,
                   eval_batch_size=8)


def test_fashion_mnist_missing_files_explain_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install -y dataset-fashion-mnist.*tfds:fashion_mnist"):
        sources.fashion_mnist(str(tmp_path))


def test_fashion_mnist_idx_reader(tmp_path):
    """The IDX parser on a hand-made file: magic, dims, then uint8 data."""
    import gzip
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 8, 3]) + b"".join(int(d).to_bytes(4, "big") for d in images.shape)
    with gzip.open(tmp_path / "x.gz", "wb") as f:
        f.write(header + images.tobytes())
    np.testing.assert_array_equal(sources.read_idx(str(tmp_path / "x.gz")), images)


def test_bad_names_say_what_is_valid():
    with pytest.raises(ValueError, match="Unknown dataset 'cifar1000'.*cifar100"):
        data.get_split("cifar1000", "train")
    with pytest.raises(ValueError, match="no split 'validation'.*'test', 'train'"):
        data.get_split("digits", "validation")
    with pytest.raises(ValueError, match="unknown preprocessing op 'rotate'.*valid ops: .*pad_crop"):
        _build(views={"image": "rotate(3)"})
    with pytest.raises(ValueError, match=r"pad_crop\(padding: int = 4\).*unexpected keyword"):
        _build(views={"image": "pad_crop(pad=3)"})
    with pytest.raises(ValueError, match="unknown key.*'augment'.*valid keys"):
        _build(augment=("crop",))
    with pytest.raises(ValueError, match="has no normalisation kdjax knows.*'imagenet'"):
        data.normalization("caltech_birds2011")
    with pytest.raises(ValueError, match="unknown sampler 'balanced'; valid samplers: class_balanced, epoch"):
        _build(sampler="balanced")


def _image_folder(root, sizes):
    for split, per_class in (("train", 3), ("test", 2)):
        for c in range(2):
            (root / split / f"class{c}").mkdir(parents=True)
            for i in range(per_class):
                h, w = sizes[(c + i) % len(sizes)]
                Image.fromarray(np.full((h, w, 3), 40 * c + i, np.uint8)).save(root / split / f"class{c}" / f"{i}.png")


def test_image_folder_source_and_fixed_size_views(tmp_path):
    _image_folder(tmp_path, [(20, 30), (24, 24)])
    split = data.get_split(f"folder:{tmp_path}", "train")
    assert split.class_names == ("class0", "class1") and list(split.labels) == [0, 0, 0, 1, 1, 1]
    d = data.build(dict(name=f"folder:{tmp_path}", views={"image": "random_resized_crop(16)|flip"},
                        eval_view="resize(18)|center_crop(16)", normalization="imagenet"), seed=0, batch_size=2,
                   eval_batch_size=2)
    assert next(d.train.batches())["image"].shape == (2, 16, 16, 3)
    assert next(d.eval.batches())["image"].shape == (2, 16, 16, 3)
    with pytest.raises(ValueError, match="view 'image' = 'flip' gives images of different sizes"):
        data.build(dict(name=f"folder:{tmp_path}", views={"image": "flip"}, normalization="imagenet"), seed=0,
                   batch_size=2, eval_batch_size=2)


# ---- ops against their definitions -----------------------------------------------------------------------------
def _run_op(spec, image, seed=(1, 2)):
    (op,) = ops.build(spec)
    return op(tf.constant(image), tf.constant(seed, tf.int64)).numpy()


def test_ops_apply_in_the_order_given():
    """A view equals its ops composed by hand in the listed order (with the pipeline's per-op seeds), and the two
    orders of the same ops give different images: nothing is reordered."""
    d = _build(views={"image": "resize(12)|pad_crop(3)|flip", "image_view2": "flip|pad_crop(3)|resize(12)"})
    batch = next(d.train.batches())
    split = data.get_split("digits", "train")
    row, index = 0, int(batch["index"][0])
    seed = tf.random.experimental.stateless_fold_in(tf.constant([0, 0], tf.int64), row)
    for view in ("image", "image_view2"):
        view_seed = tf.random.experimental.stateless_fold_in(seed, data.pipeline._view_seed_tag(view))
        image = tf.constant(split.images[index])
        for i, op in enumerate(ops.build(d.train.views.specs[view]) + [ops.normalize(*data.NORMALIZATION["digits"])]):
            image = op(image, tf.random.experimental.stateless_fold_in(view_seed, i))
        np.testing.assert_allclose(batch[view][0], image.numpy(), rtol=1e-6)
    assert not np.allclose(batch["image"], batch["image_view2"])


def test_resize_follows_torchvision_sizes():
    assert _run_op("resize(16)", np.zeros((20, 40, 3), np.uint8)).shape == (16, 32, 3)
    assert _run_op("resize(16)", np.zeros((30, 20, 3), np.uint8)).shape == (24, 16, 3)  # int(16 * 30 / 20)
    assert _run_op("resize(16)", np.zeros((21, 10, 1), np.uint8)).shape == (33, 16, 1)  # int(33.6): truncated
    assert _run_op("resize(7, 9)", np.zeros((20, 40, 3), np.uint8)).shape == (7, 9, 3)
    flat = _run_op("resize(5)", np.full((10, 10, 1), 77, np.uint8))
    assert flat.dtype == np.uint8 and np.all(flat == 77)


def test_center_crop_and_pad_crop_against_their_definitions():
    image = np.arange(9 * 11 * 1, dtype=np.uint8).reshape(9, 11, 1)
    # torchvision: top = int(round((9 - 4) / 2)) = 2 (round half to even), left = int(round(3.5)) = 4
    np.testing.assert_array_equal(_run_op("center_crop(4)", image), image[2:6, 4:8])
    np.testing.assert_array_equal(_run_op("center_crop(12)", image).shape, (12, 12, 1))  # zero-padded first
    padded = np.pad(image, ((2, 2), (2, 2), (0, 0)))
    out = _run_op("pad_crop(2)", image, seed=(5, 6))
    windows = [padded[i:i + 9, j:j + 11] for i in range(5) for j in range(5)]
    assert any(np.array_equal(out, w) for w in windows)


def _torchvision_rrc_box(height, width, uniforms, scale, ratio):
    """torchvision RandomResizedCrop.get_params restated, its random draws taken from `uniforms` [4, 10]."""
    area = height * width
    log_ratio = (np.log(ratio[0]), np.log(ratio[1]))
    for t in range(10):
        target_area = area * (scale[0] + uniforms[0, t] * (scale[1] - scale[0]))
        aspect = np.exp(log_ratio[0] + uniforms[1, t] * (log_ratio[1] - log_ratio[0]))
        w = int(round(np.sqrt(target_area * aspect)))
        h = int(round(np.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(uniforms[2, t] * (height - h + 1)), int(uniforms[3, t] * (width - w + 1)), h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


@pytest.mark.parametrize("height, width, scale", [(32, 48, (0.08, 1.0)), (100, 20, (0.9, 1.0)), (10, 300, (0.5, 1.0))])
def test_random_resized_crop_box_is_torchvision_rule(height, width, scale):
    ratio = (3 / 4, 4 / 3)
    rng = np.random.default_rng(0)
    for _ in range(50):
        uniforms = rng.random((4, 10)).astype(np.float32)
        box = ops.random_resized_crop_box(tf.constant(height), tf.constant(width), tf.constant(uniforms),
                                          scale=scale, ratio=ratio)
        assert tuple(int(b) for b in box) == _torchvision_rrc_box(height, width, uniforms.astype(np.float64),
                                                                   scale, ratio)
    assert _run_op("random_resized_crop(8)", np.zeros((height, width, 3), np.uint8)).shape == (8, 8, 3)


# ---- samplers ----------------------------------------------------------------------------------------------------
def test_class_random_sampler_draws_classes_with_replacement_m_each():
    labels = np.repeat(np.arange(10), 4)
    sampler = samplers.ClassBalancedSampler(np.arange(40), labels, 12, seed=0, samples_per_class=2)
    assert sampler.steps_per_epoch == 3
    counts = []
    for step in range(200):
        batch = sampler(step)
        per_class = np.bincount(labels[batch], minlength=10)
        assert np.all(per_class % 2 == 0)  # classes come in pairs (a class drawn twice gives four)
        counts.append(per_class)
        assert np.array_equal(batch, sampler(step))  # a function of (seed, step)
    frequency = np.mean(counts, axis=0)
    assert np.all(np.abs(frequency - 1.2) < 0.35)  # each class 6 draws x 2 / 10 classes on average
    assert any((c == 4).any() for c in counts)  # with replacement: some batch draws a class twice


def test_m_per_class_sampler_uses_distinct_classes_and_errors():
    labels = np.repeat(np.arange(10), 4)
    sampler = samplers.ClassBalancedSampler(np.arange(40), labels, 12, seed=0, samples_per_class=3,
                                            mode="m_per_class")
    for step in range(20):
        batch = sampler(step)
        assert np.all(np.bincount(labels[batch], minlength=10) % 3 == 0) and len(set(labels[batch])) == 4
        assert len(set(batch)) == 12
    with pytest.raises(ValueError, match="batch size 10 is not a multiple of samples_per_class=3"):
        samplers.ClassBalancedSampler(np.arange(40), labels, 10, seed=0, samples_per_class=3)
    with pytest.warns(UserWarning, match="1 classes with a single example"):
        samplers.ClassBalancedSampler(np.arange(37), labels, 12, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        samplers.ClassBalancedSampler(np.arange(40), labels, 12, seed=0)


# ---- CRD contrast rows ------------------------------------------------------------------------------------------
def test_contrast_rows_hold_own_index_then_distinct_other_class_negatives(digits):
    d = _build(contrast_negatives=50)
    first = next(d.train.batches(3))
    rows = first["contrast_idx"]
    assert rows.shape == (32, 51)
    np.testing.assert_array_equal(rows[:, 0], first["index"])
    for row, y in zip(rows, first["label"]):
        assert len(set(row[1:])) == 50 and np.all(digits.labels[row[1:]] != y)
    np.testing.assert_array_equal(next(_build(contrast_negatives=50).train.batches(3))["contrast_idx"], rows)


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
    with pytest.raises(ValueError, match="contrast_negatives=80, but classes .* have only 75"):
        data.ContrastRows(labels, np.arange(100), 80, seed=0)


def test_strong_view_is_a_second_independent_augmentation():
    strong = {"image": "resize(16)|pad_crop(2)|flip", "image_strong": "resize(16)|pad_crop(2)|flip|randaugment|cutout"}
    batch = next(_build(views=strong).train.batches())
    again = next(_build(views=strong).train.batches())
    assert batch["image_strong"].shape == batch["image"].shape
    assert np.mean(np.abs(batch["image_strong"] - batch["image"]) > 1e-6) > 0.1
    np.testing.assert_array_equal(batch["image_strong"], again["image_strong"])
    # the weak view does not depend on which other views exist
    np.testing.assert_array_equal(batch["image"], next(_build().train.batches())["image"])
