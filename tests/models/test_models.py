"""Model output shapes and taps (spec single_label_kd.md section 1), registry errors."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kdjax import models

# name -> (feats shapes (H, C) at 32x32 input, pooled dim); from spec section 1 and paper 004 Sec 10.1.
EXPECTED_TAPS = {
    "resnet8x4": ([(32, 32), (32, 64), (16, 128), (8, 256)], 256),
    "resnet32x4": ([(32, 32), (32, 64), (16, 128), (8, 256)], 256),
    "resnet20": ([(32, 16), (32, 16), (16, 32), (8, 64)], 64),
    "resnet56": ([(32, 16), (32, 16), (16, 32), (8, 64)], 64),
    "vgg8": ([(32, 64), (16, 128), (8, 256), (4, 512), (4, 512)], 512),
    "vgg13": ([(32, 64), (16, 128), (8, 256), (4, 512), (4, 512)], 512),
    "vgg9": ([(32, 64), (16, 128), (8, 256), (4, 512), (2, 512)], 512),
    "vgg4": ([(32, 64), (16, 128), (8, 512)], 512),
}
# Parameter counts of the PyTorch reference models (mdistiller / RepDistiller, 100 classes).
EXPECTED_PARAMS = {"resnet8x4": 1_233_540, "resnet32x4": 7_433_860, "resnet20": 278_324, "resnet56": 861_620,
                   "vgg8": 3_965_028, "vgg13": 9_462_180}


def _shapes(name, size=32, batch=2):
    model = models.get_model(name, num_classes=100)
    return jax.eval_shape(lambda: model.init_with_output(jax.random.key(0), jnp.zeros((batch, size, size, 3)),
                                                         train=False))


@pytest.mark.parametrize("name", sorted(EXPECTED_TAPS))
def test_taps_and_logits(name):
    (logits, taps), variables = _shapes(name)
    assert logits.shape == (2, 100) and logits.dtype == jnp.float32
    feats, pooled = EXPECTED_TAPS[name]
    assert [(f.shape[1], f.shape[3]) for f in taps["feats"]] == feats
    assert [f.shape for f in taps["preact_feats"]] == [f.shape for f in taps["feats"]]
    assert taps["pooled"].shape == (2, pooled)
    assert "batch_stats" in variables


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_parameter_counts_match_pytorch_references(name):
    _, variables = _shapes(name)
    assert sum(x.size for x in jax.tree.leaves(variables["params"])) == EXPECTED_PARAMS[name]


def test_every_registered_model_builds():
    for name in models.model_names():
        (logits, taps), _ = _shapes(name, size=32, batch=1)
        assert logits.shape == (1, 100), name
        assert taps["pooled"].ndim == 2, name


def test_preact_relates_to_feats_by_relu():
    model = models.get_model("resnet8x4", num_classes=10, width=0.25)
    x = jax.random.normal(jax.random.key(1), (2, 16, 16, 3))
    variables = model.init(jax.random.key(0), x, train=False)
    _, taps = model.apply(variables, x, train=False)
    for f, p in zip(taps["feats"][1:], taps["preact_feats"][1:]):
        np.testing.assert_allclose(f, nn.relu(p), atol=1e-6)
        assert float(jnp.min(p)) < 0  # really pre-activation


def test_vgg_benchmark_pool3_only_for_64px():
    """mdistiller VGG skips the pool after block 3 for 32x32 and applies it for 64x64 (Tiny ImageNet)."""
    (_, t32), _ = _shapes("vgg8", size=32)
    (_, t64), _ = _shapes("vgg8", size=64)
    assert t32["feats"][3].shape[1] == 4 and t64["feats"][3].shape[1] == 8
    assert t32["feats"][4].shape[1] == 4 and t64["feats"][4].shape[1] == 4


def test_train_mode_updates_batch_stats_eval_mode_does_not():
    model = models.get_model("vgg4", num_classes=10, width=0.125)
    x = jax.random.normal(jax.random.key(1), (4, 8, 8, 1))
    variables = model.init(jax.random.key(0), x, train=False)
    _, updated = model.apply(variables, x, train=True, mutable=["batch_stats"])
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), variables["batch_stats"], updated["batch_stats"])
    assert all(jax.tree.leaves(changed))


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match=r"Unknown model 'resnet9000'.*resnet32x4.*vgg9"):
        models.get_model("resnet9000", num_classes=10)


def test_too_small_input_fails_clearly():
    model = models.get_model("vgg9", num_classes=10)
    with pytest.raises(ValueError, match="too small"):
        model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)), train=False)
