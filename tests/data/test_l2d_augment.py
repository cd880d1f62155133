"""L2D's training view: ASL's CutoutPIL and pip randaugment 1.0.2's ops against Pillow (the AutoAugment ImageNet
policy's operations), the magnitude tables, and the per-op probability."""
import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageEnhance
import PIL.ImageOps
import pytest
import tensorflow as tf

from kdjax.data import l2d_augment, ops
from tests.data.test_randaugment import BLENDS, smooth_image

EXACT = {"Invert", "Posterize", "Solarize", "Equalize", "ShearX", "ShearY"}


def _ours(name, m, sign, image):
    out = l2d_augment.apply_op(tf.cast(image, tf.float32), tf.constant(l2d_augment.NAMES.index(name)),
                               tf.constant(m), tf.constant(float(sign)), tf.constant([0, 0], tf.int64))
    return np.asarray(tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8)).astype(int)


def _pil(name, m, sign, image):
    """DeepVoltaire/AutoAugment's SubPolicy operations at the policy's magnitude tables."""
    img = PIL.Image.fromarray(image)
    v = l2d_augment.OPS[name][1][m]
    v32 = float(np.float32(v))
    grey = (128, 128, 128)

    def rotate_with_fill():
        rot = img.convert("RGBA").rotate(v)
        return PIL.Image.composite(rot, PIL.Image.new("RGBA", rot.size, (128,) * 4), rot).convert(img.mode)
    out = {
        "Invert": lambda: PIL.ImageOps.invert(img),
        "Sharpness": lambda: PIL.ImageEnhance.Sharpness(img).enhance(1 + v * sign),
        "AutoContrast": lambda: PIL.ImageOps.autocontrast(img),
        "Posterize": lambda: PIL.ImageOps.posterize(img, int(v)),
        "TranslateX": lambda: img.transform(img.size, PIL.Image.AFFINE, (1, 0, v * img.size[0] * sign, 0, 1, 0),
                                            fillcolor=grey),
        "TranslateY": lambda: img.transform(img.size, PIL.Image.AFFINE, (1, 0, 0, 0, 1, v * img.size[1] * sign),
                                            fillcolor=grey),
        # the magnitude as the op receives it (a float32 table): the truncation to uint8 is exact only then
        "ShearX": lambda: img.transform(img.size, PIL.Image.AFFINE, (1, v32 * sign, 0, 0, 1, 0), PIL.Image.BICUBIC,
                                        fillcolor=grey),
        "ShearY": lambda: img.transform(img.size, PIL.Image.AFFINE, (1, 0, 0, v32 * sign, 1, 0), PIL.Image.BICUBIC,
                                        fillcolor=grey),
        "Rotate": rotate_with_fill,
        "Equalize": lambda: PIL.ImageOps.equalize(img),
        "Contrast": lambda: PIL.ImageEnhance.Contrast(img).enhance(1 + v * sign),
        "Color": lambda: PIL.ImageEnhance.Color(img).enhance(1 + v * sign),
        "Solarize": lambda: PIL.ImageOps.solarize(img, v),
        "Brightness": lambda: PIL.ImageEnhance.Brightness(img).enhance(1 + v * sign),
    }[name]()
    return np.asarray(out).astype(int)


def test_magnitude_tables_are_the_policys():
    tables = {name: np.asarray(table) for name, (_, table) in l2d_augment.OPS.items()}
    np.testing.assert_allclose(tables["ShearX"], np.linspace(0, 0.3, 10))
    np.testing.assert_allclose(tables["TranslateY"], np.linspace(0, 150 / 331, 10))
    np.testing.assert_allclose(tables["Rotate"], np.linspace(0, 30, 10))
    np.testing.assert_allclose(tables["Color"], np.linspace(0, 0.9, 10))
    np.testing.assert_array_equal(tables["Posterize"], np.round(np.linspace(8, 4, 10)))
    np.testing.assert_allclose(tables["Solarize"], np.linspace(256, 0, 10))
    np.testing.assert_array_equal(tables["Cutout"], np.round(np.linspace(0, 20, 10)))
    assert len(l2d_augment.NAMES) == 15


@pytest.mark.parametrize("name", [n for n in l2d_augment.NAMES if n != "Cutout"])
@pytest.mark.parametrize("m, sign", [(3, 1), (8, -1)])
def test_op_matches_the_policy_in_pillow(name, m, sign):
    image = smooth_image()
    ours, ref = _ours(name, m, sign, image), _pil(name, m, sign, image)
    if name in EXACT:
        np.testing.assert_array_equal(ours, ref)
    elif name in BLENDS:
        assert np.abs(ours - ref).max() <= (2 if name == "Color" else 1), np.abs(ours - ref).max()
    else:  # geometric: nearest-neighbour ties at exact half-pixels may resolve differently
        assert np.mean(np.any(ours != ref, axis=-1)) < 0.02


def _package_cutout(image, side, uniforms):
    """pip randaugment 1.0.2's Cutout restated with its random draws given (randint(n) = floor(u * n)): on the PIL
    image, `height` is size[0] (the width) and pixels[i, j] is column i, row j."""
    img = PIL.Image.fromarray(image)
    pixels = img.load()
    first, second = img.size
    loc0, loc1 = int(np.floor(uniforms[0] * first)), int(np.floor(uniforms[1] * second))
    upper = (max(0, loc0 - side // 2), max(0, loc1 - side // 2))
    lower = (min(first, loc0 + side // 2), min(second, loc1 + side // 2))
    for i in range(upper[0], lower[0]):
        for j in range(upper[1], lower[1]):
            pixels[i, j] = (125, 122, 113)
    return np.asarray(img).astype(int)


@pytest.mark.parametrize("m", [1, 5, 9])
def test_policy_cutout_equals_the_packages(m):
    image = smooth_image()[:24, :30]
    side = int(l2d_augment.OPS["Cutout"][1][m])
    for s in range(12):
        seed = tf.constant([s, 3], tf.int64)
        out = l2d_augment.apply_op(tf.cast(image, tf.float32), tf.constant(l2d_augment.NAMES.index("Cutout")),
                                   tf.constant(m), tf.constant(1.0), seed)
        uniforms = np.asarray(tf.random.stateless_uniform([2], seed))
        np.testing.assert_array_equal(np.asarray(out).astype(int), _package_cutout(image, side, uniforms))


def test_bicubic_affine_equals_pillow_on_rotations_too():
    """The bicubic resampler on matrices other than shears: Pillow's sample positions, clamping and truncation."""
    from kdjax.data import randaugment
    image = smooth_image()[:20, :26]
    img = PIL.Image.fromarray(image)
    for matrix in [(0.9, 0.2, 1.5, -0.3, 1.1, -2.0), (1.0, 0.0, 0.5, 0.0, 1.0, 0.25), (1.2, -0.4, -3.0, 0.1, 0.8, 4.0)]:
        ours = randaugment.affine(tf.cast(image, tf.float32), tf.constant(matrix, tf.float32), 128.0, "bicubic")
        as_received = tuple(float(x) for x in np.float32(matrix))  # the op's float32 matrix
        ref = img.transform(img.size, PIL.Image.AFFINE, as_received, PIL.Image.BICUBIC, fillcolor=(128, 128, 128))
        np.testing.assert_array_equal(np.asarray(ours).astype(int), np.asarray(ref).astype(int))
        # as the tf.data pipeline runs it: traced into a graph (dtype conversions differ from eager mode)
        traced = tf.function(lambda x, m: randaugment.affine(x, m, 128.0, "bicubic"))(
            tf.cast(image, tf.float32), tf.constant(matrix, tf.float32))
        np.testing.assert_array_equal(traced, ours)
    with pytest.raises(ValueError, match="resample='lanczos'; valid: 'nearest', 'bicubic'"):
        randaugment.affine(tf.cast(image, tf.float32), tf.constant(matrix, tf.float32), 0.0, "lanczos")


def _asl_cutout_pil(image, uniforms, colour, factor=0.5):
    """ASL's CutoutPIL with its random draws given (randint(n) = floor(u * n))."""
    img = PIL.Image.fromarray(image)
    draw = PIL.ImageDraw.Draw(img)
    h, w = img.size[0], img.size[1]
    h_cut, w_cut = int(factor * h + 0.5), int(factor * w + 0.5)
    y_c, x_c = int(np.floor(uniforms[0] * h)), int(np.floor(uniforms[1] * w))
    y1, y2 = np.clip(y_c - h_cut // 2, 0, h), np.clip(y_c + h_cut // 2, 0, h)
    x1, x2 = np.clip(x_c - w_cut // 2, 0, w), np.clip(x_c + w_cut // 2, 0, w)
    draw.rectangle([x1, y1, x2, y2], fill=tuple(int(c) for c in colour))
    return np.asarray(img)


@pytest.mark.parametrize("size", [(24, 24), (20, 30)])
def test_cutout_pil_equals_asls_rectangle(size):
    image = smooth_image()[:size[0], :size[1]]
    for s in range(12):
        seed = tf.constant([s, 5], tf.int64)
        out = np.asarray(l2d_augment.cutout_pil(tf.constant(image), seed))
        uniforms = np.asarray(tf.random.stateless_uniform([2], seed))
        colour = np.asarray(tf.random.stateless_uniform([3], tf.random.experimental.stateless_fold_in(seed, 1), 0,
                                                        256, dtype=tf.int32))
        np.testing.assert_array_equal(out, _asl_cutout_pil(image, uniforms, colour))


def test_each_op_is_applied_with_probability_one_half():
    image = tf.constant(smooth_image())
    changed = [not np.array_equal(l2d_augment.rand_augment(image, tf.constant([s, 9], tf.int64), num_ops=1), image)
               for s in range(300)]
    # an applied op can leave the image unchanged (posterize 8 bits, a 0-magnitude index is never drawn): <= 0.5
    assert 0.35 < np.mean(changed) <= 0.6
    never = [np.array_equal(l2d_augment.rand_augment(image, tf.constant([s, 9], tf.int64), probability=0.0), image)
             for s in range(20)]
    assert all(never)


def test_view_string_builds_the_l2d_pipeline_and_checks_arguments():
    fns = ops.build("resize(32, 32)|cutout_pil|l2d_randaugment")
    x = tf.constant(smooth_image())
    for fn in fns:
        x = fn(x, tf.constant([1, 2], tf.int64))
    assert x.shape == (32, 32, 3) and x.dtype == tf.uint8
    with pytest.raises(ValueError, match="factor=1.5"):
        ops.build("cutout_pil(1.5)")
    with pytest.raises(ValueError, match="probability=2"):
        ops.build("l2d_randaugment(2, 2)")
