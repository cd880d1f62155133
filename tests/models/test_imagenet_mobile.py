"""torchvision MobileNetV2 / ShuffleNetV2 x1.0 and timm RepVGG-A0 -> kdjax: the name mapping on state dicts whose
names and shapes are restated from the reference modules (torch-free), and, with torch / torchvision / timm (parity
extra), logits equal to PyTorch's on random weights; RepVGG's fused deploy form equals its training form."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kdjax import models
from kdjax.models import imagenet_mobile
from tests import helpers


def _bn(sd, name, c):
    sd.update({f"{name}.weight": (c,), f"{name}.bias": (c,), f"{name}.running_mean": (c,),
               f"{name}.running_var": (c,), f"{name}.num_batches_tracked": ()})


def _conv_bn(sd, conv, bn, cout, cin, k, groups=1):
    sd[f"{conv}.weight"] = (cout, cin // groups, k, k)
    _bn(sd, bn, cout)


def reference_shapes(arch: str, num_classes: int = 10) -> dict:
    """{state-dict name: shape}, restated from torchvision's / timm's module structure."""
    sd = {}
    if arch == "mobilenet_v2":
        _conv_bn(sd, "features.0.0", "features.0.1", 32, 3, 3)
        cin, index = 32, 1
        for t, c, n, _ in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                           (6, 160, 3, 2), (6, 320, 1, 1)):
            for _ in range(n):
                p, hidden, i = f"features.{index}.conv", cin * t, 0
                if t != 1:
                    _conv_bn(sd, f"{p}.0.0", f"{p}.0.1", hidden, cin, 1)
                    i = 1
                _conv_bn(sd, f"{p}.{i}.0", f"{p}.{i}.1", hidden, hidden, 3, groups=hidden)
                _conv_bn(sd, f"{p}.{i + 1}", f"{p}.{i + 2}", c, hidden, 1)
                cin, index = c, index + 1
        _conv_bn(sd, "features.18.0", "features.18.1", 1280, 320, 1)
        sd["classifier.1.weight"], sd["classifier.1.bias"] = (num_classes, 1280), (num_classes,)
    elif arch == "shufflenet_v2_x1_0":
        _conv_bn(sd, "conv1.0", "conv1.1", 24, 3, 3)
        cin = 24
        for stage, n, c in zip((2, 3, 4), (4, 8, 4), (116, 232, 464)):
            half = c // 2
            for i in range(n):
                p = f"stage{stage}.{i}"
                if i == 0:
                    _conv_bn(sd, f"{p}.branch1.0", f"{p}.branch1.1", cin, cin, 3, groups=cin)
                    _conv_bn(sd, f"{p}.branch1.2", f"{p}.branch1.3", half, cin, 1)
                _conv_bn(sd, f"{p}.branch2.0", f"{p}.branch2.1", half, cin if i == 0 else half, 1)
                _conv_bn(sd, f"{p}.branch2.3", f"{p}.branch2.4", half, half, 3, groups=half)
                _conv_bn(sd, f"{p}.branch2.5", f"{p}.branch2.6", half, half, 1)
                cin = c
        _conv_bn(sd, "conv5.0", "conv5.1", 1024, 464, 1)
        sd["fc.weight"], sd["fc.bias"] = (num_classes, 1024), (num_classes,)
    elif arch == "repvgg_a0":
        blocks = [("stem", 3, 48, 2)]
        cin = 48
        for s, (n, c) in enumerate(zip((2, 4, 14, 1), (48, 96, 192, 1280))):
            for i in range(n):
                blocks.append((f"stages.{s}.{i}", cin, c, 2 if i == 0 else 1))
                cin = c
        for p, ci, co, stride in blocks:
            if stride == 1 and ci == co:
                _bn(sd, f"{p}.identity", co)
            _conv_bn(sd, f"{p}.conv_kxk.conv", f"{p}.conv_kxk.bn", co, ci, 3)
            _conv_bn(sd, f"{p}.conv_1x1.conv", f"{p}.conv_1x1.bn", co, ci, 1)
        sd["head.fc.weight"], sd["head.fc.bias"] = (num_classes, 1280), (num_classes,)
    return sd


SOURCES = {"mobilenet_v2": "torchvision", "shufflenet_v2_x1_0": "torchvision", "repvgg_a0": "timm"}


def random_state_dict(arch, seed=0):
    rng = np.random.default_rng(seed)
    return {k: (np.array(3) if k.endswith("tracked") else
                rng.uniform(0.5, 1.5, s).astype(np.float32) if k.endswith("running_var") else
                (0.1 * rng.normal(size=s)).astype(np.float32)) for k, s in reference_shapes(arch).items()}


@pytest.mark.parametrize("arch", list(SOURCES))
def test_every_tensor_lands_where_the_reference_puts_it(arch):
    sd = random_state_dict(arch)
    variables = models.from_torch(arch, sd, source=SOURCES[arch])
    n = sum(np.size(x) for x in jax.tree.leaves(variables))
    assert n == sum(np.size(v) for k, v in sd.items() if not k.endswith("tracked"))
    p, s = variables["params"], variables["batch_stats"]
    if arch == "mobilenet_v2":
        np.testing.assert_array_equal(p["features_1"]["depthwise"]["kernel"],
                                      np.transpose(sd["features.1.conv.0.0.weight"], (2, 3, 1, 0)))
        np.testing.assert_array_equal(s["features_4"]["project_bn"]["var"], sd["features.4.conv.3.running_var"])
        np.testing.assert_array_equal(p["fc"]["kernel"], sd["classifier.1.weight"].T)
    elif arch == "shufflenet_v2_x1_0":
        np.testing.assert_array_equal(p["stage3_0"]["branch1_2"]["kernel"],
                                      np.transpose(sd["stage3.0.branch1.2.weight"], (2, 3, 1, 0)))
        np.testing.assert_array_equal(s["stage4_3"]["branch2_6"]["mean"], sd["stage4.3.branch2.6.running_mean"])
    else:
        np.testing.assert_array_equal(p["stages_2_5"]["identity"]["scale"], sd["stages.2.5.identity.weight"])
        np.testing.assert_array_equal(p["stem"]["conv_1x1"]["kernel"],
                                      np.transpose(sd["stem.conv_1x1.conv.weight"], (2, 3, 1, 0)))
        np.testing.assert_array_equal(p["fc"]["bias"], sd["head.fc.bias"])
    logits, taps = models.get_model(arch, num_classes=10).apply(variables, jnp.ones((1, 64, 64, 3)), train=False)
    assert logits.shape == (1, 10) and taps["feature_map"].shape[1:3] == (2, 2)
    del sd[next(k for k in sd if k.endswith("running_mean"))]
    with pytest.raises(ValueError, match=f"has no tensor .*is it a {SOURCES[arch]} {arch} checkpoint"):
        models.from_torch(arch, sd, source=SOURCES[arch])


def test_repvgg_fused_convolutions_equal_the_three_branches():
    sd = random_state_dict("repvgg_a0")
    variables = models.from_torch("repvgg_a0", sd, source="timm")
    x = jax.random.normal(jax.random.key(0), (2, 9, 9, 48))
    name = "stages_0_1"  # a block with the identity branch
    block = imagenet_mobile.RepVGGBlock(48, 1)
    branches = block.apply({"params": variables["params"][name], "batch_stats": variables["batch_stats"][name]},
                           x, train=False)
    kernel, bias = imagenet_mobile.fuse_repvgg(variables)[name]
    fused = jax.nn.relu(jax.lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)),
                                                     dimension_numbers=("NHWC", "HWIO", "NHWC")) + bias)
    np.testing.assert_allclose(fused, branches, rtol=1e-4, atol=1e-5)


def _reference_network(arch):
    torch = pytest.importorskip("torch")
    if arch == "repvgg_a0":
        timm = pytest.importorskip("timm")
        net = timm.create_model("repvgg_a0", pretrained=False, num_classes=10)
    else:
        torchvision = pytest.importorskip("torchvision")
        net = getattr(torchvision.models, arch)(num_classes=10)
    return torch, helpers.randomise_batch_norm(net)


@pytest.mark.parity
@pytest.mark.parametrize("arch", list(SOURCES))
def test_converted_models_give_the_references_logits(arch):
    torch, net = _reference_network(arch)
    x = np.random.default_rng(1).uniform(size=(2, 64, 64, 3)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    variables = models.from_torch(arch, net.state_dict(), source=SOURCES[arch])
    got = models.get_model(arch, num_classes=10).apply(variables, x, train=False)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
