"""ImageNet mobile backbones in the layouts of the weights their users already have, for the multi-label pairs of
the 3D paper (Tables B.2, B.3) and L2D:

- `mobilenet_v2`: torchvision `mobilenet_v2` (width 1.0; ReLU6; the t = 1 block has no expand conv; last conv
  320 -> 1280; classifier Dropout(0.2) + Linear). Reference: pytorch/vision torchvision/models/mobilenetv2.py.
- `shufflenet_v2_x1_0`: torchvision `shufflenet_v2_x1_0` (conv 3x3/2 -> max-pool 3x3/2 -> stages of 4, 8, 4
  blocks of 116, 232, 464 channels -> conv5 1x1 to 1024 -> mean -> Linear). Reference:
  pytorch/vision torchvision/models/shufflenetv2.py.
- `repvgg_a0`: timm `repvgg_a0` in its training-time form (every block: 3x3 conv-BN + 1x1 conv-BN + identity BN
  where shapes allow, summed, ReLU; stem = such a block 3 -> 48, stride 2; stages of 2, 4, 14, 1 blocks of 48, 96,
  192, 1280 channels, each starting with stride 2). Reference: huggingface/pytorch-image-models
  timm/models/byobnet.py (RepVggBlock). `fuse_repvgg` folds the branches into one 3x3 conv per block (deploy form).

Taps: `feats` = the outputs at strides 4 (MobileNetV2: 2, 4), 8, 16, 32; `feature_map` = the map the pool reads
(MobileNetV2: 1280 channels after the last conv; ShuffleNetV2: 1024 after conv5; RepVGG: 1280), `pooled`.
Converters: `kdjax.models.from_torch(name, state_dict, source='torchvision' | 'timm')`.
"""
import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from kdjax.models import layers, torch_convert

NAMES = ("mobilenet_v2", "shufflenet_v2_x1_0", "repvgg_a0")


def _bn(train, dtype, name):
    return layers.batch_norm(train, dtype=dtype, name=name)


def _conv(features, kernel, stride=1, groups=1, dtype=jnp.float32, name=None):
    return layers.conv(features, kernel, stride, groups=groups, dtype=dtype, name=name)


def _head(pooled, num_classes, dtype, dropout=0.0, train=False):
    if not num_classes:
        return pooled
    pooled = nn.Dropout(dropout, deterministic=not train)(pooled) if dropout else pooled
    return nn.Dense(num_classes, kernel_init=layers.torch_linear_kernel, dtype=dtype, name="fc")(pooled)


# ---- MobileNetV2 (torchvision) --------------------------------------------------------------------------------------
_MBV2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
_MBV2_TAPS = (3, 6, 13, 17)  # features[i] at strides 4, 8, 16, 32 (before the last 1x1 conv)


class MobileNetV2Block(nn.Module):
    features: int
    stride: int
    expansion: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        hidden = int(round(x.shape[-1] * self.expansion))
        y = x
        if self.expansion != 1:
            y = nn.relu6(_bn(train, self.dtype, "expand_bn")(_conv(hidden, 1, dtype=self.dtype, name="expand")(y)))
        y = _conv(hidden, 3, self.stride, groups=hidden, dtype=self.dtype, name="depthwise")(y)
        y = nn.relu6(_bn(train, self.dtype, "depthwise_bn")(y))
        y = _bn(train, self.dtype, "project_bn")(_conv(self.features, 1, dtype=self.dtype, name="project")(y))
        return x + y if self.stride == 1 and x.shape[-1] == self.features else y


class MobileNetV2(nn.Module):
    num_classes: int
    frozen_bn: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        train_bn = layers.bn_train(train, self.frozen_bn)
        x = _conv(32, 3, 2, dtype=self.dtype, name="features_0")(x.astype(self.dtype))
        x = nn.relu6(_bn(train_bn, self.dtype, "features_0_bn")(x))
        feats, index = [], 1
        for t, c, n, s in _MBV2:
            for i in range(n):
                x = MobileNetV2Block(c, s if i == 0 else 1, t, dtype=self.dtype, name=f"features_{index}")(
                    x, train=train_bn)
                if index in _MBV2_TAPS:
                    feats.append(x)
                index += 1
        x = nn.relu6(_bn(train_bn, self.dtype, "features_18_bn")(_conv(1280, 1, dtype=self.dtype,
                                                                        name="features_18")(x)))
        pooled = layers.global_avg_pool(x)
        logits = _head(pooled, self.num_classes, self.dtype, dropout=0.2, train=train)
        return logits.astype(jnp.float32), {"feats": feats, "preact_feats": feats, "pooled": pooled,
                                            "feature_map": x}


# ---- ShuffleNetV2 x1.0 (torchvision) --------------------------------------------------------------------------------
class ShuffleUnit(nn.Module):
    features: int
    stride: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        half = self.features // 2
        bn = lambda name: _bn(train, self.dtype, name)  # noqa: E731
        conv = lambda c, k, s=1, g=1, name=None: _conv(c, k, s, g, self.dtype, name)  # noqa: E731
        if self.stride == 1:
            left, right = x[..., :x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
        else:
            c = x.shape[-1]
            left = bn("branch1_1")(conv(c, 3, self.stride, c, name="branch1_0")(x))
            left = nn.relu(bn("branch1_3")(conv(half, 1, name="branch1_2")(left)))
            right = x
        right = nn.relu(bn("branch2_1")(conv(half, 1, name="branch2_0")(right)))
        right = bn("branch2_4")(conv(half, 3, self.stride, half, name="branch2_3")(right))
        right = nn.relu(bn("branch2_6")(conv(half, 1, name="branch2_5")(right)))
        return layers.channel_shuffle(jnp.concatenate([left, right], -1), 2)


class ShuffleNetV2(nn.Module):
    num_classes: int
    repeats: tuple = (4, 8, 4)
    channels: tuple = (24, 116, 232, 464, 1024)
    frozen_bn: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        train_bn = layers.bn_train(train, self.frozen_bn)
        x = _conv(self.channels[0], 3, 2, dtype=self.dtype, name="conv1")(x.astype(self.dtype))
        x = nn.relu(_bn(train_bn, self.dtype, "conv1_bn")(x))
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        feats = [x]
        for stage, (n, c) in enumerate(zip(self.repeats, self.channels[1:4])):
            for i in range(n):
                x = ShuffleUnit(c, 2 if i == 0 else 1, dtype=self.dtype, name=f"stage{stage + 2}_{i}")(x, train=train_bn)
            feats.append(x)
        x = nn.relu(_bn(train_bn, self.dtype, "conv5_bn")(_conv(self.channels[4], 1, dtype=self.dtype,
                                                                 name="conv5")(x)))
        pooled = layers.global_avg_pool(x)
        logits = _head(pooled, self.num_classes, self.dtype)
        return logits.astype(jnp.float32), {"feats": feats, "preact_feats": feats, "pooled": pooled,
                                            "feature_map": x}


# ---- RepVGG-A0 (timm) -----------------------------------------------------------------------------------------------
class RepVGGBlock(nn.Module):
    features: int
    stride: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        out = _bn(train, self.dtype, "conv_kxk_bn")(_conv(self.features, 3, self.stride, dtype=self.dtype,
                                                           name="conv_kxk")(x))
        out = out + _bn(train, self.dtype, "conv_1x1_bn")(_conv(self.features, 1, self.stride, dtype=self.dtype,
                                                                 name="conv_1x1")(x))
        if self.stride == 1 and x.shape[-1] == self.features:
            out = out + _bn(train, self.dtype, "identity")(x)
        return nn.relu(out)


class RepVGG(nn.Module):
    num_classes: int
    depths: tuple = (2, 4, 14, 1)
    widths: tuple = (48, 96, 192, 1280)
    stem_width: int = 48
    frozen_bn: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        train_bn = layers.bn_train(train, self.frozen_bn)
        x = RepVGGBlock(self.stem_width, 2, dtype=self.dtype, name="stem")(x.astype(self.dtype), train=train_bn)
        feats = []
        for s, (n, c) in enumerate(zip(self.depths, self.widths)):
            for i in range(n):
                x = RepVGGBlock(c, 2 if i == 0 else 1, dtype=self.dtype, name=f"stages_{s}_{i}")(x, train=train_bn)
            feats.append(x)
        pooled = layers.global_avg_pool(x)
        logits = _head(pooled, self.num_classes, self.dtype)
        return logits.astype(jnp.float32), {"feats": feats, "preact_feats": feats, "pooled": pooled,
                                            "feature_map": x}


def fuse_repvgg(variables: dict) -> dict:
    """RepVGG's deploy form: per block, the 3x3 kernel and bias of the single conv that equals the three BN'd
    branches with running statistics (Ding et al., CVPR 2021, Sec. 3.3): {block path: (kernel HWIO, bias)}."""
    params, stats = variables["params"], variables["batch_stats"]

    def fold(kernel, p, s):
        std = np.sqrt(np.asarray(s["var"]) + 1e-5)
        return np.asarray(kernel) * (np.asarray(p["scale"]) / std), np.asarray(p["bias"]) - np.asarray(
            p["scale"]) * np.asarray(s["mean"]) / std

    fused = {}
    for name, block in params.items():
        if not (name == "stem" or name.startswith("stages_")):
            continue
        k3, b3 = fold(block["conv_kxk"]["kernel"], block["conv_kxk_bn"], stats[name]["conv_kxk_bn"])
        k1, b1 = fold(block["conv_1x1"]["kernel"], block["conv_1x1_bn"], stats[name]["conv_1x1_bn"])
        kernel, bias = k3.copy(), b3 + b1
        kernel[1:2, 1:2] += k1
        if "identity" in block:
            c = kernel.shape[-1]
            eye = np.zeros((3, 3, c, c), np.float32)
            eye[1, 1] = np.eye(c)
            ki, bi = fold(eye, block["identity"], stats[name]["identity"])
            kernel, bias = kernel + ki, bias + bi
        fused[name] = (kernel, bias)
    return fused


def get_model(name: str, *, num_classes: int, **kw) -> nn.Module:
    return {"mobilenet_v2": MobileNetV2, "shufflenet_v2_x1_0": ShuffleNetV2, "repvgg_a0": RepVGG}[name](
        num_classes=num_classes, **kw)


# ---- converters -----------------------------------------------------------------------------------------------------
def _conv_bn(sd, params, stats, flax_conv, flax_bn, torch_conv, torch_bn):
    params[flax_conv] = torch_convert.conv(sd, torch_conv)
    params[flax_bn], stats[flax_bn] = torch_convert.batch_norm(sd, torch_bn)


@torch_convert.register("torchvision", ("mobilenet_v2",))
def _mobilenet_v2_from_torch(name, sd):
    params, stats = {}, {}
    _conv_bn(sd, params, stats, "features_0", "features_0_bn", "features.0.0", "features.0.1")
    index = 1
    for t, _, n, _ in _MBV2:
        for _ in range(n):
            p, s, src = {}, {}, f"features.{index}.conv"
            layers_ = (["expand"] if t != 1 else []) + ["depthwise"]
            for i, flax_name in enumerate(layers_):
                _conv_bn(sd, p, s, flax_name, f"{flax_name}_bn", f"{src}.{i}.0", f"{src}.{i}.1")
            _conv_bn(sd, p, s, "project", "project_bn", f"{src}.{len(layers_)}", f"{src}.{len(layers_) + 1}")
            params[f"features_{index}"], stats[f"features_{index}"] = p, s
            index += 1
    _conv_bn(sd, params, stats, "features_18", "features_18_bn", "features.18.0", "features.18.1")
    if "classifier.1.weight" in sd:
        params["fc"] = torch_convert.dense(sd, "classifier.1")
    return {"params": params, "batch_stats": stats}


@torch_convert.register("torchvision", ("shufflenet_v2_x1_0",))
def _shufflenet_v2_from_torch(name, sd):
    params, stats = {}, {}
    _conv_bn(sd, params, stats, "conv1", "conv1_bn", "conv1.0", "conv1.1")
    _conv_bn(sd, params, stats, "conv5", "conv5_bn", "conv5.0", "conv5.1")
    for stage, n in zip((2, 3, 4), (4, 8, 4)):
        for i in range(n):
            p, s, src = {}, {}, f"stage{stage}.{i}"
            pairs = [("branch2_0", "branch2_1"), ("branch2_3", "branch2_4"), ("branch2_5", "branch2_6")]
            if i == 0:
                pairs += [("branch1_0", "branch1_1"), ("branch1_2", "branch1_3")]
            for c, b in pairs:
                _conv_bn(sd, p, s, c, b, f"{src}.{c.replace('_', '.')}", f"{src}.{b.replace('_', '.')}")
            params[f"stage{stage}_{i}"], stats[f"stage{stage}_{i}"] = p, s
    if "fc.weight" in sd:
        params["fc"] = torch_convert.dense(sd, "fc")
    return {"params": params, "batch_stats": stats}


@torch_convert.register("timm", ("repvgg_a0",))
def _repvgg_from_timm(name, sd):
    params, stats = {}, {}
    blocks = {"stem": "stem"}
    blocks.update({f"stages_{s}_{i}": f"stages.{s}.{i}" for s, n in enumerate((2, 4, 14, 1)) for i in range(n)})
    for flax_name, src in blocks.items():
        p, s = {}, {}
        for branch in ("conv_kxk", "conv_1x1"):
            _conv_bn(sd, p, s, branch, f"{branch}_bn", f"{src}.{branch}.conv", f"{src}.{branch}.bn")
        if f"{src}.identity.weight" in sd:
            p["identity"], s["identity"] = torch_convert.batch_norm(sd, f"{src}.identity")
        params[flax_name], stats[flax_name] = p, s
    if "head.fc.weight" in sd:
        params["fc"] = torch_convert.dense(sd, "head.fc")
    return {"params": params, "batch_stats": stats}


