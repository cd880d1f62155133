"""L2D's training augmentation as stateless tf.data ops (Yang et al., ICCV 2023; reference: penghui-yang/L2D
dataloader.py): CutoutPIL(0.5) from ASL (Alibaba-MIIL/ASL src/helper_functions/helper_functions.py) and the
RandAugment of pip `randaugment==1.0.2` (jizongFox/RandAugment; the AutoAugment ImageNet-policy ops of
DeepVoltaire/AutoAugment), both on uint8 HWC images, every random draw from a stateless seed.

CutoutPIL(f): one rectangle of f times each side, centred at a uniform random pixel, clipped to the image, its
corners included (PIL's `ImageDraw.rectangle`), filled with one uniformly random colour (0..255 per channel). ASL
names the sides the other way round (h = width); L2D's images are square by then, where it makes no difference;
kdjax follows ASL's code for non-square images too.

RandAugment(): 2 ops per call, each drawn uniformly from the 15 below with a magnitude index uniform in 1..9, and
each applied with probability 0.5. Magnitudes (index m of a 10-bin table): ShearX/Y linspace(0, 0.3), TranslateX/Y
linspace(0, 150/331) of the width / height, Rotate linspace(0, 30) degrees, Color / Contrast / Sharpness / Brightness
factor 1 + s * linspace(0, 0.9), Posterize round(linspace(8, 4)) bits, Solarize threshold linspace(256, 0), Cutout
side round(linspace(0, 20)) px; s = a random sign for shears, translations and the enhancements (rotation is
counter-clockwise only, as the policy's `rotate_with_fill`). Geometric ops fill with grey 128 (the policy's
`fillcolor=(128, 128, 128)`); shears resample BICUBIC as the package's do (`randaugment.affine_bicubic`, Pillow's
filter restated), translations and rotations NEAREST. The package's Cutout (its `Cutout` class, the AutoAugment
`create_cutout_mask`): a centre drawn uniformly per axis (randint), the square [c - side // 2, c + side // 2) per
axis clipped to the image (so 2 * (side // 2) wide inside), filled with (125, 122, 113). Magnitudes are float32
here (the package's are doubles): a bicubic sample within ~1e-7 of an integer may truncate the other way.
"""
import numpy as np

from kdjax.data import randaugment as ra
from kdjax.quiet_tensorflow import tf

GREY = 128.0
CUTOUT_COLOUR = (125.0, 122.0, 113.0)  # the package's Cutout fill
NUM_BINS = 10


def _table(lo, hi, rounded=False):
    values = np.linspace(lo, hi, NUM_BINS)
    return tuple(float(v) for v in (np.round(values) if rounded else values))


# name -> (op(image float HWC in [0, 255], value, sign), magnitude table); the order of the policy's op list
OPS = {
    "Invert": (lambda im, v, s: 255.0 - im, _table(0, 0)),
    "Cutout": (lambda im, v, s: im, _table(0, 20, rounded=True)),  # drawn below: it needs its own random centre
    "Sharpness": (lambda im, v, s: ra.sharpness(im, 1.0 + s * v), _table(0, 0.9)),
    "AutoContrast": (lambda im, v, s: ra.autocontrast(im, None), _table(0, 0)),
    "Posterize": (lambda im, v, s: ra.posterize(im, v), _table(8, 4, rounded=True)),
    "ShearX": (lambda im, v, s: ra.shear_x(im, s * v, GREY, "bicubic"), _table(0, 0.3)),
    "TranslateX": (lambda im, v, s: ra.translate_x(im, s * v, GREY), _table(0, 150 / 331)),
    "TranslateY": (lambda im, v, s: ra.translate_y(im, s * v, GREY), _table(0, 150 / 331)),
    "ShearY": (lambda im, v, s: ra.shear_y(im, s * v, GREY, "bicubic"), _table(0, 0.3)),
    "Rotate": (lambda im, v, s: ra.rotate(im, v, GREY), _table(0, 30)),
    "Equalize": (lambda im, v, s: ra.equalize(im, None), _table(0, 0)),
    "Contrast": (lambda im, v, s: ra.contrast(im, 1.0 + s * v), _table(0, 0.9)),
    "Color": (lambda im, v, s: ra.blend(ra.grayscale(im), im, 1.0 + s * v), _table(0, 0.9)),
    "Solarize": (lambda im, v, s: ra.solarize(im, v), _table(256, 0)),
    "Brightness": (lambda im, v, s: ra.blend(tf.zeros_like(im), im, 1.0 + s * v), _table(0, 0.9)),
}
NAMES = tuple(OPS)


def fill_box(image, y0, y1, x0, x1, colour):
    """Rows y0..y1 and columns x0..x1, both INCLUSIVE (PIL rectangles), set to `colour` ([C] or scalar)."""
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    rows, cols = tf.range(h)[:, None], tf.range(w)[None, :]
    inside = ((rows >= y0) & (rows <= y1) & (cols >= x0) & (cols <= x1))[..., None]
    return tf.where(inside, tf.cast(colour, image.dtype) * tf.ones_like(image), image)


def cutout_pil_box(height, width, uniforms, factor: float = 0.5):
    """ASL's CutoutPIL rectangle (y1, y2, x1, x2) from 2 uniforms in [0, 1): h := width, w := height as in its code
    (`h, w = x.size[0], x.size[1]`), centre (y_c, x_c) = (randint(h), randint(w))."""
    h, w = width, height
    h_cut, w_cut = int(factor * h + 0.5), int(factor * w + 0.5)
    y_c = tf.cast(tf.floor(uniforms[0] * h), tf.int32)
    x_c = tf.cast(tf.floor(uniforms[1] * w), tf.int32)
    y1, y2 = tf.clip_by_value(y_c - h_cut // 2, 0, h), tf.clip_by_value(y_c + h_cut // 2, 0, h)
    x1, x2 = tf.clip_by_value(x_c - w_cut // 2, 0, w), tf.clip_by_value(x_c + w_cut // 2, 0, w)
    return y1, y2, x1, x2


def cutout_pil(image, seed, factor: float = 0.5):
    """uint8 HWC -> uint8. The PIL rectangle [x1, y1, x2, y2] covers columns x1..x2 and rows y1..y2."""
    if image.shape[0] is None or image.shape[1] is None:
        raise ValueError("cutout_pil needs a fixed image size: put it after resize(...)")
    u = tf.random.stateless_uniform([2], seed)
    y1, y2, x1, x2 = cutout_pil_box(int(image.shape[0]), int(image.shape[1]), u, factor)
    colour = tf.random.stateless_uniform([image.shape[-1]], tf.random.experimental.stateless_fold_in(seed, 1),
                                         0, 256, dtype=tf.int32)
    # PIL's x is the column (x1..x2 from the `w` side) and y the row: ASL's naming lands y on rows
    return fill_box(image, y1, y2, x1, x2, colour)


def _cutout_policy(image, side, seed):
    """The package's Cutout: centre (randint(W), randint(H)), columns and rows [c - side // 2, c + side // 2)
    clipped, filled with CUTOUT_COLOUR (its first channel on grayscale images)."""
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    u = tf.random.stateless_uniform([2], seed)
    cx = tf.cast(tf.floor(u[0] * tf.cast(w, tf.float32)), tf.int32)  # the package draws the PIL width first
    cy = tf.cast(tf.floor(u[1] * tf.cast(h, tf.float32)), tf.int32)
    half = tf.cast(side, tf.int32) // 2
    y0, x0 = tf.maximum(cy - half, 0), tf.maximum(cx - half, 0)
    y1, x1 = tf.minimum(cy + half, h) - 1, tf.minimum(cx + half, w) - 1  # fill_box's bounds are inclusive
    colour = tf.constant(CUTOUT_COLOUR[:image.shape[-1]] if image.shape[-1] else CUTOUT_COLOUR, tf.float32)
    return fill_box(image, y0, y1, x0, x1, colour)


def apply_op(image, index, magnitude_index, sign, seed):
    """Op `index` of OPS at its table's value `magnitude_index` (image float HWC)."""
    def branch(name):
        op, table = OPS[name]
        value = tf.gather(tf.constant(table, tf.float32), magnitude_index)
        if name == "Cutout":
            return lambda: _cutout_policy(image, value, seed)
        return lambda: op(image, value, sign)
    return tf.switch_case(index, [branch(name) for name in NAMES])


def rand_augment(image, seed, num_ops: int = 2, probability: float = 0.5):
    """uint8 HWC -> uint8: `num_ops` (op, magnitude) draws, each applied with `probability`."""
    x = tf.cast(image, tf.float32)
    for i in range(num_ops):
        s = tf.random.experimental.stateless_fold_in(seed, i)
        u = tf.random.stateless_uniform([3], s)
        index = tf.random.stateless_uniform([], tf.random.experimental.stateless_fold_in(s, 1), 0, len(NAMES),
                                            dtype=tf.int32)
        magnitude = tf.random.stateless_uniform([], tf.random.experimental.stateless_fold_in(s, 2), 1, NUM_BINS,
                                                dtype=tf.int32)
        sign = tf.where(u[0] < 0.5, -1.0, 1.0)
        out = apply_op(x, index, magnitude, sign, tf.random.experimental.stateless_fold_in(s, 3))
        x = tf.where(u[1] < probability, tf.clip_by_value(tf.round(out), 0.0, 255.0), x)
    return tf.cast(x, tf.uint8)
