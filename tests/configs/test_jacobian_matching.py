"""Jacobian matching (Srinivas & Fleuret, ICML 2018) end to end: every Table 1-3 config trains on mock/offline data; the trainer's Jacobian plumbing."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import PIL.Image
import pytest
import tensorflow_datasets as tfds

from configs.jacobian_matching import cifar100_table1, cifar100_table2, common as jm, mit_scenes_table3
from experiments import convert_imagenet
from kdjax import losses, models
from kdjax.train import loop, recipe, step as step_lib
from tests.helpers import NARROW, narrow

MOCK = dict(num_examples=1000)  # every one of the 100 classes present, so per_class=1 subsets exist
@pytest.fixture(scope="module")
def cifar_teacher(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("table1")
    config = narrow(cifar100_table1.get_config("runlocal"))
    with tfds.testing.mock_data(**MOCK):
        loop.run_stage(config, "teacher", str(workdir))
    return os.path.join(workdir, "teacher", "checkpoints")


# The rows' terms are combinations of CE, activation and Jacobian matching: the CE-only row (no teacher), the
# teacher-only row and the all-terms row cover every code path; every row's config is checked below.
@pytest.mark.trains("configs/jacobian_matching/cifar100_table1.py",
                     # the same rows on Fashion-MNIST
                     "configs/jacobian_matching/fashion_mnist_table1.py")
@pytest.mark.parametrize("method", ["ce", "act_jac", "ce_act_jac"])
def test_table1_row_trains_on_mock_cifar100(method, cifar_teacher, tmp_path):
    config = narrow(cifar100_table1.get_config(f"runlocal,method={method},per_class=1,"
                                               f"teacher_checkpoint={cifar_teacher}"))
    with tfds.testing.mock_data(**MOCK):
        spec = loop.validate(config)[0]
        assert set(spec.losses) == set(jm.row_losses(method))
        result = loop.run_stage(config, "student", str(tmp_path))
    assert result["status"] == "done"
    records = [json.loads(l) for l in open(tmp_path / "student" / "metrics.jsonl")]
    losses_logged = {k for r in records for k in r if k.startswith("loss/")}
    assert losses_logged == {f"loss/{n}" for n in jm.row_losses(method)} | {"loss/total"}
    if "jacobian_matching" in jm.row_losses(method):
        assert all(r["loss/jacobian_matching"] > 0 for r in records if "loss/jacobian_matching" in r)


def test_table1_cells_and_batch_sizes():
    assert jm.few_shot_batch_size(1, 100) == 96 and jm.few_shot_batch_size(10, 100) == 128
    config = cifar100_table1.get_config("method=act_jac,per_class=5")
    assert config.batch_size == 128 and config.stages.student.data.per_class == 5
    assert recipe.stage_order(config) == ["teacher", "student"]
    assert recipe.stage_order(cifar100_table1.get_config("method=ce,per_class=5")) == ["student"]
    for method in jm.TABLE1_ROWS:
        losses = cifar100_table1.get_config(f"method={method},per_class=10").stages.student.losses
        assert set(losses) == set(jm.row_losses(method)), method
    with pytest.raises(ValueError, match="per_class=3; valid"):
        cifar100_table1.get_config("per_class=3")
    with pytest.raises(ValueError, match="Unknown Table 1 row method='kd'"):
        cifar100_table1.get_config("method=kd")


@pytest.mark.trains("configs/jacobian_matching/cifar100_table2.py", "configs/jacobian_matching/fashion_mnist_table2.py")
@pytest.mark.parametrize("arg", ["lam=1.0", "row=dropout"])
def test_table2_trains_and_reports_noise_accuracies(arg, tmp_path):
    config = narrow(cifar100_table2.get_config(f"runlocal,{arg}"))
    with tfds.testing.mock_data(num_examples=64):
        result = loop.run_stage(config, "model", str(tmp_path))
    for sigma in ("0.1", "0.2", "0.3", "0.4"):
        assert 0.0 <= result[f"final_accuracy_noise_{sigma}"] <= 1.0
    if arg.startswith("lam"):
        assert "loss/jacobian_norm" in open(tmp_path / "model" / "metrics.jsonl").read()


def _image_folder(root, classes=4, per_split=(4, 2), size=40):
    rng = np.random.default_rng(0)
    for split, n in zip(("train", "test"), per_split):
        for c in range(classes):
            os.makedirs(root / split / f"class{c}", exist_ok=True)
            for i in range(n):
                PIL.Image.fromarray(rng.integers(0, 255, (size, size + 5, 3), dtype=np.uint8)).save(
                    root / split / f"class{c}" / f"{i}.jpg")


@pytest.fixture(scope="module")
def imagenet_teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("resnet34")
    model = models.get_model("resnet34", num_classes=1000, width=NARROW)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)
    convert_imagenet.save_teacher_checkpoint(variables, str(out / "ckpt"))
    return str(out / "ckpt")


@pytest.mark.trains("configs/jacobian_matching/mit_scenes_table3.py")
@pytest.mark.parametrize("method", ["lwf_att_jac", "ce"])  # lwf's terms are a subset of lwf_att_jac's
def test_table3_trains_on_an_image_folder(method, imagenet_teacher, tmp_path):
    _image_folder(tmp_path / "mit")
    config = narrow(mit_scenes_table3.get_config(f"runlocal,method={method},per_class=2,image_size=32,"
                                                 f"data_root={tmp_path / 'mit'},teacher_checkpoint={imagenet_teacher}"))
    result = loop.run_stage(config, "student", str(tmp_path / "run"))
    assert result["status"] == "done"
    log = open(tmp_path / "run" / "student" / "metrics.jsonl").read()
    for term in mit_scenes_table3.get_config(f"method={method}").stages.student.losses:
        assert f"loss/{term}" in log


def test_table3_missing_teacher_explains_conversion(tmp_path):
    _image_folder(tmp_path / "mit")
    config = mit_scenes_table3.get_config(f"runlocal,method=lwf,image_size=32,per_class=2,data_root={tmp_path / 'mit'}")
    with pytest.raises(FileNotFoundError, match="convert_imagenet"):
        loop.run_stage(config, "student", str(tmp_path / "run"))


def test_oracle_row_initialises_from_a_checkpoint(tmp_path):
    _image_folder(tmp_path / "mit")
    pre = models.get_model("vgg9", num_classes=1000, width=NARROW)
    variables = pre.init(jax.random.key(7), jnp.zeros((1, 32, 32, 3)), train=False)
    convert_imagenet.save_teacher_checkpoint(variables, str(tmp_path / "vgg9_imagenet"))
    config = mit_scenes_table3.get_config(f"runlocal,method=oracle,image_size=32,per_class=2,"
                                          f"data_root={tmp_path / 'mit'},student_init={tmp_path / 'vgg9_imagenet'}")
    narrow(config)
    config.stages.student.optimizer.momentum = 0.0
    config.stages.student.schedule.base_lr = 0.0  # no update: the checkpoint must equal the initialisation
    loop.run_stage(config, "student", str(tmp_path / "run"))
    from kdjax.train import checkpoint as ckpt_lib
    tree, _, _ = ckpt_lib.restore_raw(str(tmp_path / "run" / "student" / "checkpoints"))
    conv = tree["params"]["model"]["Conv_0"]["kernel"]
    np.testing.assert_allclose(conv, variables["params"]["Conv_0"]["kernel"], rtol=1e-6)
    assert tree["params"]["model"]["Dense_0"]["kernel"].shape == (64, 4)  # the new 4-way head stays random
    # strict: without the allow-list the head's shape mismatch is an error, not a printed list
    config.stages.student.init_allow_random = ()
    with pytest.raises(Exception, match=r"Dense_0.*list the paths that may stay randomly initialised"):
        loop.run_stage(config, "student", str(tmp_path / "strict"))


def test_trainer_teacher_fn_has_input_gradients():
    """Regression: the teacher callable must not stop gradients w.r.t. its input (Jacobian terms need them)."""
    teacher = models.get_model("vgg4", num_classes=10, width=0.125)
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 1))
    tv = teacher.init(jax.random.key(1), x, train=False)
    t_fn = step_lib.Networks(teacher, teacher).teacher_fn(tv)
    g = losses.input_gradients(t_fn, x, jnp.zeros(4, jnp.int32))
    assert float(jnp.abs(g).sum()) > 0
    s_fn = step_lib.Networks(teacher).student_fn(tv["params"], tv["batch_stats"])
    assert float(losses.jacobian_matching(s_fn, t_fn, x, jnp.zeros(4, jnp.int32))) == 0.0


def test_noise_evaluation_is_paired_and_zero_noise_is_clean():
    """Two evaluators with the same noise seed draw the same noise (paired comparisons of models); sigma 0 is the
    clean accuracy itself; the noisy accuracy is the top-1 of the model on the images plus that noise."""
    from kdjax import data, evaluators, parallel
    mesh = parallel.make_mesh()
    d = data.build(dict(name="digits", eval_split="test[:64]"), seed=0, batch_size=8, eval_batch_size=64)
    eval_data = d.eval
    model = models.get_model("vgg4", num_classes=10, width=0.125)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)), train=False)
    entry = dict(type="classification", noise_sigmas=(0.0, 0.5), noise_seed=3)
    a = evaluators.build("eval", entry, mesh=mesh, data=d).run(model.apply, variables)
    b = evaluators.build("eval", entry, mesh=mesh, data=d).run(model.apply, variables)
    assert a == b and "accuracy_noise_0" not in a
    batch = next(eval_data.batches())
    noisy = batch["image"] + 0.5 * np.asarray(jax.random.normal(jax.random.fold_in(jax.random.key(3), 0),
                                                                 batch["image"].shape))
    logits = model.apply(variables, noisy, train=False)[0]
    assert a["accuracy_noise_0.5"] == pytest.approx(float(np.mean(np.argmax(logits, -1) == batch["label"])))


def _torchvision_style_state_dict(blocks):
    """Shapes as torchvision names them (OIHW convs, (out, in) Linear), built from the architecture alone."""
    rng = np.random.default_rng(0)
    sd = {}

    def conv(name, o, i, k):  # He-scaled, so 34 layers of random weights stay finite
        sd[f"{name}.weight"] = (rng.normal(size=(o, i, k, k)) * np.sqrt(2.0 / (i * k * k))).astype(np.float32)

    def bn(name, c):
        sd[f"{name}.weight"] = rng.uniform(0.5, 1.0, size=c).astype(np.float32)
        for p in ("bias", "running_mean"):
            sd[f"{name}.{p}"] = (0.1 * rng.normal(size=c)).astype(np.float32)
        sd[f"{name}.running_var"] = rng.uniform(0.5, 2.0, size=c).astype(np.float32)

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    in_c = 64
    for s, (n, c) in enumerate(zip(blocks, (64, 128, 256, 512))):
        for b in range(n):
            p = f"layer{s + 1}.{b}"
            conv(f"{p}.conv1", c, in_c if b == 0 else c, 3)
            bn(f"{p}.bn1", c)
            conv(f"{p}.conv2", c, c, 3)
            bn(f"{p}.bn2", c)
            if b == 0 and s > 0:
                conv(f"{p}.downsample.0", c, in_c, 1)
                bn(f"{p}.downsample.1", c)
        in_c = c
    sd["fc.weight"] = (rng.normal(size=(1000, 512)) / np.sqrt(512)).astype(np.float32)
    sd["fc.bias"] = rng.normal(size=1000).astype(np.float32)
    return sd


def test_torchvision_conversion_fits_the_flax_resnet34():
    sd = _torchvision_style_state_dict((3, 4, 6, 3))
    converted = models.from_torch("resnet34", sd)
    model = models.get_model("resnet34", num_classes=1000)
    ref = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)), train=False))
    assert jax.tree.structure(converted) == jax.tree.structure(ref)
    jax.tree.map(lambda a, b: np.testing.assert_equal(np.shape(a), b.shape), converted, ref)
    # OIHW -> HWIO: torch weight[o, i, h, w] lands at kernel[h, w, i, o]
    np.testing.assert_equal(converted["params"]["layer2_0"]["Conv_0"]["kernel"][2, 1, 5, 7],
                            sd["layer2.0.conv1.weight"][7, 5, 2, 1])
    out = model.apply(converted, jnp.ones((1, 64, 64, 3)), train=False)[0]
    assert out.shape == (1, 1000) and bool(jnp.all(jnp.isfinite(out)))
