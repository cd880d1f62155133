"""Model output shapes and taps (mdistiller / RepDistiller layouts), registry errors."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kdjax import models

# name -> (feats shapes (H, C) at 32x32 input, pooled dim); from spec section 1 and Srinivas & Fleuret Sec 10.1.
EXPECTED_TAPS = {
    "resnet8x4": ([(32, 32), (32, 64), (16, 128), (8, 256)], 256),
    "resnet32x4": ([(32, 32), (32, 64), (16, 128), (8, 256)], 256),
    "resnet20": ([(32, 16), (32, 16), (16, 32), (8, 64)], 64),
    "resnet56": ([(32, 16), (32, 16), (16, 32), (8, 64)], 64),
    "vgg8": ([(32, 64), (16, 128), (8, 256), (4, 512), (4, 512)], 512),
    "vgg13": ([(32, 64), (16, 128), (8, 256), (4, 512), (4, 512)], 512),
    "vgg9": ([(32, 64), (16, 128), (8, 256), (4, 512), (2, 512)], 512),
    "vgg4": ([(32, 64), (16, 128), (8, 512)], 512),
    "wrn_40_2": ([(32, 16), (32, 32), (16, 64), (8, 128)], 128),
    "wrn_16_2": ([(32, 16), (32, 32), (16, 64), (8, 128)], 128),
    "wrn_40_1": ([(32, 16), (32, 16), (16, 32), (8, 64)], 64),
    "resnet50_cifar": ([(32, 64), (32, 256), (16, 512), (8, 1024), (4, 2048)], 2048),
    "mobilenetv2": ([(16, 16), (16, 12), (8, 16), (4, 48), (2, 160)], 1280),
    "shufflev1": ([(32, 24), (16, 240), (8, 480), (4, 960)], 960),
    "shufflev2": ([(32, 24), (16, 116), (8, 232), (4, 464)], 1024),
}
# Parameter counts of the PyTorch reference models (mdistiller / RepDistiller, 100 classes).
EXPECTED_PARAMS = {"resnet8x4": 1_233_540, "resnet32x4": 7_433_860, "resnet20": 278_324, "resnet56": 861_620,
                   "vgg8": 3_965_028, "vgg13": 9_462_180}


# Published parameter counts in millions, rounded to 2 decimals (CRD / ReviewKD papers' model tables).
PUBLISHED_MILLIONS = {"wrn_40_2": 2.26, "wrn_16_2": 0.70, "wrn_40_1": 0.57, "resnet50_cifar": 23.71,
                      "mobilenetv2": 0.81, "shufflev1": 0.95, "shufflev2": 1.36}


def _shapes(name, size=32, batch=2):
    # Swin is built for one input size (its windows depend on it)
    model = models.get_model(name, num_classes=100, **({"img_size": size} if name == "swin_t" else {}))
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


@pytest.mark.parametrize("name", sorted(PUBLISHED_MILLIONS))
def test_parameter_counts_match_published_millions(name):
    _, variables = _shapes(name)
    count = sum(x.size for x in jax.tree.leaves(variables["params"]))
    assert round(count / 1e6, 2) == PUBLISHED_MILLIONS[name]


def test_wrn_preact_taps_are_the_next_bn_of_the_raw_outputs():
    """f1_pre = BN1 of stage 2's first block on f1; f3_pre = final BN on f3; pooled = mean relu(f3_pre)."""
    model = models.get_model("wrn_16_2", num_classes=10)
    x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
    variables = model.init(jax.random.key(1), x, train=False)
    variables = jax.tree.map(lambda v: v + 0.3 * jax.random.uniform(jax.random.key(2), v.shape), variables)
    _, taps = model.apply(variables, x, train=False)

    def bn(v, path_params, path_stats):
        return ((v - path_stats["mean"]) / np.sqrt(path_stats["var"] + 1e-5) * path_params["scale"]
                + path_params["bias"])
    p, s = variables["params"]["stage2_block0"]["BatchNorm_0"], variables["batch_stats"]["stage2_block0"]["BatchNorm_0"]
    np.testing.assert_allclose(taps["preact_feats"][1], bn(taps["feats"][1], p, s), rtol=1e-4, atol=1e-4)
    p, s = variables["params"]["BatchNorm_0"], variables["batch_stats"]["BatchNorm_0"]
    np.testing.assert_allclose(taps["preact_feats"][3], bn(taps["feats"][3], p, s), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(taps["pooled"], np.maximum(taps["preact_feats"][3], 0).mean((1, 2)), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_array_equal(taps["preact_bn"][3][0], p["scale"])


def test_channel_shuffle_follows_torch_view_permute_order():
    from kdjax.models import layers
    x = np.arange(2 * 6).reshape(1, 1, 2, 6).astype(np.float32)
    nchw = x.transpose(0, 3, 1, 2)  # torch: view(N, g, C/g, H, W).permute(0, 2, 1, 3, 4)
    expected = nchw.reshape(1, 3, 2, 1, 2).transpose(0, 2, 1, 3, 4).reshape(1, 6, 1, 2).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(layers.channel_shuffle(jnp.asarray(x), 3), expected)


def test_shufflev1_shortcut_pool_counts_zero_padding():
    """torch AvgPool2d(3, 2, padding=1) divides by 9 at the borders too (count_include_pad=True)."""
    from kdjax.models.shufflenet import avg_pool_3x3_s2_with_zero_pad
    x = np.random.RandomState(0).rand(1, 4, 4, 2).astype(np.float32)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    expected = np.array([[padded[0, 2 * i:2 * i + 3, 2 * j:2 * j + 3].sum((0, 1)) / 9 for j in range(2)]
                         for i in range(2)])[None]
    np.testing.assert_allclose(avg_pool_3x3_s2_with_zero_pad(jnp.asarray(x)), expected, rtol=1e-6)


def test_every_registered_model_builds():
    for name in models.model_names():
        (logits, taps), _ = _shapes(name, size=32, batch=1)
        assert logits.shape == (1, 100), name
        assert taps["pooled"].ndim == 2, name


@pytest.mark.parametrize("name", ["resnet8x4", "resnet50_cifar", "shufflev1", "shufflev2"])
def test_preact_relates_to_feats_by_relu(name):
    """feats = relu(preact); ShuffleV2's preact is the unshuffled concatenation (mdistiller), so feats =
    shuffle(relu(preact))."""
    from kdjax.models import layers
    model = models.get_model(name, num_classes=10, width=0.25)
    x = jax.random.normal(jax.random.key(1), (2, 16, 16, 3))
    variables = model.init(jax.random.key(0), x, train=False)
    _, taps = model.apply(variables, x, train=False)
    for f, p in zip(taps["feats"][1:], taps["preact_feats"][1:]):
        expected = layers.channel_shuffle(nn.relu(p), 2) if name == "shufflev2" else nn.relu(p)
        np.testing.assert_allclose(f, expected, atol=1e-6)
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
    with pytest.raises(ValueError, match=r"unknown model 'resnet9000'.*resnet32x4.*vgg9"):
        models.get_model("resnet9000", num_classes=10)


def test_too_small_input_fails_clearly():
    model = models.get_model("vgg9", num_classes=10)
    with pytest.raises(ValueError, match="too small"):
        model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)), train=False)


@pytest.mark.parametrize("hw", [(4, 6), (5, 7)])
def test_max_pool_2x2_equals_flax_max_pool_with_its_gradient(hw):
    from kdjax.models import layers
    x = jax.random.normal(jax.random.key(0), (2, *hw, 3))  # distinct values: no ties
    reference = lambda v: nn.max_pool(v, (2, 2), strides=(2, 2))
    np.testing.assert_array_equal(layers.max_pool_2x2(x), reference(x))
    cot = jax.random.normal(jax.random.key(1), reference(x).shape)
    np.testing.assert_array_equal(jax.grad(lambda v: jnp.sum(layers.max_pool_2x2(v) * cot))(x),
                                  jax.grad(lambda v: jnp.sum(reference(v) * cot))(x))


def test_max_pool_2x2_sends_a_tied_windows_gradient_to_its_first_maximum_as_torch():
    """A constant background gives equal positive values in a window; torch's max_pool2d (argmax) and flax's
    nn.max_pool send the whole gradient to the first of them in row-major order. Sharing it changes input
    gradients: the input-gradient norm of a conv -> ReLU -> pool net differs (what the Jacobian-norm penalty sees)."""
    from kdjax.models import layers
    x = jnp.array([[1.0, 1.0, 0.0, 2.0], [1.0, 1.0, 2.0, 2.0], [0.0, 3.0, 5.0, 4.0], [3.0, 3.0, 5.0, 5.0]])
    grad = jax.grad(lambda v: jnp.sum(layers.max_pool_2x2(v[None, :, :, None])))(x)
    expected = np.zeros((4, 4), np.float32)
    expected[0, 0] = expected[0, 3] = expected[2, 1] = expected[2, 2] = 1.0  # first maximum of each window
    np.testing.assert_array_equal(grad, expected)
    reference = jax.grad(lambda v: jnp.sum(nn.max_pool(v[None, :, :, None], (2, 2), strides=(2, 2))))(x)
    np.testing.assert_array_equal(grad, reference)
    # second order through a tie-heavy net (the Jacobian-norm penalty's path) equals nn.max_pool's
    image = jnp.full((1, 8, 8, 1), -0.8).at[0, 2:5, 3:6, 0].set(1.5)
    kernel = jax.random.normal(jax.random.key(0), (3, 3, 1, 4))

    def penalty(k, pool):
        def net(v):
            h = jax.nn.relu(jax.lax.conv_general_dilated(v, k, (1, 1), "SAME",
                                                         dimension_numbers=("NHWC", "HWIO", "NHWC")))
            return jnp.sum(pool(h))
        return jnp.sum(jnp.square(jax.grad(net)(image)))
    flax_pool = lambda h: nn.max_pool(h, (2, 2), strides=(2, 2))  # noqa: E731
    shared = lambda h: jnp.max(h.reshape(1, 4, 2, 4, 2, 4), axis=(2, 4))  # noqa: E731
    assert abs(penalty(kernel, shared) - penalty(kernel, flax_pool)) > 1e-3 * penalty(kernel, flax_pool)
    np.testing.assert_allclose(penalty(kernel, layers.max_pool_2x2), penalty(kernel, flax_pool), rtol=1e-6)
    np.testing.assert_allclose(jax.grad(penalty)(kernel, layers.max_pool_2x2),
                               jax.grad(penalty)(kernel, flax_pool), rtol=1e-5, atol=1e-6)


def test_global_max_pool_sends_a_tie_to_its_first_maximum_as_torchs_adaptive_max_pool():
    """S2SD's "A" pooling (reference: `AdaptiveMaxPool2d(1)`, argmax): a tie's whole gradient goes to the first
    maximum in row-major order, per channel; without ties it equals nn.max_pool over the whole map."""
    from kdjax.models import layers
    x = jnp.zeros((1, 3, 3, 2))
    x = x.at[0, 0, 2, 0].set(2.0).at[0, 1, 1, 0].set(2.0).at[0, 2, 0, 0].set(1.0)  # channel 0: tie at (0,2),(1,1)
    x = x.at[0, 2, 2, 1].set(-1.0)  # channel 1: eight tied zeros, first at (0,0)
    np.testing.assert_array_equal(layers.global_max_pool(x), [[2.0, 0.0]])
    grad = jax.grad(lambda v: jnp.sum(layers.global_max_pool(v) * jnp.array([3.0, 5.0])))(x)
    expected = np.zeros((1, 3, 3, 2), np.float32)
    expected[0, 0, 2, 0], expected[0, 0, 0, 1] = 3.0, 5.0
    np.testing.assert_array_equal(grad, expected)
    y = jax.random.normal(jax.random.key(0), (2, 5, 4, 3))
    reference = lambda v: nn.max_pool(v, (5, 4))[:, 0, 0]
    cot = jax.random.normal(jax.random.key(1), (2, 3))
    np.testing.assert_array_equal(layers.global_max_pool(y), reference(y))
    np.testing.assert_array_equal(jax.grad(lambda v: jnp.sum(layers.global_max_pool(v) * cot))(y),
                                  jax.grad(lambda v: jnp.sum(reference(v) * cot))(y))
