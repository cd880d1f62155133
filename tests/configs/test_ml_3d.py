"""The 3D paper's (Li & Cheng) configs: every cell of the supplement's Tables B.1-B.3 builds its config and loss terms and carries
the published row; both networks of every pair build at 224 px; errors name the
valid choices. Training steps: tests/test_configs.py (COCO L2D cell, offline 3D with both views) and
tests/train/test_degenerate_inputs.py (every term)."""
import jax
import jax.numpy as jnp
import pytest

from configs.ml_3d import coco, common, fashion_mnist_mosaic, voc
from kdjax import models
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
            model = models.from_config(config.stages[stage].model.to_dict(), num_classes=num_labels)
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


def test_the_reconstructions_open_choices_are_options_with_named_values():
    """configs/ml_3d/README.md's open choices: NDD's form and reduction reach the term, the linear student head
    builds, method=focal trains the task loss alone without a teacher; bad values name the valid ones."""
    cell = "teacher_pretrained=none,student_pretrained=none"
    config = coco.get_config(f"method=3d,ndd_form=bound,ndd_reduction=per_image,student_head=linear,{cell}")
    ndd = {w.name: w.term for w in terms.build_terms(config.stages.student.losses.to_dict())}["ndd"]
    assert (ndd.form, ndd.reduction) == ("bound", "per_image")
    model = models.from_config(config.stages.student.model.to_dict(), num_classes=80)
    logits, features = jax.eval_shape(lambda: model.init_with_output(jax.random.key(0), jnp.zeros((1, 32, 32, 3)),
                                                                     train=False)[0])
    assert logits.shape == (1, 80) and "label_embeddings" not in features
    focal = coco.get_config(f"method=focal,{cell}")
    assert focal.stage_order == ("student",) and focal.stages.student.losses.to_dict() == {
        "focal": {"weight": 1.0, "gamma": 2.0}} and focal.info.published_mAP_OF1_CF1 is None
    with pytest.raises(ValueError, match="Unknown ndd_form 'upper'; valid: exact, bound"):
        coco.get_config(f"ndd_form=upper,{cell}")
    with pytest.raises(ValueError, match="Unknown ndd_reduction 'mean'; valid: pairs, global, sum, per_image"):
        fashion_mnist_mosaic.get_config("ndd_reduction=mean")
    with pytest.raises(ValueError, match="Unknown student_head 'mlp'; valid: ml_decoder, linear"):
        voc.get_config(f"student_head=mlp,{cell}")
    with pytest.raises(ValueError, match="method=l2d distils the ML-Decoder's label-wise embeddings"):
        fashion_mnist_mosaic.get_config("method=l2d,student_head=linear")
    control = fashion_mnist_mosaic.get_config("variant=student_linear_head")
    assert control.stage_order == ("student",) and control.stages.student.model.head == "gap_fc"
    assert control.stages.student.losses.to_dict() == fashion_mnist_mosaic.get_config("variant=student").stages[
        "student"].losses.to_dict()
    wide = fashion_mnist_mosaic.get_config("variant=l2d_768")
    assert wide.stages.student.model.head_width == 768 and wide.stages.teacher.model.head_width == 128
    with pytest.raises(ValueError, match="ndd: form='upper'; valid: \\['exact', 'bound'\\]"):
        terms.build_terms({"ndd": dict(weight=1.0, form="upper")})


@pytest.mark.parametrize("make", [lambda views: fashion_mnist_mosaic.get_config(f"method=3d,views={views}"),
                                  lambda views: coco.get_config(f"method=3d,views={views},teacher_pretrained=none,"
                                                                "student_pretrained=none")])
def test_two_view_students_distil_the_single_view_teacher(make):
    """With views=both / weak_strong only the student reads two views: the teacher stage (its identity, so the
    teacher a sweep shares between variants) is the single-view one, and the student's batch has both views."""
    from kdjax.sweep import cells
    from kdjax.train import recipe
    single = make("single")
    for views in ("weak_strong", "both"):
        config = make(views)
        assert cells.shared_stages(config) == cells.shared_stages(single)
        student = recipe.resolve_stage(config, "student").data.views
        assert set(student) == {"image", "image_weak"} and student != recipe.resolve_stage(single, "student").data.views
        assert recipe.resolve_stage(config, "teacher").data == recipe.resolve_stage(single, "teacher").data


def test_compute_dtype_reaches_every_network_of_the_coco_and_voc_configs():
    """`--config.compute_dtype=bfloat16` is the one bf16 switch: the L2D model blocks carry no dtype of their own that
    would keep a network in float32 (they did, through a `:dtype=` argument now gone)."""
    from configs.multilabel import teacher as multilabel_teacher
    from kdjax.train import recipe
    configs = [MODULES[d].get_config("method=3d,teacher_pretrained=none,student_pretrained=none")
               for d in ("coco", "voc")] + [multilabel_teacher.get_config("pretrained=none")]
    for config in configs:
        config.compute_dtype = "bfloat16"
        for name in config.stage_order:
            stage = recipe.resolve_stage(config, name)
            models_of_stage = [stage.model] + ([stage.teacher.model] if stage.teacher else [])
            assert [m["dtype"] for m in models_of_stage] == ["bfloat16"] * len(models_of_stage), (name, stage.model)
    with pytest.raises(ValueError, match="'dtype'"):
        coco.get_config("dtype=bfloat16")
