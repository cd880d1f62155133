"""Preprocessing ops by name, applied per view in the order a config lists them.

A view is a string of ops separated by '|', each `name` or `name(args)` with Python literal arguments, e.g.
`'resize(256)|center_crop(224)'` or `'pad_crop(4)|flip|randaugment|cutout'`. An op maps one uint8 HWC image and a
stateless seed to a uint8 image (as PIL-based torchvision pipelines do, values are rounded to uint8 after every op);
the pipeline then applies the dataset's normalisation (`normalize`) last, in every view.

Ops (torchvision names in brackets):
- `resize(size)`: shorter side to `size`, the longer one int(size * long / short) [Resize(int)];
  `resize(height, width)`: exactly that size [Resize((h, w))]; bilinear with antialiasing;
- `random_resized_crop(size, scale=(0.08, 1.0), ratio=(3/4, 4/3))` [RandomResizedCrop]: torchvision's rule (10
  tries of a random area and log-uniform aspect ratio, else the whole image clamped to the ratio range), then a
  resize to size x size;
- `center_crop(size)` [CenterCrop]; an image smaller than `size` is zero-padded first, as torchvision does;
- `pad_crop(padding=4)` [RandomCrop(size, padding)]: zero padding, then a random crop of the original size;
- `flip` [RandomHorizontalFlip(0.5)];
- `randaugment(num_ops=2)`, `cutout(max_fraction=0.5)`: MLLD's strong view (`kdjax.data.randaugment`);
- `cutout_pil(factor=0.5)`, `l2d_randaugment(num_ops=2, probability=0.5)`: L2D's multi-label training view
  (ASL's CutoutPIL, pip randaugment 1.0.2; `kdjax.data.l2d_augment`), e.g. 'resize(224, 224)|cutout_pil|l2d_randaugment';
- `normalize(mean, std)` on [0, 1] pixels -> float32 (set through `data.normalization`, not in view strings).
New ops register with `@register('name')` on a factory that validates its arguments and returns `op(image, seed)`.
"""
import ast
import inspect
import math
from typing import Callable


from kdjax.data import l2d_augment, randaugment
from kdjax.quiet_tensorflow import tf
from kdjax.registry import Registry

OPS = Registry("preprocessing op")
register = OPS.register


def _hwc(image):
    """(H, W, C), static ints where the shape is known, dynamic scalars where it is not."""
    dynamic = tf.shape(image)
    return tuple(d if d is not None else dynamic[i] for i, d in enumerate(image.shape.as_list()))


def _to_uint8(image):
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def _resize(image, height, width):
    resized = tf.image.resize(tf.cast(image, tf.float32), tf.stack([height, width]), method="bilinear",
                              antialias=True)
    return _to_uint8(resized)


@register("resize")
def resize(size: int, width: int | None = None):
    if width is None:
        def op(image, seed):
            del seed
            h, w = tf.shape(image)[0], tf.shape(image)[1]
            short, long = tf.minimum(h, w), tf.maximum(h, w)
            new_long = tf.cast(tf.cast(size, tf.int64) * tf.cast(long, tf.int64) // tf.cast(short, tf.int64),
                               tf.int32)
            return _resize(image, tf.where(h <= w, size, new_long), tf.where(h <= w, new_long, size))
        return op
    return lambda image, seed: _resize(image, size, width)


NUM_RRC_TRIES = 10


def random_resized_crop_box(height, width, uniforms, *, scale, ratio):
    """torchvision RandomResizedCrop.get_params, with its random draws given: `uniforms` [4, 10] in [0, 1) for
    (area, log aspect ratio, top, left) of each try. Returns (top, left, h, w) as int32 scalars."""
    h_f, w_f = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    area = h_f * w_f
    target = area * (scale[0] + uniforms[0] * (scale[1] - scale[0]))
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = tf.exp(log_lo + uniforms[1] * (log_hi - log_lo))
    w = tf.cast(tf.round(tf.sqrt(target * aspect)), tf.int32)
    h = tf.cast(tf.round(tf.sqrt(target / aspect)), tf.int32)
    valid = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    # torch.randint(0, n + 1): uniform over n + 1 positions
    top = tf.cast(tf.floor(uniforms[2] * tf.cast(height - h + 1, tf.float32)), tf.int32)
    left = tf.cast(tf.floor(uniforms[3] * tf.cast(width - w + 1, tf.float32)), tf.int32)
    first = tf.argmax(tf.cast(valid, tf.int32))
    in_ratio = w_f / h_f
    fb_w = tf.where(in_ratio < ratio[0], width,
                    tf.where(in_ratio > ratio[1], tf.cast(tf.round(h_f * ratio[1]), tf.int32), width))
    fb_h = tf.where(in_ratio < ratio[0], tf.cast(tf.round(w_f / ratio[0]), tf.int32), height)
    fallback = tf.stack([(height - fb_h) // 2, (width - fb_w) // 2, fb_h, fb_w])
    chosen = tf.stack([top[first], left[first], h[first], w[first]])
    return tf.unstack(tf.where(tf.reduce_any(valid), chosen, fallback))


@register("random_resized_crop")
def random_resized_crop(size: int, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0)):
    if not (0 < scale[0] <= scale[1] <= 1.0) or not (0 < ratio[0] <= ratio[1]):
        raise ValueError(f"random_resized_crop: scale={scale} needs 0 < lo <= hi <= 1, ratio={ratio} 0 < lo <= hi")

    def op(image, seed):
        shape = tf.shape(image)
        uniforms = tf.random.stateless_uniform([4, NUM_RRC_TRIES], seed)
        top, left, h, w = random_resized_crop_box(shape[0], shape[1], uniforms, scale=scale, ratio=ratio)
        return _resize(image[top:top + h, left:left + w], size, size)
    return op


@register("center_crop")
def center_crop(size: int, width: int | None = None):
    out_h, out_w = size, width or size

    def op(image, seed):
        del seed
        h, w = tf.shape(image)[0], tf.shape(image)[1]
        pad_h, pad_w = tf.maximum(out_h - h, 0), tf.maximum(out_w - w, 0)
        image = tf.pad(image, [[pad_h // 2, pad_h - pad_h // 2], [pad_w // 2, pad_w - pad_w // 2], [0, 0]])
        h, w = tf.shape(image)[0], tf.shape(image)[1]
        # torchvision: int(round((h - out_h) / 2.0)), Python's round half to even = tf.round
        top = tf.cast(tf.round(tf.cast(h - out_h, tf.float32) / 2.0), tf.int32)
        left = tf.cast(tf.round(tf.cast(w - out_w, tf.float32) / 2.0), tf.int32)
        return image[top:top + out_h, left:left + out_w]
    return op


@register("pad_crop")
def pad_crop(padding: int = 4):
    def op(image, seed):
        padded = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
        return tf.image.stateless_random_crop(padded, tf.stack(_hwc(image)), seed=seed)
    return op


@register("flip")
def flip():
    return lambda image, seed: tf.image.stateless_random_flip_left_right(image, seed=seed)


@register("randaugment")
def randaugment_op(num_ops: int = 2):
    return lambda image, seed: randaugment.rand_augment(image, seed, num_ops=num_ops)


@register("cutout")
def cutout_op(max_fraction: float = 0.5):
    return lambda image, seed: randaugment.cutout(image, seed, max_fraction=max_fraction)


@register("cutout_pil")
def cutout_pil_op(factor: float = 0.5):
    if not 0 < factor <= 1:
        raise ValueError(f"cutout_pil: factor={factor} must lie in (0, 1]")
    return lambda image, seed: l2d_augment.cutout_pil(image, seed, factor)


@register("l2d_randaugment")
def l2d_randaugment_op(num_ops: int = 2, probability: float = 0.5):
    if num_ops < 1 or not 0 <= probability <= 1:
        raise ValueError(f"l2d_randaugment: num_ops={num_ops} must be >= 1 and probability={probability} in [0, 1]")
    return lambda image, seed: l2d_augment.rand_augment(image, seed, num_ops, probability)


@register("normalize")
def normalize(mean, std):
    mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    if len(mean) != len(std) or any(s <= 0 for s in std):
        raise ValueError(f"normalize: mean {mean} and std {std} need the same length and positive stds")

    def op(image, seed):
        del seed
        image = tf.cast(image, tf.float32) / 255.0
        return (image - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)
    return op


def parse(view: str) -> list[tuple[str, tuple, dict]]:
    """'resize(256)|center_crop(224)' -> [('resize', (256,), {}), ('center_crop', (224,), {})], names checked."""
    steps = []
    for part in filter(None, (p.strip() for p in (view or "").split("|"))):
        try:
            node = ast.parse(part, mode="eval").body
            if isinstance(node, ast.Name):
                name, args, kwargs = node.id, (), {}
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                name = node.func.id
                args = tuple(ast.literal_eval(a) for a in node.args)
                kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
            else:
                raise ValueError
        except (SyntaxError, ValueError) as e:
            raise ValueError(f"preprocessing op {part!r} in {view!r}: write name or name(literal args)") from e
        if name not in OPS:
            raise ValueError(f"unknown preprocessing op {name!r} in {view!r}; valid ops: {', '.join(OPS.names())}")
        steps.append((name, args, kwargs))
    return steps


def build(view: str) -> list[Callable]:
    """The ops of a view string, in order; bad arguments fail here, naming the op and its signature."""
    ops = []
    for name, args, kwargs in parse(view):
        try:
            ops.append(OPS.get(name)(*args, **kwargs))
        except (TypeError, ValueError) as e:
            raise ValueError(f"preprocessing op {name}{inspect.signature(OPS.get(name))} in {view!r}: {e}") from e
    return ops
