"""Paper 001's configs: every cell of the supplement's Tables B.1-B.3 builds its config and loss terms and carries
the published row; both networks of every pair build at 224 px; errors name the
valid choices. Training steps: tests/test_configs.py (COCO L2D cell, offline 3D with both views) and
tests/train/test_degenerate_inputs.py (every term)."""
import jax
import jax.numpy as jnp
import pytest

from configs.ml_3d import coco, common, fashion_mnist_mosaic, voc
from kdjax.train import stage as stage_lib
from kdjax.train import terms

MODULES = {"coco": coco, "voc": voc}
BUILT = [m for m in common.METHODS if m != "mdkd"]


@pytest.mark.parametrize("dataset", ["coco", "voc"])
def test_every_cell_builds_its_losses_and_quotes_the_supplement(dataset):
    for pair, rows in common.PUBLISHED[dataset].items():
        assert set(rows) == set(common.METHODS) | {"teacher"}
        for method in BUILT:
            config = MODULES[dataset].get_config(f"pair={pair},method={method},teacher_pretrained=none,"
                                                 "student_pretrained=none")
            terms.build_terms(config.stages.student.losses.to_dict())
            assert config.info.published_mAP_OF1_CF1 == rows[method] and config.info.table in ("B.1", "B.2", "B.3")
            assert config.stage_order == (("student",) if method == "student" else ("teacher", "student"))
    swapped = MODULES[dataset].get_config("swap_weights=True,teacher_pretrained=none,student_pretrained=none")
    assert (swapped.stages.student.losses.pd.weight, swapped.stages.student.losses.ndd.weight) == (10.0, 100.0)


@pytest.mark.parametrize("dataset", ["coco", "voc"])
def test_every_pair_builds_both_networks_at_224_px(dataset):
    """Both networks of every pair under the ML-Decoder at 224 px (abstractly): logits and the label-wise
    embeddings LED distils; the full validation of a cell (data, terms, optimiser) runs in tests/test_configs.py."""
    num_labels = 80 if dataset == "coco" else 20
    for pair in common.PUBLISHED[dataset]:
        config = MODULES[dataset].get_config(f"pair={pair},method=l2d,teacher_pretrained=none,student_pretrained=none")
        for stage in config.stage_order:
            model = stage_lib.build_model(config.stages[stage].model.to_dict(), num_labels)
            x = jnp.zeros((1, 224, 224, 3))
            out = jax.eval_shape(lambda m=model: m.init_with_output(jax.random.key(0), x, train=False)[0])
            assert out[0].shape == (1, num_labels), (pair, stage)
            assert out[1]["label_embeddings"].shape == (1, num_labels, 768), (pair, stage)


def test_choices_are_named():
    with pytest.raises(ValueError, match="Unknown pair 'vgg13-vgg8' for coco; valid pairs: vgg13-mobilenetv2"):
        coco.get_config("pair=vgg13-vgg8")
    with pytest.raises(ValueError, match="Unknown method 'dist'; valid methods: student, rkd"):
        coco.get_config("method=dist")
    with pytest.raises(ValueError, match="method=mdkd: MDKD .* is not re-implemented"):
        coco.get_config("method=mdkd")
    with pytest.raises(ValueError, match="ndd_pairs='views' pairs each image's weak and strong views: set views=both"):
        coco.get_config("ndd_pairs=views")
    with pytest.raises(ValueError, match="Unknown ndd_pairs 'pairs'"):
        fashion_mnist_mosaic.get_config("ndd_pairs=pairs")
    with pytest.raises(ValueError, match="starts from ImageNet weights"):
        voc.get_config("pair=swin_t-resnet18")
    teacher_first = fashion_mnist_mosaic.get_config("method=l2d")
    assert teacher_first.stage_order == ("teacher", "student")
    reuse = fashion_mnist_mosaic.get_config("method=l2d,teacher_checkpoint=/t")
    assert reuse.stage_order == ("student",) and reuse.stages.student.teacher.checkpoint == "/t"


def test_offline_study_table_pairs_each_method_with_the_student_of_its_seed(tmp_path):
    from experiments import ml_3d_offline
    cell = lambda m: {"eval/mAP": m, "eval/OF1": 0.8, "eval/CF1": 0.7, "wall_time": 60.0, "commit": "abc"}  # noqa: E731
    cells = {("teacher", 0): cell(0.9), ("teacher", 1): cell(0.9), ("student", 0): cell(0.80),
             ("student", 1): cell(0.90), ("mld", 0): cell(0.82), ("mld", 1): cell(0.91)}
    ml_3d_offline.write(str(tmp_path), cells, ["student", "mld", "3d"], [0, 1])
    table = (tmp_path / "table.md").read_text()
    # seed-paired differences +2 and +1: the seed spread of the student (7.07) does not enter them
    assert "| mld | 86.50 ± 6.36 | 80.00 ± 0.00 | 70.00 ± 0.00 | +1.50 ± 0.71 |" in table
    assert "| student | 85.00 ± 7.07 |" in table
    assert "| 3d | not run | not run | not run |  |" in table
    assert (tmp_path / "ml_3d_offline.png").exists()


def test_offline_study_refuses_an_unknown_variant(capsys):
    from experiments import ml_3d_offline
    with pytest.raises(SystemExit):
        ml_3d_offline.main(["--workdir=unused", "--variants=mld,3D"])
    err = capsys.readouterr().err
    assert "'3D'" in err and "3d_views" in err
