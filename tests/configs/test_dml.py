"""Deep metric learning through the generic trainer: class-split datasets (faked TFDS builders), the class-balanced
sampler across processes, the DML terms with their learnable parameters and parameter groups, frozen BatchNorm, the
retrieval evaluators, the torchvision ResNet-50 converter, and every config."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.dml import cars196, common as dml, cub200, fashion_mnist, sop
from kdjax import data, models, parallel
from kdjax.train import checkpoint as ckpt_lib
from kdjax.train import loop, recipe, resume, stage
from tests import helpers, tfds_fakes

FAKES = {  # (module, label feature, classes, examples per class per split)
    "cub200": (cub200, "label", 200, {"train": 3, "test": 2}),
    "cars196": (cars196, "label", 196, {"train": 2, "test": 2}),
    "sop": (sop, "class_id", 22634, None),
}


def test_class_split_counts_on_faked_tfds_data():
    with tfds_fakes.mock(tfds_fakes.class_dataset("label", 200, {"train": 3, "test": 2})):
        d = data.build(dict(name="caltech_birds2011", train_split="train+test", eval_split="train+test",
                            train_classes=(0, 100), eval_classes=(100, 200),
                            expect=dict(train=(100, 500), eval=(100, 500)), sampler="class_balanced",
                            views={"image": "random_resized_crop(16)|flip"}, eval_view="resize(18)|center_crop(16)",
                            normalization="imagenet"), seed=0, batch_size=16, eval_batch_size=16)
        assert d.num_classes == 100 and set(d.eval_split.labels) == set(range(100, 200))
        batch = next(d.train.batches())
        assert batch["image"].shape == (16, 16, 16, 3)  # grayscale images come out RGB
        assert np.all(np.bincount(batch["label"]) % 2 == 0) and batch["label"].max() < 100
        with pytest.raises(ValueError, match=r"has \(100, 500\) \(classes, images\); the config expects \(100, 5864\)"):
            data.build(dict(name="caltech_birds2011", train_split="train+test", train_classes=(0, 100),
                            expect=dict(train=(100, 5864)), normalization="imagenet"), seed=0, batch_size=16,
                       eval_batch_size=16)


def test_class_balanced_global_batch_is_split_across_processes():
    """The sampler draws the global batch; two processes take halves that concatenate to it, pixels included;
    class balance holds globally (every class an even number of times), not per process."""
    cfg = dict(name="digits", sampler="class_balanced", views={"image": "pad_crop(1)"})
    whole = next(data.build(cfg, seed=3, batch_size=16, eval_batch_size=16).train.batches(5))
    halves = [next(data.build(cfg, seed=3, batch_size=16, eval_batch_size=16, process_index=i, process_count=2)
                   .train.batches(5)) for i in range(2)]
    for key in whole:
        np.testing.assert_array_equal(np.concatenate([h[key] for h in halves]), whole[key])
    assert np.all(np.bincount(whole["label"]) % 2 == 0)
    again = next(data.build(cfg, seed=3, batch_size=16, eval_batch_size=16).train.batches(5))
    np.testing.assert_array_equal(again["index"], whole["index"])  # deterministic, resumable at any step


def _fashion(loss="margin", steps=2):
    config = fashion_mnist.get_config(f"runlocal,loss={loss}")
    config.stages.model.num_steps = steps
    return config


def test_parameter_groups_step_by_hand_and_beta_is_checkpointed(tmp_path):
    """One Adam step: every parameter with a gradient moves by its group's LR (Adam's first step is lr * sign of
    the gradient): the margin's beta by 5e-4, the network by 1e-3; beta lives in the checkpoint."""
    config = _fashion("margin", steps=1)
    config.checkpoint.every_steps = 1
    mesh = parallel.make_mesh()
    plan = stage.build(recipe.resolve_stage(config, "model"), mesh)
    before = jax.device_get(resume.initial_state(plan, {}, mesh).params)
    loop.run(config, str(tmp_path))
    tree, _, _ = ckpt_lib.restore_raw(str(tmp_path / "model" / "checkpoints"))
    after = tree["params"]
    beta_delta = np.abs(after["terms"]["margin"]["beta"] - before["terms"]["margin"]["beta"])
    moved = beta_delta[beta_delta > 0]
    assert len(moved) > 0 and np.allclose(moved, 5e-4, rtol=1e-3)
    kernel_delta = np.abs(after["model"]["embedding_head"]["kernel"] - before["model"]["embedding_head"]["kernel"])
    assert np.allclose(kernel_delta[kernel_delta > 1e-7], 1e-3, rtol=1e-2)


@pytest.mark.trains("configs/dml/fashion_mnist.py")
@pytest.mark.parametrize("loss", dml.LOSSES)
def test_fashion_mnist_dml_trains_every_loss_and_logs_retrieval(loss, tmp_path):
    result = loop.run(_fashion(loss), str(tmp_path))[0]
    assert result["status"] == "done" and result["headline"] == "eval/recall@1"
    assert {"eval/recall@1", "eval/recall@8", "eval/map_at_r", "eval/map@1000", "eval/nmi"} <= set(result["final"])
    assert 0 < result["best"]["eval/recall@1"]["value"] <= 1
    logged = {k for line in open(tmp_path / "model" / "metrics.jsonl") for k in json.loads(line)}
    expected = {"margin": "margin/active_triplets", "rmargin": "rmargin/active_triplets",
                "multisimilarity": "multisimilarity/active_anchors", "proxyanchor": "proxyanchor/positive_proxies"}
    assert expected[loss] in logged and "train/accuracy" not in logged  # no class accuracy for embeddings
    if loss == "proxyanchor":
        assert "train/lr_proxies" in logged


def test_frozen_bn_keeps_running_statistics_and_trains_the_affine_parameters():
    model = models.get_model("resnet18", num_classes=0, embedding_dim=16, frozen_bn=True, width=0.25)
    x = jax.random.normal(jax.random.key(0), (4, 32, 32, 3))
    variables = model.init(jax.random.key(1), x, train=False)
    # non-trivial running statistics (small mean shift: a large one would silence the ReLUs and the gradients)
    stats = jax.tree_util.tree_map_with_path(lambda path, s: s * 2.0 if path[-1].key == "var" else s + 0.01,
                                             variables["batch_stats"])
    (train_out, _), updated = model.apply({"params": variables["params"], "batch_stats": stats}, x, train=True,
                                          mutable=["batch_stats"])
    eval_out, _ = model.apply({"params": variables["params"], "batch_stats": stats}, x, train=False)
    np.testing.assert_allclose(train_out, eval_out, rtol=1e-5, atol=1e-6)
    jax.tree.map(np.testing.assert_array_equal, updated["batch_stats"], stats)
    grads = jax.grad(lambda p: jnp.sum(model.apply({"params": p, "batch_stats": stats}, x, train=True,
                                                   mutable=["batch_stats"])[0][0] ** 3))(variables["params"])
    assert np.any(grads["bn1"]["scale"] != 0)


@pytest.mark.parametrize("dataset", ["cub200", "cars196", "sop"])
def test_tfds_configs_validate_and_state_their_protocol(dataset):
    module, label, classes, per_class = FAKES[dataset]
    config = helpers.narrow(module.get_config("runlocal,loss=rmargin"))
    per_class = per_class or {"train": 1, "test": 1}
    with tfds_fakes.mock(tfds_fakes.class_dataset(label, classes if dataset != "sop" else 40, per_class)):
        specs = loop.validate(config)
    spec = specs[0]
    d = dml.DATASETS[dataset]
    assert spec.data.expect is None  # runlocal: mock data; the real config asserts the published counts
    assert {k: tuple(v) for k, v in module.get_config().data.expect.items()} == d["expect"]
    assert spec.model == dict(name="resnet50", embedding_dim=128, frozen_bn=True, width=helpers.NARROW)
    assert spec.losses["rmargin"]["p_switch"] == d["p_switch"]
    assert spec.optimizer["groups"]["margin_beta"]["base_lr"] == 5e-4 and spec.optimizer["weight_decay"] == 3e-4
    assert module.get_config("loss=margin").info.published_recall_at_1 == d["published"]["margin"]
    # the supplement's 3e-4 by default (above); the default of Roth's code through the argument
    assert module.get_config("weight_decay=4e-4").stages.model.optimizer.weight_decay == 4e-4
    assert module.get_config("loss=proxyanchor").stages.model.optimizer.groups.proxies.lr_mult == 2000


@pytest.mark.trains("configs/dml/cub200.py",
                     # the same recipe on the other class-split datasets, whose splits and protocol are checked above
                     "configs/dml/cars196.py", "configs/dml/sop.py")
def test_cub200_runlocal_trains_two_steps_on_faked_data(tmp_path):
    config = helpers.narrow(cub200.get_config("runlocal,loss=multisimilarity"))
    with tfds_fakes.mock(tfds_fakes.class_dataset("label", 200, {"train": 2, "test": 2})):
        result = loop.run(config, str(tmp_path))[0]
    assert result["status"] == "done" and result["step"] == 2 and "eval/recall@1" in result["final"]
    assert "train/pi_ratio" in result["final"] and "train/rho" in result["final"]


def test_dml_errors_name_the_valid_choices():
    with pytest.raises(ValueError, match="Unknown loss 'triplet'; valid losses: margin, rmargin"):
        fashion_mnist.get_config("loss=triplet")
    config = _fashion()
    config.data.samples_per_class = 3
    with pytest.raises(recipe.ConfigError, match="batch size 16 is not a multiple of samples_per_class=3"):
        loop.validate(config)
    config = _fashion()
    config.evals = {"eval": dict(type="ranking")}
    with pytest.raises(recipe.ConfigError, match="unknown evaluator 'ranking'; valid evaluators: classification"):
        loop.validate(config)


def _torchvision_resnet50_state_dict(rng, num_classes=7):
    """Names and shapes as torchvision's resnet50 (built from the architecture alone)."""
    sd = {}

    def conv(name, o, i, k):
        sd[f"{name}.weight"] = (rng.normal(size=(o, i, k, k)) * np.sqrt(1.0 / (i * k * k))).astype(np.float32)

    def bn(name, c):
        sd[f"{name}.weight"] = rng.uniform(0.2, 0.5, c).astype(np.float32)
        sd[f"{name}.bias"] = rng.normal(scale=0.1, size=c).astype(np.float32)
        sd[f"{name}.running_mean"] = rng.normal(scale=0.1, size=c).astype(np.float32)
        sd[f"{name}.running_var"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        sd[f"{name}.num_batches_tracked"] = np.int64(3)

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    in_c = 64
    for s, (n, planes) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512))):
        for b in range(n):
            p = f"layer{s + 1}.{b}"
            conv(f"{p}.conv1", planes, in_c, 1)
            bn(f"{p}.bn1", planes)
            conv(f"{p}.conv2", planes, planes, 3)
            bn(f"{p}.bn2", planes)
            conv(f"{p}.conv3", 4 * planes, planes, 1)
            bn(f"{p}.bn3", 4 * planes)
            if b == 0:
                conv(f"{p}.downsample.0", 4 * planes, in_c, 1)
                bn(f"{p}.downsample.1", 4 * planes)
            in_c = 4 * planes
    sd["fc.weight"] = rng.normal(size=(num_classes, 2048)).astype(np.float32) / 45
    sd["fc.bias"] = rng.normal(size=num_classes).astype(np.float32)
    return {f"module.{k}": v for k, v in sd.items()}  # DataParallel prefixes are removed


def test_resnet50_conversion_maps_every_tensor_and_refuses_another_architecture():
    rng = np.random.default_rng(0)
    sd = _torchvision_resnet50_state_dict(rng)
    variables = models.from_torch("resnet50", sd)
    np.testing.assert_array_equal(variables["params"]["layer3_0"]["conv2"]["kernel"][1, 2, 5, 7],
                                  sd["module.layer3.0.conv2.weight"][7, 5, 1, 2])
    np.testing.assert_array_equal(variables["batch_stats"]["layer2_0"]["downsample_bn"]["var"],
                                  sd["module.layer2.0.downsample.1.running_var"])
    model = models.get_model("resnet50", num_classes=7)
    assert model.apply(variables, jnp.ones((1, 32, 32, 3)), train=False)[0].shape == (1, 7)
    headless = models.from_torch("resnet50", {k: v for k, v in sd.items() if ".fc." not in k and "fc." not in k})
    assert "fc" not in headless["params"]
    embedder = models.get_model("resnet50", num_classes=0, embedding_dim=8)
    full = jax.eval_shape(lambda: embedder.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False))
    assert set(full["params"]) - set(headless["params"]) == {"embedding_head"}  # init_from fills the backbone
    del sd["module.layer4.2.bn3.running_var"]
    with pytest.raises(ValueError, match="has no tensor .layer4.2.bn3.running_var.; is it a torchvision resnet50"):
        models.from_torch("resnet50", sd)
    with pytest.raises(ValueError, match="no converter for model 'vgg13' from source 'torchvision'"):
        models.from_torch("vgg13", sd)


@pytest.mark.parity
@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_converted_torchvision_resnets_give_pytorchs_logits(arch):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    net = helpers.randomise_batch_norm(getattr(torchvision.models, arch)(num_classes=10))
    x = np.random.default_rng(1).normal(size=(2, 64, 64, 3)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    got = models.get_model(arch, num_classes=10).apply(models.from_torch(arch, net.state_dict()), x, train=False)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
