"""configs/baselines: the CIFAR-100 grid resolves for every method x pair; the pipeline-dependent methods (CRD's
contrast rows, MLLD's strong view, OFD's train-mode teacher) run through the real loop on offline Fashion-MNIST."""
import json
import os

import pytest

from configs.baselines import cifar100, fashion_mnist
from kdjax.train import loop, recipe
from tests import helpers


def _readme_table(first_column: str):
    """A table of configs/baselines/README.md: {first cell: {column: text}}."""
    lines = open(os.path.join(helpers.REPO, "configs", "baselines", "README.md")).read().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_column} |"))
    columns = [c.strip() for c in lines[header].strip("|").split("|")]
    table = {}
    for line in lines[header + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        table[cells[0]] = dict(zip(columns, cells))
    return table


MODERN = ("dist", "ctkd")  # the second README table's rows, with the logit_stand cells


def test_grid_covers_every_method_and_pair_with_the_readme_number():
    table = _readme_table("T -> S")
    names = dict(zip(cifar100.METHODS[1:], ("KD", "FitNet", "AT", "RKD", "PKT", "VID", "CRD", "OFD", "ReviewKD",
                                            "DKD", "MLLD")))
    for pair in cifar100.PAIRS:
        row = table[pair.replace("-", " -> ")]
        for method in cifar100.METHODS:
            if method in MODERN:
                continue
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


@pytest.mark.parametrize("row, method, logit_stand", [
    ("DIST", "dist", False), ("CTKD", "ctkd", False), ("KD + LS", "kd", True), ("CTKD + LS", "ctkd", True),
    ("DKD + LS", "dkd", True), ("MLLD + LS", "mlld", True)])
def test_todays_logit_methods_carry_the_readme_number_and_the_logged_settings(row, method, logit_stand):
    """Every cell of the README's second table: the config's published top-1, and for + LS the base temperature T,
    KD weight w (and DKD's BETA) that the authors' log names give, in the loss block the config builds."""
    cells = _readme_table("method")[row]
    assert cells["arguments"] == f"`method={method}" + (",logit_stand=True`" if logit_stand else "`")
    for pair in cifar100.PAIRS:
        config = cifar100.get_config(f"method={method},pair={pair},logit_stand={logit_stand},teacher_checkpoint=/c")
        cell = cells[pair.replace("-", " -> ")]
        published = config.info.published_top1
        assert (cell == "—") == (published is None), (row, pair)
        if published is None:
            continue
        assert float(cell.split()[0]) == published, (row, pair)
        losses = config.stages.student.losses
        if logit_stand:
            settings = dict(item.split() for item in cell[cell.index("(") + 1:-1].split(", "))
            t, w = float(settings["T"]), float(settings["w"])
            block = losses[method]
            assert block.logit_stand and losses.ce.weight == (0.1 if method == "ctkd" else 1.0)
            if method == "dkd":
                beta = float(settings.get("beta", cifar100.DKD_BETA[pair]))
                assert (block.temperature, block.alpha, block.beta) == (t, w, beta * w), pair
            elif method == "ctkd":
                assert block.weight == w
            else:
                assert block.weight == w and (block.temperatures[0] if method == "mlld" else block.temperature) == t
    if method == "dist":
        assert dict(config.stages.student.losses.dist) == dict(weight=2.0, beta=1.0, gamma=1.0, tau=4.0)


def test_logit_stand_and_ctkd_on_refuse_what_has_no_recipe():
    with pytest.raises(ValueError, match="logit_stand applies to the logit methods kd, dkd, mlld, ctkd, not 'dist'"):
        cifar100.get_config("method=dist,logit_stand=True")
    with pytest.raises(ValueError, match="Unknown ctkd_on 'mlld'; valid: kd, dkd"):
        cifar100.get_config("method=ctkd,ctkd_on=mlld")
    with pytest.raises(ValueError, match="publishes CTKD on KD only"):
        cifar100.get_config("method=ctkd,ctkd_on=dkd,logit_stand=True")
    on_dkd = cifar100.get_config("method=ctkd,ctkd_on=dkd,pair=vgg13-vgg8").stages.student.losses
    assert on_dkd.ctkd.kd_type == "dkd" and (on_dkd.ctkd.dkd_alpha, on_dkd.ctkd.dkd_beta) == (1.0, 2.0)


def test_bad_method_or_pair_lists_the_choices():
    with pytest.raises(ValueError, match="Unknown method 'kdd'; valid methods: ce, kd, fitnet"):
        cifar100.get_config("method=kdd")
    with pytest.raises(ValueError, match="Unknown pair 'resnet8x4-resnet32x4'; valid pairs: resnet32x4-resnet8x4"):
        cifar100.get_config("pair=resnet8x4-resnet32x4")


def test_fashion_mnist_width_sets_both_networks():
    """`width=1.0` (benchmarks/cache_sweep.py) runs the CIFAR networks; the teacher read from a checkpoint too."""
    config = fashion_mnist.get_config("width=1.0,teacher_checkpoint=/t")
    assert config.stages.student.model.width == config.stages.student.teacher.model.width == 1.0
    assert fashion_mnist.get_config("").stages.teacher.model.width == fashion_mnist.WIDTH == 0.25


@pytest.fixture(scope="module")
def fmnist_teacher(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("bl_teacher")
    loop.run_stage(fashion_mnist.get_config("runlocal"), "teacher", str(workdir))
    return str(workdir / "teacher" / "checkpoints")


@pytest.mark.trains("configs/baselines/fashion_mnist.py")
@pytest.mark.parametrize("method", ["crd", "mlld", "ofd", "ctkd,logit_stand=True"])
def test_pipeline_dependent_methods_train_through_the_loop(method, fmnist_teacher, tmp_path):
    """CTKD: a term with its own trained parameter, checkpointed with the student; its temperature is logged."""
    config = fashion_mnist.get_config(f"runlocal,method={method},teacher_checkpoint={fmnist_teacher}")
    result = loop.run_stage(config, "student", str(tmp_path))
    assert result["status"] == "done" and result["step"] == 2
    records = [json.loads(l) for l in open(tmp_path / "student" / "metrics.jsonl")]
    logged = {k for r in records for k in r if k.startswith("loss/")}
    assert logged == {f"loss/{n}" for n in config.stages.student.losses} | {"loss/total"}
    if method.startswith("ctkd"):
        temperatures = [r["ctkd/temperature"] for r in records if "ctkd/temperature" in r]
        assert temperatures and all(1.0 < t < 21.0 for t in temperatures)
