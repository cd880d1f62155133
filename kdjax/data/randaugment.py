"""RandAugment + Cutout as stateless tf.data ops: MLLD's strong view (Jin et al., CVPR 2023; reference:
Jin-Ying/Multi-Level-Logit-Distillation mdistiller/dataset/cifar100.py).

Per image: 2 ops drawn uniformly (with replacement) from the 14 PIL-style ops below, each with a magnitude drawn
uniformly from its range; then Cutout: a square of side U(0, 0.5) * image size at a uniform random centre (clipped
at the borders), filled with (125, 123, 114) (the channel mean for grayscale).
Magnitude ranges are those of the FixMatch RandAugment pool that MLLD's file builds on (kdjax's reading; the exact
MLLD file was not available to check): Brightness/Color/Contrast/Sharpness factor in [0.05, 0.95], Posterize
bits in [4, 8], Rotate in [-30, 30] degrees, ShearX/Y in [-0.3, 0.3], Solarize threshold in [0, 256], TranslateX/Y
in [-0.3, 0.3] of the size; geometric ops fill with 0 (PIL's default). Images are uint8 HWC; every random draw
comes from a stateless seed, so views are reproducible per (seed, epoch, example).

The PIL-style image ops (`blend`, `grayscale`, `autocontrast`, `equalize`, `sharpness`, `contrast`, `affine`,
`rotate`, `shear_x/y`, `translate_x/y`, `posterize`, `solarize`; float HWC images in [0, 255]) are public: L2D's
policy (`kdjax.data.l2d_augment`) composes them with its own magnitudes and fill.
"""
import math

from kdjax.quiet_tensorflow import tf

CUTOUT_FILL = (125.0, 123.0, 114.0)


def blend(degenerate, image, factor):
    """PIL ImageEnhance: degenerate + factor * (image - degenerate), clipped to [0, 255]."""
    return tf.clip_by_value(degenerate + factor * (image - degenerate), 0.0, 255.0)


def grayscale(image):
    """PIL 'L' conversion weights (ITU-R 601-2), broadcast back to the image's channels."""
    if image.shape[-1] == 1:
        return image
    gray = tf.round(tf.reduce_sum(image * tf.constant([0.299, 0.587, 0.114]), axis=-1, keepdims=True))
    return tf.broadcast_to(gray, tf.shape(image))


def autocontrast(image, _):
    lo = tf.reduce_min(image, axis=(0, 1), keepdims=True)
    hi = tf.reduce_max(image, axis=(0, 1), keepdims=True)
    scale = tf.where(hi > lo, 255.0 / tf.maximum(hi - lo, 1e-6), 1.0)
    return tf.where(hi > lo, (image - lo) * scale, image)


def _equalize_channel(channel):
    """PIL ImageOps.equalize on one channel of integer-valued floats."""
    values = tf.cast(channel, tf.int32)
    hist = tf.math.bincount(tf.reshape(values, [-1]), minlength=256, maxlength=256)
    nonzero = tf.boolean_mask(hist, hist > 0)
    step = (tf.reduce_sum(nonzero) - nonzero[-1]) // 255
    lut = (tf.cumsum(hist) - hist + step // 2) // tf.maximum(step, 1)
    lut = tf.clip_by_value(lut, 0, 255)
    return tf.where(step > 0, tf.cast(tf.gather(lut, values), tf.float32), channel)


def equalize(image, _):
    return tf.stack([_equalize_channel(image[..., c]) for c in range(image.shape[-1])], axis=-1)


def sharpness(image, factor):
    """PIL SMOOTH filter (kernel [[1,1,1],[1,5,1],[1,1,1]] / 13) on the interior; borders kept."""
    kernel = tf.constant([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
    channels = image.shape[-1]
    kernel = tf.tile(kernel[:, :, None, None], [1, 1, channels, 1])
    smooth = tf.nn.depthwise_conv2d(image[None], kernel, [1, 1, 1, 1], "VALID")[0]
    smooth = tf.round(smooth)
    degenerate = tf.pad(smooth, [[1, 1], [1, 1], [0, 0]])
    interior = tf.pad(tf.ones_like(smooth), [[1, 1], [1, 1], [0, 0]])
    degenerate = interior * degenerate + (1.0 - interior) * image
    return blend(degenerate, image, factor)


def affine(image, matrix, fill=0.0, resample: str = "nearest"):
    """PIL's Image.transform(AFFINE, matrix, resample): output pixel centre (x + .5, y + .5) samples the input at
    matrix @ (x + .5, y + .5, 1) in continuous coordinates; `fill` outside (PIL's default 0). 'nearest' (PIL's
    default) runs TF's projective transform, which works on pixel indices, hence the half-pixel shifts folded into the
    translation; 'bicubic' is `affine_bicubic` (TF's op has no bicubic mode)."""
    if resample == "bicubic":
        return affine_bicubic(image, matrix, fill)
    if resample != "nearest":
        raise ValueError(f"affine: resample={resample!r}; valid: 'nearest', 'bicubic'")
    a, b, c, d, e, f = tf.unstack(tf.reshape(matrix, [-1])[:6])
    c = c + 0.5 * (a + b) - 0.5
    f = f + 0.5 * (d + e) - 0.5
    a = tf.stack([a, b, c, d, e, f, 0.0, 0.0])
    out = tf.raw_ops.ImageProjectiveTransformV3(images=image[None], transforms=a[None], output_shape=tf.shape(image)[:2],
                                                fill_value=fill, interpolation="NEAREST", fill_mode="CONSTANT")
    return out[0]


def _pil_cubic(v1, v2, v3, v4, d):
    """Pillow's BICUBIC macro (libImaging/Geometry.c): the cubic through four samples at offset d in [0, 1)."""
    p2, p3, p4 = -v1 + v3, 2.0 * (v1 - v2) + v3 - v4, -v1 + v2 - v3 + v4
    return v2 + d * (p2 + d * (p3 + d * p4))


def affine_bicubic(image, matrix, fill=0.0):
    """PIL's Image.transform(AFFINE, matrix, BICUBIC, fillcolor=fill) on a float HWC image of uint8 values, as
    Pillow's generic transform computes it (libImaging/Geometry.c `bicubic_filter32RGB`, in double precision): the
    sample point (xin, yin) = matrix @ (x + .5, y + .5, 1); outside [0, W) x [0, H) the fill; inside, the 4 x 4
    neighbours around (xin - .5, yin - .5), indices clamped to the image, combined by Pillow's cubic along rows then
    along the column; the result clipped to [0, 255] and truncated, as its cast to UINT8."""
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    m = tf.cast(tf.reshape(matrix, [-1])[:6], tf.float64)
    ys, xs = tf.meshgrid(tf.range(h, dtype=tf.float64) + 0.5, tf.range(w, dtype=tf.float64) + 0.5, indexing="ij")
    xin, yin = m[0] * xs + m[1] * ys + m[2], m[3] * xs + m[4] * ys + m[5]
    hf, wf = tf.cast(h, tf.float64), tf.cast(w, tf.float64)
    inside = (xin >= 0.0) & (xin < wf) & (yin >= 0.0) & (yin < hf)
    x0, y0 = tf.floor(xin - 0.5), tf.floor(yin - 0.5)
    dx, dy = (xin - 0.5 - x0)[..., None], (yin - 0.5 - y0)[..., None]
    cols = [tf.clip_by_value(tf.cast(x0, tf.int32) - 1 + k, 0, w - 1) for k in range(4)]
    rows = [tf.clip_by_value(tf.cast(y0, tf.int32) - 1 + k, 0, h - 1) for k in range(4)]
    pixels = tf.cast(image, tf.float64)

    def row_value(r):
        return _pil_cubic(*[tf.gather_nd(pixels, tf.stack([r, c], -1)) for c in cols], dx)
    value = _pil_cubic(*[row_value(r) for r in rows], dy)
    value = tf.clip_by_value(tf.floor(value), 0.0, 255.0)  # = Pillow's clip to [0, 255], then truncation
    out = tf.where(inside[..., None], value, tf.cast(fill, tf.float64) * tf.ones_like(value))
    return tf.cast(out, image.dtype)


def rotate(image, degrees, fill=0.0):
    h, w = tf.cast(tf.shape(image)[0], tf.float32), tf.cast(tf.shape(image)[1], tf.float32)
    t = degrees * math.pi / 180.0
    cx, cy = w / 2.0, h / 2.0
    c, s = tf.cos(t), tf.sin(t)
    # counter-clockwise rotation about the centre, as PIL's Image.rotate
    return affine(image, tf.stack([c, -s, cx - c * cx + s * cy, s, c, cy - s * cx - c * cy]), fill)


def shear_x(image, v, fill=0.0, resample: str = "nearest"):
    return affine(image, tf.stack([1.0, v, 0.0, 0.0, 1.0, 0.0]), fill, resample)


def shear_y(image, v, fill=0.0, resample: str = "nearest"):
    return affine(image, tf.stack([1.0, 0.0, 0.0, v, 1.0, 0.0]), fill, resample)


def translate_x(image, v, fill=0.0):
    return affine(image, tf.stack([1.0, 0.0, v * tf.cast(tf.shape(image)[1], tf.float32), 0.0, 1.0, 0.0]), fill)


def translate_y(image, v, fill=0.0):
    return affine(image, tf.stack([1.0, 0.0, 0.0, 0.0, 1.0, v * tf.cast(tf.shape(image)[0], tf.float32)]), fill)


def contrast(image, factor):
    """PIL ImageEnhance.Contrast: blend with the image's mean grey level (rounded as PIL does)."""
    return blend(tf.floor(tf.reduce_mean(grayscale(image)[..., :1]) + 0.5) * tf.ones_like(image), image, factor)


def posterize(image, bits):
    shift = 8 - tf.cast(tf.round(bits), tf.int32)
    return tf.cast(tf.bitwise.left_shift(tf.bitwise.right_shift(tf.cast(image, tf.int32), shift), shift), tf.float32)


def solarize(image, threshold):
    return tf.where(image < threshold, image, 255.0 - image)


# (name, op(image float HWC in [0, 255], magnitude), low, high)
OPS = (
    ("AutoContrast", autocontrast, 0.0, 1.0),
    ("Brightness", lambda im, f: blend(tf.zeros_like(im), im, f), 0.05, 0.95),
    ("Color", lambda im, f: blend(grayscale(im), im, f), 0.05, 0.95),
    ("Contrast", contrast, 0.05, 0.95),
    ("Equalize", equalize, 0.0, 1.0),
    ("Identity", lambda im, _: im, 0.0, 1.0),
    ("Posterize", posterize, 4.0, 8.0),
    ("Rotate", rotate, -30.0, 30.0),
    ("Sharpness", sharpness, 0.05, 0.95),
    ("ShearX", shear_x, -0.3, 0.3),
    ("ShearY", shear_y, -0.3, 0.3),
    ("Solarize", solarize, 0.0, 256.0),
    ("TranslateX", translate_x, -0.3, 0.3),
    ("TranslateY", translate_y, -0.3, 0.3),
)


def apply_op(image, index, magnitude01):
    """Op number `index` of OPS with magnitude low + magnitude01 * (high - low) (a tf.switch_case)."""
    branches = [(lambda op=op, lo=lo, hi=hi: op(image, lo + magnitude01 * (hi - lo))) for _, op, lo, hi in OPS]
    return tf.switch_case(index, branches)


def rand_augment(image, seed, num_ops: int = 2):
    """image: uint8 HWC; seed: a stateless seed [2]. Returns uint8."""
    seeds = tf.random.experimental.stateless_split(seed, num_ops)
    x = tf.cast(image, tf.float32)
    for i in range(num_ops):
        index = tf.random.stateless_uniform([], seeds[i], 0, len(OPS), dtype=tf.int32)
        magnitude = tf.random.stateless_uniform([], tf.random.experimental.stateless_fold_in(seeds[i], 1))
        x = apply_op(x, index, magnitude)
    return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)


def cutout(image, seed, max_fraction: float = 0.5):
    """A square of side U(0, max_fraction) * H at a uniform random centre, clipped, filled with CUTOUT_FILL."""
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    u = tf.random.stateless_uniform([3], seed)
    side = tf.cast(u[0] * max_fraction * tf.cast(h, tf.float32), tf.int32)
    cy, cx = tf.cast(u[1] * tf.cast(h, tf.float32), tf.int32), tf.cast(u[2] * tf.cast(w, tf.float32), tf.int32)
    y0, y1 = tf.maximum(cy - side // 2, 0), tf.minimum(cy - side // 2 + side, h)
    x0, x1 = tf.maximum(cx - side // 2, 0), tf.minimum(cx - side // 2 + side, w)
    rows, cols = tf.range(h)[:, None], tf.range(w)[None, :]
    inside = ((rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1))[..., None]
    fill = tf.constant(CUTOUT_FILL[:image.shape[-1]] if image.shape[-1] == 3 else (sum(CUTOUT_FILL) / 3,))
    return tf.where(inside, tf.cast(tf.round(fill), image.dtype), image)
