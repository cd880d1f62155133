"""Swin-T (Liu et al., ICCV 2021) in timm's layout (`swin_tiny_patch4_window7_224`; reference:
huggingface/pytorch-image-models timm/models/swin_transformer.py), NHWC throughout, for the multi-label pairs of the
3D paper (Table B.2: Swin-T -> ResNet-18 / MobileNetV2 on VOC) and L2D.

Patch embedding 4x4/4 (96 channels) + LayerNorm; four stages of 2, 2, 6, 2 blocks (3, 6, 12, 24 heads), stages 2-4
starting with patch merging (the 2x2 neighbours concatenated in timm's order, LayerNorm, Linear 4C -> 2C without
bias); a block: x + W-MSA(LN(x)), then x + MLP(LN(x)) (GELU, ratio 4); windows of 7 with a relative position bias,
every second block shifted by 3 with timm's region mask (-100); final LayerNorm, mean over positions, Linear.
As timm, the model is built for one image size (`img_size`, default 224): a stage whose resolution is at most the
window uses a window of that resolution and no shift (so a Swin-T built for 224 has unshifted stage-4 blocks, and
relative-position tables sized by those windows), and a resolution that the window does not divide is zero-padded
at the bottom / right before partitioning. Stochastic depth (timm's drop_path 0.1 when training from ImageNet) is
not applied: the multi-label recipes fine-tune without it (kdjax's choice).
Taps: `feats` = the four stage outputs [B, H/4..H/32, W/.., C], `feature_map` = the final LayerNorm's output (what
the pool and the ML-Decoder read), `pooled`.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from kdjax.models import layers, torch_convert

NAMES = ("swin_t",)
DEPTHS, HEADS, EMBED, WINDOW = (2, 2, 6, 2), (3, 6, 12, 24), 96, 7


def window_and_shift(resolution: int, window: int = WINDOW) -> tuple[int, int]:
    """timm's `_calc_window_shift`: a resolution at most the window uses that resolution and no shift."""
    return (resolution, 0) if resolution <= window else (window, window // 2)


def relative_position_index(window: int) -> np.ndarray:
    coords = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing="ij")).reshape(2, -1)
    relative = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0) + (window - 1)
    return relative[..., 0] * (2 * window - 1) + relative[..., 1]


def shift_mask(height: int, width: int, window: int, shift: int) -> np.ndarray:
    """[windows, N, N] additive mask of the shifted windows: -100 between tokens of different regions."""
    regions = np.zeros((height, width))
    bounds = ((0, -window), (-window, -shift), (-shift, None))
    count = 0
    for h0, h1 in bounds:
        for w0, w1 in bounds:
            regions[h0:h1, w0:w1] = count
            count += 1
    windows = _partition(regions[None, :, :, None], window).reshape(-1, window * window)
    return np.where(windows[:, None, :] != windows[:, :, None], -100.0, 0.0).astype(np.float32)


def _partition(x, window):
    b, h, w, c = x.shape
    x = x.reshape(b, h // window, window, w // window, window, c)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def _merge(windows, window, b, h, w):
    c = windows.shape[-1]
    x = windows.reshape(b, h // window, w // window, window, window, c)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)


def _linear(features, name, dtype, use_bias=True):
    return nn.Dense(features, use_bias=use_bias, dtype=dtype, name=name,
                    kernel_init=nn.initializers.truncated_normal(0.02), bias_init=nn.initializers.zeros)


class SwinBlock(nn.Module):
    heads: int
    window: int
    shift: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        b, h, w, c = x.shape
        y = nn.LayerNorm(epsilon=1e-5, dtype=self.dtype, name="norm1")(x)
        if self.shift:
            y = jnp.roll(y, (-self.shift, -self.shift), axis=(1, 2))
        hp, wp = -(-h // self.window) * self.window, -(-w // self.window) * self.window
        y = jnp.pad(y, ((0, 0), (0, hp - h), (0, wp - w), (0, 0)))
        tokens = _partition(y, self.window)
        n, head_dim = self.window * self.window, c // self.heads
        qkv = _linear(3 * c, "qkv", self.dtype)(tokens).reshape(-1, n, 3, self.heads, head_dim)
        q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
        table = self.param("relative_position_bias_table", nn.initializers.truncated_normal(0.02),
                           ((2 * self.window - 1) ** 2, self.heads))
        bias = table[relative_position_index(self.window).reshape(-1)].reshape(n, n, self.heads).transpose(2, 0, 1)
        logits = (q * head_dim ** -0.5) @ k.swapaxes(-1, -2) + bias
        if self.shift:
            mask = jnp.asarray(shift_mask(hp, wp, self.window, self.shift))
            logits = (logits.reshape(b, -1, self.heads, n, n) + mask[None, :, None]).reshape(-1, self.heads, n, n)
        attended = (jax.nn.softmax(logits.astype(jnp.float32), -1).astype(v.dtype) @ v)
        attended = _linear(c, "proj", self.dtype)(attended.transpose(0, 2, 1, 3).reshape(-1, n, c))
        y = _merge(attended, self.window, b, hp, wp)[:, :h, :w]
        if self.shift:
            y = jnp.roll(y, (self.shift, self.shift), axis=(1, 2))
        x = x + y
        z = nn.LayerNorm(epsilon=1e-5, dtype=self.dtype, name="norm2")(x)
        z = _linear(c, "fc2", self.dtype)(nn.gelu(_linear(4 * c, "fc1", self.dtype)(z), approximate=False))
        return x + z


class PatchMerging(nn.Module):
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        b, h, w, c = x.shape
        x = jnp.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
        h, w = x.shape[1:3]
        # timm: reshape(B, H/2, 2, W/2, 2, C).permute(0, 1, 3, 4, 2, 5): the column offset before the row offset
        x = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 4, 2, 5).reshape(b, h // 2, w // 2, 4 * c)
        x = nn.LayerNorm(epsilon=1e-5, dtype=self.dtype, name="norm")(x)
        return _linear(2 * c, "reduction", self.dtype, use_bias=False)(x)


class SwinT(nn.Module):
    num_classes: int
    img_size: int = 224
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        del train  # no dropout, no BatchNorm
        if x.shape[1] != self.img_size or x.shape[2] != self.img_size:
            raise ValueError(f"swin_t was built for {self.img_size}x{self.img_size} images (its windows and "
                             f"relative-position tables depend on it), got {x.shape[1]}x{x.shape[2]}; set the "
                             f"model's img_size")
        x = nn.Conv(EMBED, (4, 4), strides=(4, 4), padding="VALID", dtype=self.dtype, name="patch_embed")(
            x.astype(self.dtype))
        x = nn.LayerNorm(epsilon=1e-5, dtype=self.dtype, name="patch_embed_norm")(x)
        feats = []
        for stage, (depth, heads) in enumerate(zip(DEPTHS, HEADS)):
            if stage:
                x = PatchMerging(dtype=self.dtype, name=f"layers_{stage}_downsample")(x)
            window, shift = window_and_shift(min(x.shape[1], x.shape[2]))
            for i in range(depth):
                x = SwinBlock(heads, window, shift if i % 2 else 0, dtype=self.dtype,
                              name=f"layers_{stage}_blocks_{i}")(x)
            feats.append(x)
        feature_map = nn.LayerNorm(epsilon=1e-5, dtype=self.dtype, name="norm")(x)
        pooled = layers.global_avg_pool(feature_map)
        logits = pooled
        if self.num_classes:
            logits = _linear(self.num_classes, "fc", self.dtype)(pooled)
        return logits.astype(jnp.float32), {"feats": feats, "preact_feats": feats, "pooled": pooled,
                                            "feature_map": feature_map}


def get_model(name: str, *, num_classes: int, **kw) -> SwinT:
    return SwinT(num_classes=num_classes, **kw)


def _layer_norm(sd, name):
    return {"scale": sd[f"{name}.weight"], "bias": sd[f"{name}.bias"]}


@torch_convert.register("timm", NAMES)
def _swin_from_timm(name, sd):
    params = {"patch_embed": torch_convert.conv(sd, "patch_embed.proj", bias=True),
              "patch_embed_norm": _layer_norm(sd, "patch_embed.norm"), "norm": _layer_norm(sd, "norm")}
    for stage, depth in enumerate(DEPTHS):
        if stage:
            src = f"layers.{stage}.downsample"
            params[f"layers_{stage}_downsample"] = {"norm": _layer_norm(sd, f"{src}.norm"),
                                                    "reduction": torch_convert.dense(sd, f"{src}.reduction",
                                                                                     bias=False)}
        for i in range(depth):
            src = f"layers.{stage}.blocks.{i}"
            params[f"layers_{stage}_blocks_{i}"] = {
                "norm1": _layer_norm(sd, f"{src}.norm1"), "norm2": _layer_norm(sd, f"{src}.norm2"),
                "qkv": torch_convert.dense(sd, f"{src}.attn.qkv"), "proj": torch_convert.dense(sd, f"{src}.attn.proj"),
                "relative_position_bias_table": sd[f"{src}.attn.relative_position_bias_table"],
                "fc1": torch_convert.dense(sd, f"{src}.mlp.fc1"), "fc2": torch_convert.dense(sd, f"{src}.mlp.fc2")}
    if "head.fc.weight" in sd:
        params["fc"] = torch_convert.dense(sd, "head.fc")
    return {"params": params}
