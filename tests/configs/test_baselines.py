"""configs/baselines: the CIFAR-100 grid resolves for every method x pair; the pipeline-dependent methods (CRD's
contrast rows, MLLD's strong view, OFD's train-mode teacher) run through the real loop on offline Fashion-MNIST."""
import json
import os

import pytest

from configs.baselines import cifar100, fashion_mnist
from kdjax.train import loop, recipe
from tests import helpers


def _readme_table():
    """configs/baselines/README.md's published table: {(teacher, student): {column: text}}."""
    lines = open(os.path.join(helpers.REPO, "configs", "baselines", "README.md")).read().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| T -> S |"))
    columns = [c.strip() for c in lines[header].strip("|").split("|")]
    table = {}
    for line in lines[header + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        table[tuple(cells[0].split(" -> "))] = dict(zip(columns, cells))
    return table


def test_grid_covers_every_method_and_pair_with_the_readme_number():
    table = _readme_table()
    names = dict(zip(cifar100.METHODS[1:], ("KD", "FitNet", "AT", "RKD", "PKT", "VID", "CRD", "OFD", "ReviewKD",
                                            "DKD", "MLLD")))
    for pair in cifar100.PAIRS:
        row = table[tuple(pair.split("-"))]
        for method in cifar100.METHODS:
            config = cifar100.get_config(f"method={method},pair={pair},teacher_checkpoint=/ckpt")
            spec = recipe.resolve_stage(config, "student")
            assert spec.model["name"] == pair.split("-")[1]
            assert (spec.teacher is None) == (method == "ce")
            cell = row["T / S alone"].split(" / ")[1] if method == "ce" else row[names[method]]
            assert config.info.published_top1 == float(cell), (pair, method)
            small = pair.split("-")[1] in cifar100.SMALL_LR_STUDENTS
            lr = spec.schedule["base_lr"]
            assert lr == (0.01 if small else (0.025 if method == "mlld" else 0.05))
    assert cifar100.get_config("method=mlld,pair=resnet32x4-shufflev1").stages.student.num_epochs == 960
    assert cifar100.get_config("method=crd").stages.student.data.contrast_negatives == 16384
    assert cifar100.get_config("method=mlld").stages.student.data.views.image_strong.endswith("|randaugment|cutout")


def test_bad_method_or_pair_lists_the_choices():
    with pytest.raises(ValueError, match="Unknown method 'kdd'; valid methods: ce, kd, fitnet"):
        cifar100.get_config("method=kdd")
    with pytest.raises(ValueError, match="Unknown pair 'resnet8x4-resnet32x4'; valid pairs: resnet32x4-resnet8x4"):
        cifar100.get_config("pair=resnet8x4-resnet32x4")


@pytest.fixture(scope="module")
def fmnist_teacher(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("bl_teacher")
    loop.run_stage(fashion_mnist.get_config("runlocal"), "teacher", str(workdir))
    return str(workdir / "teacher" / "checkpoints")


@pytest.mark.trains("configs/baselines/fashion_mnist.py")
@pytest.mark.parametrize("method", ["crd", "mlld", "ofd"])
def test_pipeline_dependent_methods_train_through_the_loop(method, fmnist_teacher, tmp_path):
    config = fashion_mnist.get_config(f"runlocal,method={method},teacher_checkpoint={fmnist_teacher}")
    result = loop.run_stage(config, "student", str(tmp_path))
    assert result["status"] == "done" and result["step"] == 2
    records = [json.loads(l) for l in open(tmp_path / "student" / "metrics.jsonl")]
    logged = {k for r in records for k in r if k.startswith("loss/")}
    assert logged == {f"loss/{n}" for n in config.stages.student.losses} | {"loss/total"}
