"""The multi-label path end to end on the offline mosaic dataset: a stage's checks on multi-hot labels, and the
`multilabel` / `teacher_stats` evaluators' values equal the metrics of the model's own outputs."""
import jax
import numpy as np
import pytest

from kdjax import evaluators, metrics, models, parallel
from kdjax import data as data_lib
from kdjax.train import loop
from configs.multilabel import fashion_mnist_mosaic


def test_a_head_with_another_label_count_is_refused():
    config = fashion_mnist_mosaic.get_config("runlocal")
    config.stages.student.model.num_classes = 7
    with pytest.raises(Exception, match=r"stages.student.model: num_classes=7, but the data has 10 labels"):
        loop.validate(config)
    config = fashion_mnist_mosaic.get_config("runlocal")
    config.stages.teacher.model.head = "ml_decoderr"
    with pytest.raises(Exception, match="unknown head 'ml_decoderr'; valid heads: gap_fc, ml_decoder"):
        loop.validate(config)
    config = fashion_mnist_mosaic.get_config("runlocal")
    config.stages.teacher.model.name = "resnet8x5"
    with pytest.raises(Exception, match="unknown model 'resnet8x5'; valid models"):
        loop.validate(config)


def test_evaluators_report_the_metrics_of_the_models_outputs():
    mesh = parallel.make_mesh()
    data = data_lib.build(dict(name="fashion_mnist_mosaic", train_split="train[:48]", eval_split="test[:40]",
                                 normalization="none"), seed=0, batch_size=8, eval_batch_size=16)
    model = models.get_model("resnet8", num_classes=10, width=0.25, head="ml_decoder", head_width=32, head_hidden=64)
    images = data.eval_split.images.astype(np.float32) / 255.0
    variables = jax.jit(lambda k: model.init(k, images[:2], train=False))(jax.random.key(0))
    logits = np.asarray(jax.jit(lambda v, x: model.apply(v, x, train=False)[0])(variables, images))
    targets = data.eval_split.labels
    got = evaluators.build("eval", dict(type="multilabel"), mesh=mesh, data=data).run(model.apply, variables)
    want = metrics.multilabel_scores(logits, targets)
    mlgcn = metrics.multilabel_scores(logits, targets, convention="mlgcn")
    for key in ("mAP", "OF1", "CF1"):
        assert got[key] == pytest.approx(want[key], abs=1e-6) and got[f"mlgcn_{key}"] == pytest.approx(mlgcn[key],
                                                                                                        abs=1e-6)
    stats = evaluators.build("stats", dict(type="teacher_stats"), mesh=mesh, data=data).run(model.apply, variables)
    assert stats == pytest.approx(metrics.label_statistics(logits, targets), abs=1e-6)
    with pytest.raises(ValueError, match=r"conventions \['voc'\]; valid: \['l2d', 'mlgcn'\]"):
        evaluators.build("eval", dict(type="multilabel", conventions=("voc",)), mesh=mesh, data=data)


def test_l2d_views_of_the_supplement():
    from configs.multilabel import common as multilabel
    assert multilabel.views_block("single") == {"image": "resize(224, 224)|flip|cutout_pil|l2d_randaugment"}
    two = multilabel.views_block("weak_strong", image_size=96)
    assert two == {"image": "resize(96, 96)|cutout_pil|l2d_randaugment", "image_weak": "resize(96, 96)|flip"}
    with pytest.raises(ValueError, match="Unknown views 'weak'; valid: single, weak_strong, both"):
        multilabel.views_block("weak")
    with pytest.raises(ValueError, match="nus_wide_root"):
        multilabel.data_block("nus_wide")
    with pytest.raises(ValueError, match="Unknown dataset 'voc2012'; valid: coco, voc, nus_wide"):
        multilabel.data_block("voc2012")
