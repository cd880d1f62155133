"""Swin-T in timm's layout: the window / shift rule and the shifted-window mask by hand, the converter's mapping on
a state dict restated from timm's module names (torch-free), and logits equal to timm's at 224 and at 64 px (where
the windows shrink and a stage is padded) on random weights (parity extra)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kdjax import models
from kdjax.models import swin


def test_window_rule_and_relative_index():
    assert swin.window_and_shift(56) == (7, 3) and swin.window_and_shift(7) == (7, 0)
    assert swin.window_and_shift(4) == (4, 0)
    index = swin.relative_position_index(2)  # tokens (0,0), (0,1), (1,0), (1,1); (dy + 1) * 3 + (dx + 1)
    np.testing.assert_array_equal(index, [[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]])


def test_shift_mask_separates_the_rolled_regions():
    """4x4 map, window 2, shift 1: after the roll the bottom-right window holds tokens of 4 regions."""
    mask = swin.shift_mask(4, 4, 2, 1)
    assert mask.shape == (4, 4, 4)
    assert not mask[0].any()                                   # top-left window: one region
    np.testing.assert_array_equal(mask[3] == 0, np.eye(4, dtype=bool))  # bottom-right: four regions
    np.testing.assert_array_equal(mask[1] == 0, [[1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1]])


def timm_shapes(num_classes=10):
    sd = {"patch_embed.proj.weight": (96, 3, 4, 4), "patch_embed.proj.bias": (96,), "patch_embed.norm.weight": (96,),
          "patch_embed.norm.bias": (96,), "norm.weight": (768,), "norm.bias": (768,),
          "head.fc.weight": (num_classes, 768), "head.fc.bias": (num_classes,)}
    c = 96
    for stage, (depth, heads) in enumerate(zip(swin.DEPTHS, swin.HEADS)):
        if stage:
            p = f"layers.{stage}.downsample"
            sd.update({f"{p}.norm.weight": (4 * c,), f"{p}.norm.bias": (4 * c,),
                       f"{p}.reduction.weight": (2 * c, 4 * c)})
            c *= 2
        window = 7  # at 224 every stage's window is 7
        for i in range(depth):
            p = f"layers.{stage}.blocks.{i}"
            sd.update({f"{p}.norm1.weight": (c,), f"{p}.norm1.bias": (c,), f"{p}.norm2.weight": (c,),
                       f"{p}.norm2.bias": (c,), f"{p}.attn.qkv.weight": (3 * c, c), f"{p}.attn.qkv.bias": (3 * c,),
                       f"{p}.attn.proj.weight": (c, c), f"{p}.attn.proj.bias": (c,),
                       f"{p}.attn.relative_position_bias_table": ((2 * window - 1) ** 2, heads),
                       f"{p}.mlp.fc1.weight": (4 * c, c), f"{p}.mlp.fc1.bias": (4 * c,),
                       f"{p}.mlp.fc2.weight": (c, 4 * c), f"{p}.mlp.fc2.bias": (c,)})
    return sd


def test_every_tensor_lands_where_timm_puts_it():
    rng = np.random.default_rng(0)
    sd = {k: (0.02 * rng.normal(size=s)).astype(np.float32) for k, s in timm_shapes().items()}
    variables = models.from_torch("swin_t", sd, source="timm")
    assert sum(np.size(x) for x in jax.tree.leaves(variables)) == sum(np.size(v) for v in sd.values())
    p = variables["params"]
    np.testing.assert_array_equal(p["layers_2_downsample"]["reduction"]["kernel"], sd["layers.2.downsample.reduction.weight"].T)
    np.testing.assert_array_equal(p["layers_3_blocks_1"]["relative_position_bias_table"],
                                  sd["layers.3.blocks.1.attn.relative_position_bias_table"])
    np.testing.assert_array_equal(p["patch_embed"]["kernel"], np.transpose(sd["patch_embed.proj.weight"], (2, 3, 1, 0)))
    del sd["layers.1.blocks.0.mlp.fc1.bias"]
    with pytest.raises(ValueError, match="no tensor 'layers.1.blocks.0.mlp.fc1.bias'"):
        models.from_torch("swin_t", sd, source="timm")


def test_a_swin_built_for_one_size_names_it():
    model = models.get_model("swin_t", num_classes=3, img_size=64)
    with pytest.raises(ValueError, match="built for 64x64 images.*got 96x96"):
        jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 96, 96, 3)), train=False))


@pytest.mark.parity
@pytest.mark.parametrize("size", [224, 64])
def test_converted_swin_gives_timms_logits(size):
    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    net = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, num_classes=10, img_size=size).eval()
    with torch.no_grad():
        for name, param in net.named_parameters():
            if "relative_position_bias_table" in name or name.endswith("bias"):
                param.normal_(0, 0.5)  # timm initialises them at 0 / 0.02: make each one's place visible
    x = np.random.default_rng(1).uniform(size=(1, size, size, 3)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    variables = models.from_torch("swin_t", net.state_dict(), source="timm", img_size=size)
    got = models.get_model("swin_t", num_classes=10, img_size=size).apply(variables, x, train=False)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
