"""mdistiller / RepDistiller checkpoints -> kdjax: the name mapping on state dicts built from the architectures alone
(names and shapes as megvii-research/mdistiller `mdistiller/models/cifar/*.py` name them), and, with torch (parity
extra), logits and every tap equal to a PyTorch restatement of those models."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kdjax import models
from tests import helpers

# (arch, kdjax name): one of each family, small where the family allows
CASES = [("resnet8", "resnet8"), ("resnet8x4", "resnet8x4"), ("wrn_16_2", "wrn_16_2"), ("vgg8", "vgg8"),
         ("vgg13", "vgg13"), ("ResNet50", "resnet50_cifar")]
RESNETS = {"resnet8": (1, (16, 16, 32, 64)), "resnet8x4": (1, (32, 64, 128, 256)), "resnet56": (9, (16, 16, 32, 64))}
VGGS = {"vgg8": [[64], [128], [256], [512], [512]], "vgg13": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]]}


def _bn(sd, name, c):
    sd.update({f"{name}.weight": (c,), f"{name}.bias": (c,), f"{name}.running_mean": (c,),
               f"{name}.running_var": (c,), f"{name}.num_batches_tracked": ()})


def mdistiller_shapes(arch: str, num_classes: int = 100) -> dict:
    """{state-dict name: shape} of the mdistiller model `arch`, restated from its module structure."""
    sd = {}
    if arch in RESNETS:
        n, widths = RESNETS[arch]
        sd["conv1.weight"] = (widths[0], 3, 3, 3)
        _bn(sd, "bn1", widths[0])
        cin = widths[0]
        for s, (w, stride) in enumerate(zip(widths[1:], (1, 2, 2))):
            for b in range(n):
                p = f"layer{s + 1}.{b}"
                sd[f"{p}.conv1.weight"] = (w, cin, 3, 3)
                _bn(sd, f"{p}.bn1", w)
                sd[f"{p}.conv2.weight"] = (w, w, 3, 3)
                _bn(sd, f"{p}.bn2", w)
                if b == 0 and (stride != 1 or cin != w):
                    sd[f"{p}.downsample.0.weight"] = (w, cin, 1, 1)
                    _bn(sd, f"{p}.downsample.1", w)
                cin = w
        sd["fc.weight"], sd["fc.bias"] = (num_classes, cin), (num_classes,)
    elif arch.startswith("wrn"):
        depth, k = (int(x) for x in arch.split("_")[1:])
        n, widths = (depth - 4) // 6, (16, 16 * k, 32 * k, 64 * k)
        sd["conv1.weight"] = (16, 3, 3, 3)
        cin = 16
        for s, w in enumerate(widths[1:]):
            for b in range(n):
                p = f"block{s + 1}.layer.{b}"
                _bn(sd, f"{p}.bn1", cin)
                sd[f"{p}.conv1.weight"] = (w, cin, 3, 3)
                _bn(sd, f"{p}.bn2", w)
                sd[f"{p}.conv2.weight"] = (w, w, 3, 3)
                if cin != w:
                    sd[f"{p}.convShortcut.weight"] = (w, cin, 1, 1)
                cin = w
        _bn(sd, "bn1", cin)
        sd["fc.weight"], sd["fc.bias"] = (num_classes, cin), (num_classes,)
    elif arch in VGGS:
        cin = 3
        for k, block in enumerate(VGGS[arch]):
            for j, w in enumerate(block):
                sd[f"block{k}.{3 * j}.weight"], sd[f"block{k}.{3 * j}.bias"] = (w, cin, 3, 3), (w,)
                _bn(sd, f"block{k}.{3 * j + 1}", w)
                cin = w
        sd["classifier.weight"], sd["classifier.bias"] = (num_classes, 512), (num_classes,)
    elif arch == "ResNet50":
        sd["conv1.weight"] = (64, 3, 3, 3)
        _bn(sd, "bn1", 64)
        cin = 64
        for s, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3))):
            for b in range(blocks):
                p = f"layer{s + 1}.{b}"
                sd[f"{p}.conv1.weight"] = (planes, cin, 1, 1)
                _bn(sd, f"{p}.bn1", planes)
                sd[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                _bn(sd, f"{p}.bn2", planes)
                sd[f"{p}.conv3.weight"] = (4 * planes, planes, 1, 1)
                _bn(sd, f"{p}.bn3", 4 * planes)
                if b == 0:
                    sd[f"{p}.shortcut.0.weight"] = (4 * planes, cin, 1, 1)
                    _bn(sd, f"{p}.shortcut.1", 4 * planes)
                cin = 4 * planes
        sd["linear.weight"], sd["linear.bias"] = (num_classes, cin), (num_classes,)
    else:
        raise KeyError(arch)
    return sd


def random_state_dict(arch: str, seed: int = 0, num_classes: int = 100) -> dict:
    rng = np.random.default_rng(seed)
    sd = {}
    for name, shape in mdistiller_shapes(arch, num_classes).items():
        if name.endswith("num_batches_tracked"):
            sd[name] = np.array(7)
        elif name.endswith("running_var"):
            sd[name] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        else:
            sd[name] = (0.1 * rng.normal(size=shape)).astype(np.float32)
    return sd


@pytest.mark.parametrize("arch,name", CASES)
def test_every_tensor_lands_where_mdistiller_puts_it(arch, name):
    """Wrapped as the published files are ({'model': ...}, DataParallel `module.` prefixes): every tensor of the
    state dict converts, fits the kdjax model, and a few hand-picked ones are where the mapping says."""
    sd = random_state_dict(arch)
    variables = models.from_torch(name, {"model": {f"module.{k}": v for k, v in sd.items()}, "epoch": 240},
                                  source="mdistiller", num_classes=100)
    params, stats = variables["params"], variables["batch_stats"]
    n_params = sum(np.size(x) for x in jax.tree.leaves(params)) + sum(np.size(x) for x in jax.tree.leaves(stats))
    assert n_params == sum(np.size(v) for k, v in sd.items() if not k.endswith("num_batches_tracked"))
    np.testing.assert_array_equal(params["Conv_0"]["kernel"], np.transpose(sd[next(iter(sd))], (2, 3, 1, 0)))
    if arch == "resnet8":
        np.testing.assert_array_equal(params["stage2_block0"]["Conv_2"]["kernel"],
                                      np.transpose(sd["layer2.0.downsample.0.weight"], (2, 3, 1, 0)))
        np.testing.assert_array_equal(stats["stage3_block0"]["BatchNorm_1"]["var"], sd["layer3.0.bn2.running_var"])
        np.testing.assert_array_equal(params["Dense_0"]["kernel"], sd["fc.weight"].T)
    if arch == "wrn_16_2":
        np.testing.assert_array_equal(params["stage1_block0"]["Conv_2"]["kernel"],
                                      np.transpose(sd["block1.layer.0.convShortcut.weight"], (2, 3, 1, 0)))
        np.testing.assert_array_equal(stats["BatchNorm_0"]["mean"], sd["bn1.running_mean"])
    if arch == "vgg13":
        np.testing.assert_array_equal(params["Conv_3"]["bias"], sd["block1.3.bias"])     # block 1, second conv
        np.testing.assert_array_equal(params["BatchNorm_3"]["scale"], sd["block1.4.weight"])
        np.testing.assert_array_equal(params["Dense_0"]["bias"], sd["classifier.bias"])
    if arch == "ResNet50":
        np.testing.assert_array_equal(stats["stage4_block2"]["BatchNorm_2"]["mean"], sd["layer4.2.bn3.running_mean"])
        np.testing.assert_array_equal(params["stage2_block0"]["BatchNorm_3"]["bias"], sd["layer2.0.shortcut.1.bias"])


def test_a_wrong_checkpoint_says_what_is_missing():
    sd = random_state_dict("resnet8")
    with pytest.raises(ValueError, match=r"no tensor 'conv1.weight'.*mdistiller resnet8 checkpoint"):
        models.from_torch("resnet8", {k: v for k, v in sd.items() if k != "conv1.weight"}, source="mdistiller")
    with pytest.raises(ValueError, match=r"missing: .*'stage1_block0'\]\['Conv_0'\]"):
        models.from_torch("resnet8", {k: v for k, v in sd.items() if k != "layer1.0.conv1.weight"},
                          source="mdistiller")
    with pytest.raises(ValueError, match=r"do not fit kdjax's resnet56"):  # resnet8's weights for a resnet56
        models.from_torch("resnet56", random_state_dict("resnet8"), source="mdistiller")
    with pytest.raises(ValueError, match=r"no converter for model 'mobilenetv2' from source 'mdistiller'; "
                                         r"available: \['mdistiller:resnet110'"):
        models.from_torch("mobilenetv2", {}, source="mdistiller")


# ---- parity with PyTorch (optional `parity` extra) ------------------------------------------------------------
def _torch_models():
    """mdistiller's four CIFAR families restated in PyTorch, returning (logits, feats, preact_feats, pooled)."""
    import torch.nn as nn
    import torch.nn.functional as F

    def bn_seq(cin, cout, k, stride):
        return nn.Sequential(nn.Conv2d(cin, cout, k, stride, bias=False), nn.BatchNorm2d(cout))

    class Basic(nn.Module):
        def __init__(self, cin, w, stride):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(cin, w, 3, stride, 1, bias=False), nn.BatchNorm2d(w)
            self.conv2, self.bn2 = nn.Conv2d(w, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w)
            self.downsample = bn_seq(cin, w, 1, stride) if stride != 1 or cin != w else None

        def forward(self, x):
            out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            pre = out + (self.downsample(x) if self.downsample is not None else x)
            return F.relu(pre), pre

    class ResNet(nn.Module):
        def __init__(self, n, widths, classes):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0])
            cin = widths[0]
            for s, (w, stride) in enumerate(zip(widths[1:], (1, 2, 2))):
                blocks = []
                for b in range(n):
                    blocks.append(Basic(cin, w, stride if b == 0 else 1))
                    cin = w
                setattr(self, f"layer{s + 1}", nn.ModuleList(blocks))
            self.fc = nn.Linear(cin, classes)
            self.stages, self.head = 3, "fc"

        def forward(self, x):  # ResNet50 too (4 stages, head `linear`)
            x = F.relu(self.bn1(self.conv1(x)))
            feats, pres = [x], [x]
            for s in range(self.stages):
                for block in getattr(self, f"layer{s + 1}"):
                    x, pre = block(x)
                feats.append(x)
                pres.append(pre)
            pooled = x.mean((2, 3))
            return getattr(self, self.head)(pooled), feats, pres, pooled

    class WideBlock(nn.Module):
        def __init__(self, cin, w, stride):
            super().__init__()
            self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, w, 3, stride, 1, bias=False)
            self.bn2, self.conv2 = nn.BatchNorm2d(w), nn.Conv2d(w, w, 3, 1, 1, bias=False)
            self.convShortcut = nn.Conv2d(cin, w, 1, stride, bias=False) if cin != w else None

        def forward(self, x):
            a = F.relu(self.bn1(x))
            out = self.conv2(F.relu(self.bn2(self.conv1(a))))
            return out + (x if self.convShortcut is None else self.convShortcut(a))

    class Layers(nn.Module):
        def __init__(self, blocks):
            super().__init__()
            self.layer = nn.Sequential(*blocks)

    class WRN(nn.Module):
        def __init__(self, depth, k, classes):
            super().__init__()
            n, widths = (depth - 4) // 6, (16, 16 * k, 32 * k, 64 * k)
            self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            cin = 16
            for s, (w, stride) in enumerate(zip(widths[1:], (1, 2, 2))):
                blocks = []
                for b in range(n):
                    blocks.append(WideBlock(cin, w, stride if b == 0 else 1))
                    cin = w
                setattr(self, f"block{s + 1}", Layers(blocks))
            self.bn1, self.fc = nn.BatchNorm2d(cin), nn.Linear(cin, classes)

        def forward(self, x):
            f0 = self.conv1(x)
            f1 = self.block1.layer(f0)
            f2 = self.block2.layer(f1)
            f3 = self.block3.layer(f2)
            pres = [f0, self.block2.layer[0].bn1(f1), self.block3.layer[0].bn1(f2), self.bn1(f3)]
            pooled = F.relu(pres[3]).mean((2, 3))
            return self.fc(pooled), [f0, f1, f2, f3], pres, pooled

    class VGG(nn.Module):
        def __init__(self, blocks, classes):
            super().__init__()
            cin = 3
            for k, widths in enumerate(blocks):
                layers = []
                for w in widths:
                    layers += [nn.Conv2d(cin, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU()]
                    cin = w
                setattr(self, f"block{k}", nn.Sequential(*layers[:-1]))
            self.classifier = nn.Linear(512, classes)

        def forward(self, x):
            feats, pres = [], []
            for k in range(5):
                pre = getattr(self, f"block{k}")(x)
                x = F.relu(pre)
                feats.append(x)
                pres.append(pre if k else x)
                if k < 3:
                    x = F.max_pool2d(x, 2)
            pooled = x.mean((2, 3))
            return self.classifier(pooled), feats, pres, pooled

    class Bottleneck(nn.Module):
        def __init__(self, cin, planes, stride):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(cin, planes, 1, bias=False), nn.BatchNorm2d(planes)
            self.conv2, self.bn2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes)
            self.conv3, self.bn3 = nn.Conv2d(planes, 4 * planes, 1, bias=False), nn.BatchNorm2d(4 * planes)
            self.shortcut = (bn_seq(cin, 4 * planes, 1, stride) if stride != 1 or cin != 4 * planes
                             else nn.Sequential())

        def forward(self, x):
            out = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
            pre = self.bn3(self.conv3(out)) + self.shortcut(x)
            return F.relu(pre), pre

    class ResNet50(ResNet):
        def __init__(self, classes):
            nn.Module.__init__(self)
            self.conv1, self.bn1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64)
            cin = 64
            for s, (planes, n, stride) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3), (1, 2, 2, 2))):
                blocks = []
                for b in range(n):
                    blocks.append(Bottleneck(cin, planes, stride if b == 0 else 1))
                    cin = 4 * planes
                setattr(self, f"layer{s + 1}", nn.ModuleList(blocks))
            self.linear = nn.Linear(cin, classes)
            self.stages, self.head = 4, "linear"

    def build(arch, classes=100):
        if arch in RESNETS:
            return ResNet(*RESNETS[arch], classes)
        if arch.startswith("wrn"):
            depth, k = (int(x) for x in arch.split("_")[1:])
            return WRN(depth, k, classes)
        if arch in VGGS:
            return VGG(VGGS[arch], classes)
        return ResNet50(classes)
    return build


def torch_reference(arch, seed=0):
    """A PyTorch model of mdistiller's `arch` with random weights and running statistics (eval mode)."""
    import torch
    torch.manual_seed(seed)
    return helpers.randomise_batch_norm(_torch_models()(arch), seed)


@pytest.mark.parametrize("arch,name", CASES)
def test_converted_models_give_pytorchs_logits_and_taps(arch, name):
    torch = pytest.importorskip("torch")
    reference = torch_reference(arch)
    assert set(reference.state_dict()) == set(mdistiller_shapes(arch))  # the restatement names what mdistiller does
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype(np.float32)
    with torch.no_grad():
        logits, feats, pres, pooled = reference(torch.from_numpy(x.transpose(0, 3, 1, 2)))
    variables = models.from_torch(name, reference.state_dict(), source="mdistiller")
    got, taps = models.get_model(name, num_classes=100).apply(variables, jnp.asarray(x), train=False)

    def close(a, b):
        b = b.numpy()
        b = b.transpose(0, 2, 3, 1) if b.ndim == 4 else b
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-4, atol=1e-4 * np.abs(b).max())
    close(got, logits)
    close(taps["pooled"], pooled)
    for k in range(len(feats)):
        close(taps["feats"][k], feats[k])
        close(taps["preact_feats"][k], pres[k])
