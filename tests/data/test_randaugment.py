"""MLLD's strong-view ops (kdjax.data.randaugment) against Pillow, the library the reference applies them with."""
import numpy as np
import PIL.Image
import PIL.ImageEnhance
import PIL.ImageOps
import pytest
import tensorflow as tf

from kdjax.data import randaugment

NAMES = [name for name, *_ in randaugment.OPS]


def smooth_image():
    rng = np.random.RandomState(0)
    smooth = np.cumsum(np.cumsum(rng.randint(-6, 7, (32, 32, 3)), 0), 1)  # structured, not white noise
    return np.clip(smooth - smooth.min(axis=(0, 1)) + 20, 0, 235).astype(np.uint8)


def _ours(name, magnitude, image):
    index = NAMES.index(name)
    lo, hi = randaugment.OPS[index][2:]
    out = randaugment.apply_op(tf.cast(image, tf.float32), tf.constant(index), (magnitude - lo) / (hi - lo))
    return np.asarray(tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8)).astype(int)


def _pil(name, v, image):
    img = PIL.Image.fromarray(image)
    affine = lambda m: img.transform(img.size, PIL.Image.AFFINE, m, resample=PIL.Image.NEAREST)
    out = {
        "AutoContrast": lambda: PIL.ImageOps.autocontrast(img),
        "Brightness": lambda: PIL.ImageEnhance.Brightness(img).enhance(v),
        "Color": lambda: PIL.ImageEnhance.Color(img).enhance(v),
        "Contrast": lambda: PIL.ImageEnhance.Contrast(img).enhance(v),
        "Equalize": lambda: PIL.ImageOps.equalize(img),
        "Identity": lambda: img,
        "Posterize": lambda: PIL.ImageOps.posterize(img, int(v)),
        "Rotate": lambda: img.rotate(v, resample=PIL.Image.NEAREST),
        "Sharpness": lambda: PIL.ImageEnhance.Sharpness(img).enhance(v),
        "ShearX": lambda: affine((1, v, 0, 0, 1, 0)),
        "ShearY": lambda: affine((1, 0, 0, v, 1, 0)),
        "Solarize": lambda: PIL.ImageOps.solarize(img, v),
        "TranslateX": lambda: affine((1, 0, v * img.size[0], 0, 1, 0)),
        "TranslateY": lambda: affine((1, 0, 0, 0, 1, v * img.size[1])),
    }[name]()
    return np.asarray(out).astype(int)


EXACT = {"Identity", "Posterize", "Solarize", "Equalize"}
BLENDS = {"AutoContrast", "Brightness", "Color", "Contrast", "Sharpness"}  # PIL truncates where kdjax rounds
CASES = [("Posterize", 4), ("Posterize", 6), ("Solarize", 128), ("Solarize", 200), ("Identity", 0.5),
         ("Equalize", 0.5), ("AutoContrast", 0.5), ("Brightness", 0.3), ("Color", 0.2), ("Contrast", 0.6),
         ("Sharpness", 0.1), ("Rotate", 17.0), ("Rotate", -30.0), ("ShearX", 0.25), ("ShearY", -0.3),
         ("TranslateX", 0.3), ("TranslateY", -0.17)]


@pytest.mark.parametrize("name, v", CASES)
def test_op_matches_pillow(name, v):
    image = smooth_image()
    ours, ref = _ours(name, v, image), _pil(name, v, image)
    if name in EXACT:
        np.testing.assert_array_equal(ours, ref)
    elif name in BLENDS:  # Color also rounds PIL's fixed-point grayscale conversion: one more level
        assert np.abs(ours - ref).max() <= (2 if name == "Color" else 1), np.abs(ours - ref).max()
    else:  # geometric: nearest-neighbour ties at exact half-pixels may resolve differently
        assert np.mean(np.any(ours != ref, axis=-1)) < 0.02


def test_every_op_is_covered():
    assert {name for name, _ in CASES} == set(NAMES)


def test_cutout_fills_one_clipped_square_with_the_reference_colour():
    image = np.full((32, 32, 3), 7, np.uint8)
    for s in range(20):
        out = np.asarray(randaugment.cutout(tf.constant(image), tf.constant([s, 1], tf.int64)))
        filled = np.all(out == (125, 123, 114), axis=-1)
        assert np.all(out[~filled] == 7)
        if filled.any():
            rows, cols = np.flatnonzero(filled.any(1)), np.flatnonzero(filled.any(0))
            assert filled[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()  # one rectangle
            assert max(len(rows), len(cols)) <= 16


def test_rand_augment_is_a_function_of_its_seed():
    image = tf.constant(smooth_image())
    a = randaugment.rand_augment(image, tf.constant([3, 4], tf.int64))
    b = randaugment.rand_augment(image, tf.constant([3, 4], tf.int64))
    outs = {randaugment.rand_augment(image, tf.constant([s, 4], tf.int64)).numpy().tobytes() for s in range(8)}
    np.testing.assert_array_equal(a, b)
    assert len(outs) > 4
