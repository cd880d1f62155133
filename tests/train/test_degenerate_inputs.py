"""Every registered loss term, in one train step, on degenerate batches: all-zero images (dead ReLUs, zero feature
maps), identical rows, a single class. Values and gradients must stay finite: a finite loss with a NaN gradient
would otherwise corrupt the parameters a checkpoint saves (the trainer's guard stops such a run; this test keeps
the terms from triggering it)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from kdjax import models, parallel, tasks
from kdjax.train import step as step_lib
from kdjax.train import terms

B, SIZE, CLASSES, DATASET = 8, 16, 5, 40
# Options of each term for a VGG-8 pair at 16 px (CRD with K = 4 negatives; LwF on an auxiliary head). A term
# registered without an entry here fails the test below: add it, so it is swept too.
TERM_OPTIONS = {
    "ce": dict(weight=1.0), "kd": dict(weight=1.0), "logit_mse": dict(weight=1.0),
    "activation_matching": dict(weight=1.0), "dkd": dict(weight=1.0, warmup_epochs=1),
    "at": dict(weight=1.0), "rkd": dict(weight=1.0), "pkt": dict(weight=1.0), "fitnet": dict(weight=1.0, hint_layer=1),
    "ofd": dict(weight=1.0), "reviewkd": dict(weight=1.0), "vid": dict(weight=1.0), "crd": dict(weight=1.0),
    "mlld": dict(weight=1.0), "jacobian_matching": dict(weight=1.0, normalize=True),
    "jacobian_matching_jvp": dict(weight=1.0), "jacobian_norm": dict(weight=1.0),
    "attention_matching": dict(weight=1.0, student_layers=("feats.1",), teacher_layers=("feats.1",)),
    "attention_jacobian": dict(weight=1.0, student_layer="feats.0", teacher_layer="feats.0"),
    "lwf": dict(weight=1.0, head="aux_logits"),
    "icd": dict(weight=1.0, margin_threshold=-0.99, capacity=2),  # everything qualifies and fires
    "dist": dict(weight=1.0, tau=4.0), "ctkd": dict(weight=1.0),
    # logit standardization: a constant row (zeros, one class) has std 0
    "kd_ls": dict(term="kd", weight=1.0, logit_stand=True), "dkd_ls": dict(term="dkd", weight=1.0, logit_stand=True),
    "mlld_ls": dict(term="mlld", weight=1.0, logit_stand=True),
    "ctkd_dkd_ls": dict(term="ctkd", weight=1.0, kd_type="dkd", logit_stand=True),
}
# Terms on an embedding model's batch (metric learning, no teacher); run by their own sweep below.
METRIC_TERM_OPTIONS = {"margin": dict(weight=1.0), "rmargin": dict(weight=1.0, p_switch=0.5),
                       "multisimilarity": dict(weight=1.0), "proxyanchor": dict(weight=1.0),
                       "s2sd": dict(weight=1.0, base="margin", target_dims=(4, 8), pool_aggr=True,
                                    feat_distill=True, feat_delay=0)}
# Terms on a multi-label classifier's batch (multi-hot labels: none, all, and a random half positive).
MULTILABEL_TERM_OPTIONS = {
    "focal": dict(weight=1.0), "mld": dict(weight=1.0), "led": dict(weight=1.0), "ps": dict(weight=1.0),
    "ml_mse": dict(weight=1.0, on="probs"), "pd": dict(weight=1.0), "ndd": dict(weight=1.0),
    "ndd_views": dict(term="ndd", weight=1.0, pairs="views"),
    "ndd_permutation": dict(term="ndd", weight=1.0, pairs="permutation", teacher_view="image_weak"),
    "pd_binary": dict(term="pd", weight=1.0, form="binary", teacher_view="image_weak")}
TEST_ONLY = {"nan_from_step_3", "nan_gradient_from_step_3"}  # registered by tests/train/test_loop.py


def _batches(multi_hot=False):
    rng = np.random.default_rng(0)
    image = rng.normal(size=(SIZE, SIZE, 3)).astype(np.float32)
    index = np.arange(B, dtype=np.int32)
    contrast = np.stack([np.concatenate([[i], (i + 1 + np.arange(4)) % DATASET]) for i in index]).astype(np.int32)
    base = dict(label=rng.integers(0, CLASSES, B).astype(np.int32), index=index, contrast_idx=contrast)
    zeros = np.zeros((B, SIZE, SIZE, 3), np.float32)
    identical = np.broadcast_to(image, (B, SIZE, SIZE, 3)).copy()
    varied = rng.normal(size=(B, SIZE, SIZE, 3)).astype(np.float32)
    views = lambda x: dict(image=x, image_strong=x, image_view2=x, image_weak=x)  # noqa: E731
    if multi_hot:
        half = (rng.random((B, CLASSES)) < 0.5).astype(np.float32)
        return {"zeros_no_label": dict(base, **views(zeros), label=np.zeros((B, CLASSES), np.float32)),
                "identical_every_label": dict(base, **views(identical), label=np.ones((B, CLASSES), np.float32)),
                "varied": dict(base, **views(varied), label=half)}
    return {
        "zeros": dict(base, **views(zeros)),
        "identical_rows": dict(base, **views(identical)),
        "one_class": dict(base, **views(varied), label=np.zeros(B, np.int32)),
    }


def test_every_registered_term_is_swept():
    swept = {options.get("term", name) for table in (TERM_OPTIONS, METRIC_TERM_OPTIONS, MULTILABEL_TERM_OPTIONS)
             for name, options in table.items()}
    assert set(terms.TERMS) - TEST_ONLY == swept


def _sweep(options, student, teacher, task):
    mesh = parallel.make_mesh()
    weighted = terms.build_terms(options, terms.DataFacts(num_examples=DATASET, num_classes=CLASSES))
    networks = step_lib.Networks(student, teacher)
    tx = optax.sgd(0.1, momentum=0.9)
    batches = {k: parallel.global_batch(v, mesh) for k, v in _batches(task == "multilabel").items()}
    first = next(iter(batches.values()))
    teacher_vars = teacher.init(jax.random.key(0), first["image"], train=False) if teacher else {}
    state = jax.jit(lambda r: step_lib.init_state(networks, weighted, tx, r, first, teacher_vars))(jax.random.key(1))
    train = step_lib.jit_train_step(mesh, networks=networks, weighted_terms=weighted, task=tasks.get_task(task),
                                    schedules={"default": lambda s: 0.1}, steps_per_epoch=10)
    for kind, batch in batches.items():
        new_state, m = train(jax.tree.map(jnp.copy, state), teacher_vars, batch)
        bad = {k: float(v) for k, v in m.items() if not np.isfinite(float(v))}
        assert not bad, f"{kind}: non-finite {bad}"
        assert float(m["train/finite"]) == 1.0, kind
        assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(new_state.params)), kind


def test_every_term_has_finite_values_and_gradients_on_degenerate_batches():
    _sweep(TERM_OPTIONS, models.get_model("vgg8", num_classes=CLASSES, width=0.0625, aux_classes=CLASSES),
           models.get_model("vgg8", num_classes=CLASSES, width=0.125), "classification")


def test_every_metric_term_has_finite_values_and_gradients_on_degenerate_batches():
    """Identical rows put every pair at distance 0 (sqrt at 0 in the margin's distances), one class leaves no
    negatives, zero images give equal embeddings."""
    _sweep(METRIC_TERM_OPTIONS, models.get_model("vgg8", num_classes=0, embedding_dim=8, width=0.0625), None,
           "metric_learning")


def test_every_multilabel_term_has_finite_values_and_gradients_on_degenerate_batches():
    """No positive label, every label positive, zero images; the ML-Decoder head (LayerNorms of identical rows)."""
    head = dict(head="ml_decoder", head_width=32, head_hidden=64)
    _sweep(MULTILABEL_TERM_OPTIONS, models.get_model("vgg8", num_classes=CLASSES, width=0.0625, **head),
           models.get_model("vgg8", num_classes=CLASSES, width=0.125, **head), "multilabel")


@pytest.mark.parametrize("mode", ["code", "paper"])
def test_attention_transfer_gradient_on_all_zero_maps_is_zero_not_nan(mode):
    """The review's trigger: an all-zero feature map (torch's F.normalize gives 0, jnp.linalg.norm's gradient NaN)."""
    from kdjax import losses
    zero, other = jnp.zeros((2, 4, 4, 3)), jnp.ones((2, 4, 4, 3))
    grad = jax.grad(lambda s: losses.attention_transfer([s], [other], mode=mode))(zero)
    assert np.all(np.isfinite(grad)) and np.all(grad == 0)
