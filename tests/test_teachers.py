"""Published teachers: the registry, the file checks (missing, corrupt), and a student stage distilling from a
converted mdistiller teacher on mocked CIFAR-100, whose measured accuracy is checked against PyTorch's predictions
(parity extra) and against the published number (a warning)."""
import hashlib
import io
import json

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from configs.baselines import cifar100
from kdjax import models, teachers
from kdjax.models import torch_convert
from kdjax.train import loop, recipe
from tests.models.test_mdistiller_convert import random_state_dict, torch_reference

# mdistiller / RepDistiller `dataset/cifar100.py` normalisation, restated
MEAN, STD = np.array([0.5071, 0.4867, 0.4408]), np.array([0.2675, 0.2565, 0.2761])
PAIR = "vgg13-vgg8"


def test_registry_matches_the_published_table_and_the_converters():
    """Each entry converts with its source's converter, and its top-1 is the teacher column of the published pair
    table (configs/baselines, transcribed separately from the mdistiller / RepDistiller READMEs)."""
    for name, entry in teachers.TEACHERS.items():
        assert f"{entry.source}:{entry.arch}" in torch_convert.CONVERTERS, name
        assert entry.arch in models.model_names()
        pairs = [p for p in cifar100.PUBLISHED if p.split("-")[0] == entry.arch]
        for pair in pairs:
            assert cifar100.PUBLISHED[pair][0][0] == entry.top1, (name, pair)
        assert entry.file.endswith("_vanilla/ckpt_epoch_240.pth") and name.split(":")[1] in entry.file
    assert {teachers.get(f"mdistiller:{n}").top1 for n in ("resnet56", "resnet110")} == {72.34, 74.31}
    with pytest.raises(ValueError, match=r"unknown pretrained teacher 'mdistiller:resnet9000'; valid pretrained teachers: mdistiller:"):
        teachers.get("mdistiller:resnet9000")


def test_a_missing_file_says_where_it_comes_from(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"vgg13_vanilla/ckpt_epoch_240.pth.*cifar_teachers.tar"):
        teachers.resolve_path("mdistiller:vgg13", str(tmp_path))
    (tmp_path / "cifar_teachers" / "vgg13_vanilla").mkdir(parents=True)
    (tmp_path / "cifar_teachers" / "vgg13_vanilla" / "ckpt_epoch_240.pth").write_bytes(b"x")
    assert teachers.resolve_path("mdistiller:vgg13", str(tmp_path)).endswith("cifar_teachers/vgg13_vanilla/"
                                                                             "ckpt_epoch_240.pth")


def test_a_corrupt_file_fails_the_hash_check(tmp_path):
    path = tmp_path / "vgg13.npz"
    np.savez(path, **random_state_dict("vgg13"))
    good = hashlib.sha256(path.read_bytes()).hexdigest()
    variables, record = teachers.load("mdistiller:vgg13", str(path), num_classes=100, expected_sha256=good)
    assert record["sha256"] == good and record["expected_top1"] == 74.64
    assert variables["params"]["Conv_0"]["kernel"].shape == (3, 3, 3, 64)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"has sha256 [0-9a-f]{{64}}, expected {good}: the file is corrupt"):
        teachers.load("mdistiller:vgg13", str(path), num_classes=100, expected_sha256=good)


def test_accuracy_warning_beyond_the_tolerance():
    assert teachers.accuracy_warning("mdistiller:resnet32x4", 79.42 - teachers.ACCURACY_TOLERANCE + 0.01) is None
    assert "measures 70.00% top-1" in teachers.accuracy_warning("mdistiller:resnet32x4", 70.0)


def test_config_errors_name_the_choices():
    config = cifar100.get_config(f"runlocal,pair={PAIR},method=kd,teacher_pretrained=/nowhere")
    config.stages.student.teacher.pretrained = "mdistiller:vgg14"
    with pytest.raises(recipe.ConfigError, match=r"unknown pretrained teacher 'mdistiller:vgg14'; valid pretrained teachers:"):
        recipe.resolve_stage(config, "student")
    config.stages.student.teacher.update(pretrained="mdistiller:vgg13", model=dict(name="vgg8"))
    with pytest.raises(recipe.ConfigError, match=r"contradicts pretrained='mdistiller:vgg13' \(a vgg13\)"):
        recipe.resolve_stage(config, "student")
    config.stages.student.teacher.update(model={}, checkpoint="/x")
    with pytest.raises(recipe.ConfigError, match=r"set exactly one of .* got \['checkpoint', 'pretrained'\]"):
        recipe.resolve_stage(config, "student")
    with pytest.raises(ValueError, match="not both"):
        cifar100.get_config("teacher_pretrained=/a,teacher_checkpoint=/b")


def _png(image):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _mock_cifar100(images, labels):
    """test = the given images and labels; train = the same images (the student's two steps need some)."""
    def as_data_source(builder, split, decoders=None, **kwargs):
        return [{"image": _png(im), "label": np.int64(y), "coarse_label": np.int64(0), "id": f"{i}"}
                for i, (im, y) in enumerate(zip(images, labels))]
    return tfds.testing.mock_data(as_data_source_fn=as_data_source)


def _student_config(path, **teacher):
    config = cifar100.get_config(f"runlocal,pair={PAIR},method=kd,teacher_pretrained={path}")
    config.stages.student.model.width = 0.125
    config.stages.student.teacher.update(teacher)
    return config


def test_a_student_distils_from_a_published_teacher_and_records_it(tmp_path):
    """Torch-free (.npz): the stage loads and measures the teacher once, teacher.json holds hash, published and
    measured top-1 and, for these random weights, the loud warning; a wrong pinned hash stops the stage."""
    path = tmp_path / "vgg13.npz"
    np.savez(path, **{f"module.{k}": v for k, v in random_state_dict("vgg13", seed=3).items()})
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (64, 32, 32, 3), dtype=np.uint8)
    with _mock_cifar100(images, rng.integers(0, 100, 64)):
        result = loop.run(_student_config(str(path)), str(tmp_path / "run"))[-1]
        assert result["status"] == "done"
        record = json.load(open(tmp_path / "run" / "student" / "teacher.json"))
        assert record["pretrained"] == "mdistiller:vgg13" and record["expected_top1"] == 74.64
        assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert record["measured_top1"] == pytest.approx(100 * record["eval"]["eval/accuracy"])
        assert "WARNING: pretrained teacher 'mdistiller:vgg13' measures" in record["accuracy_warning"]
        with pytest.raises(ValueError, match="expected 0000: the file is corrupt or not this teacher"):
            loop.run(_student_config(str(path), sha256="0000"), str(tmp_path / "other"))


def test_measured_accuracy_equals_pytorchs_on_the_same_images(tmp_path):
    """The published file format (torch.save({'model': state_dict}) under cifar_teachers/vgg13_vanilla/): labels
    are PyTorch's predictions for the first half of the eval images and wrong for the rest, so kdjax must measure
    exactly 50% with mdistiller's normalisation and the converted weights."""
    torch = pytest.importorskip("torch")
    reference = torch_reference("vgg13", seed=4)
    directory = tmp_path / "cifar_teachers" / "vgg13_vanilla"
    directory.mkdir(parents=True)
    torch.save({"model": reference.state_dict(), "epoch": 240}, directory / "ckpt_epoch_240.pth")
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, (64, 32, 32, 3), dtype=np.uint8)
    x = ((images / 255.0 - MEAN) / STD).astype(np.float32).transpose(0, 3, 1, 2)
    with torch.no_grad():
        predicted = reference(torch.from_numpy(x))[0].argmax(1).numpy()
    labels = np.where(np.arange(64) < 32, predicted, (predicted + 1) % 100)
    with _mock_cifar100(images, labels):
        loop.run(_student_config(str(tmp_path)), str(tmp_path / "run"))
    record = json.load(open(tmp_path / "run" / "student" / "teacher.json"))
    assert record["measured_top1"] == 50.0


def test_the_zoo_and_icd_configs_take_a_published_teacher_with_one_flag():
    from configs.icd import student
    config = cifar100.get_config("pair=resnet50_cifar-mobilenetv2,method=dkd,teacher_pretrained=/t")
    assert config.stage_order == ("student",)
    assert (config.stages.student.teacher.pretrained, config.stages.student.teacher.path) == ("mdistiller:ResNet50",
                                                                                              "/t")
    icd = student.get_config("pair=resnet50-mobilenetv2,method=crd,teacher_pretrained=/t")
    assert icd.stages.student.teacher.pretrained == "mdistiller:ResNet50" and icd.stage_order == ("student",)
    with pytest.raises(ValueError, match=r"method='ours' needs an ICD teacher"):
        student.get_config("method=ours,teacher_pretrained=/t")
    with pytest.raises(ValueError, match=r"dataset='cifar10'.* needs a CE teacher of its own data"):
        student.get_config("dataset=cifar10,method=kd,teacher_pretrained=/t")


def test_a_checkpoint_with_numpy_scalars_still_reads(tmp_path):
    """RepDistiller-style files may pickle a NumPy `best_acc` beside the tensors, which torch's weights-only loader
    refuses; the reader falls back to a full load of the (user-supplied) file."""
    torch = pytest.importorskip("torch")
    reference = torch_reference("resnet8")
    path = tmp_path / "ckpt.pth"
    torch.save({"model": reference.state_dict(), "best_acc": np.float64(72.3), "epoch": 240}, path)
    state = teachers.read_state_dict(str(path))
    assert float(state["best_acc"]) == 72.3
    models.from_torch("resnet8", state, source="mdistiller")
