"""The S2SD term against a NumPy restatement of the reference criterion (MLforHealth/S2SD criteria/s2sd.py), its
gradient flow (targets detached in the distillation, trained only by their own criteria), independent criterion
instances per branch, its option errors, and the configs."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kdjax.train import terms
from tests.losses.test_metric_losses import ms_reference
from tests.losses.test_similarity_kl import similarity_kl_reference

B, C, D, F, H, W = 12, 4, 8, 6, 3, 3
LABELS = np.array([0, 0, 1, 1, 2, 2, 2, 3, 3, 0, 1, 3], np.int32)


def _inputs(seed=0, step=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, D))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    feats = np.maximum(rng.normal(size=(B, H, W, F)), 0.0)
    taps = {"pooled": jnp.asarray(feats.mean((1, 2)), jnp.float32), "feats": [jnp.asarray(feats, jnp.float32)]}
    return _term_inputs(LABELS, jnp.asarray(x, jnp.float32), taps, step, jax.random.key(seed))


def _term_inputs(labels, embeddings, taps, step, rng):
    return terms.TermInputs(batch={"label": jnp.asarray(labels)},
                            views={terms.MAIN_VIEW: terms.ViewOutputs(embeddings, taps)}, student_fn=None,
                            teacher_fn=None, step=jnp.int32(step), epoch=jnp.float32(1), rng=rng)


def _with(inputs, embeddings=None, taps=None):
    """`inputs` with other student embeddings or taps on the main view."""
    main = inputs.views[terms.MAIN_VIEW]
    main = dataclasses.replace(main, student=main.student if embeddings is None else embeddings,
                               student_taps=main.student_taps if taps is None else taps)
    return dataclasses.replace(inputs, views={terms.MAIN_VIEW: main})


def _s2sd(facts=terms.DataFacts(num_classes=C), **options):
    return terms.build_term("s2sd", dict(weight=1.0, **options), facts).term


def _reference(term, inputs, params):
    """Sec 2.4 of the criterion with loops and float64: 1/2 (L_src + mean_k L_k) + gamma mean_k KL_k (+ F)."""
    x = np.asarray(inputs.student, np.float64)
    feats = np.asarray(inputs.student_taps["feats"][-1], np.float64)
    f = feats.mean((1, 2)) + (feats.max((1, 2)) if term.pool_aggr else 0.0)
    source = ms_reference(x, LABELS)
    target_losses, kls = [], []
    for k in range(len(term.target_dims)):
        mlp = jax.tree.map(lambda a: np.asarray(a, np.float64), params[f"target_{k}"]["mlp"])
        z = np.maximum(f @ mlp["fc1"]["kernel"] + mlp["fc1"]["bias"], 0) @ mlp["fc2"]["kernel"] + mlp["fc2"]["bias"]
        z /= np.linalg.norm(z, axis=1, keepdims=True)
        target_losses.append(ms_reference(z, LABELS))
        kls.append(similarity_kl_reference(x, z, term.temperature))
    total = 0.5 * (source + np.mean(target_losses)) + term.gamma * np.mean(kls)
    if term.feat_distill and int(inputs.step) >= term.feat_delay:
        total += term.feat_weight * similarity_kl_reference(x, f, term.temperature)
    return total


@pytest.mark.parametrize("pool_aggr,feat_distill,step", [(False, False, 0), (True, False, 0), (False, True, 4),
                                                         (True, True, 5), (True, True, 6)])
def test_criterion_matches_the_restatement(pool_aggr, feat_distill, step):
    """Below (step 4, 5) and at / above (step 6... with delay 5) the feature-distillation delay, with and without A."""
    term = _s2sd(target_dims=(16, 24), temperature=0.5, gamma=3.0, pool_aggr=pool_aggr, feat_distill=feat_distill,
                 feat_weight=2.0, feat_delay=5)
    inputs = _inputs(1, step)
    params, state = term.init(jax.random.key(3), inputs)
    loss, _, metrics = term(inputs, params, state)
    np.testing.assert_allclose(float(loss), _reference(term, inputs, params), rtol=1e-5)
    if feat_distill:
        assert float(metrics["feat_active"]) == float(step >= 5)


def test_targets_are_trained_only_by_their_own_criteria_and_distil_only_into_the_source():
    term = _s2sd(target_dims=(16, 24), gamma=50.0, feat_distill=True, feat_delay=0)
    inputs = _inputs(2)
    params, state = term.init(jax.random.key(0), inputs)
    grads = jax.grad(lambda p: term(inputs, p, state)[0])(params)
    for k in range(2):
        mlp = params[f"target_{k}"]["mlp"]
        f = inputs.student_taps["pooled"]

        def own(m, k=k, f=f):
            z = jax.nn.relu(f @ m["fc1"]["kernel"] + m["fc1"]["bias"]) @ m["fc2"]["kernel"] + m["fc2"]["bias"]
            z = z / jnp.linalg.norm(z, axis=1, keepdims=True)
            return 0.5 / 2 * term.criterion().criterion_loss(z, inputs.labels, {}, {},
                                                             jax.random.fold_in(inputs.rng, k + 1))[0]
        expected = jax.grad(own)(mlp)
        jax.tree.map(lambda g, e: np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-7), grads[f"target_{k}"]["mlp"],
                     expected)
    # the source embedding receives the distillation gradients: they change with gamma
    g_source = jax.grad(lambda x: term(_with(inputs, x), params, state)[0])(inputs.student)
    weaker = _s2sd(target_dims=(16, 24), gamma=1.0, feat_distill=True, feat_delay=0)
    g_weaker = jax.grad(lambda x: weaker(_with(inputs, x), params, state)[0])(inputs.student)
    assert not np.allclose(g_source, g_weaker)


def test_attached_targets_also_learn_from_the_distillation():
    """detach_targets=False (Table 15's ablation): the branch gradient is its criterion's plus gamma x the KL's
    gradient through z_k; the loss value is unchanged."""
    options = dict(weight=1.0, target_dims=(16,), gamma=5.0)
    detached = terms.build_term("s2sd", options, terms.DataFacts(num_classes=C)).term
    attached = terms.build_term("s2sd", dict(options, detach_targets=False), terms.DataFacts(num_classes=C)).term
    inputs = _inputs(4)
    params, state = detached.init(jax.random.key(0), inputs)
    f, x = inputs.student_taps["pooled"], inputs.student

    def kl_through_branch(m):
        z = jax.nn.relu(f @ m["fc1"]["kernel"] + m["fc1"]["bias"]) @ m["fc2"]["kernel"] + m["fc2"]["bias"]
        return 5.0 * similarity_kl_reference_jax(x, z)
    g_detached, g_attached = (jax.grad(lambda p, t=t: t(inputs, p, state)[0])(params) for t in (detached, attached))
    extra = jax.grad(kl_through_branch)(params["target_0"]["mlp"])
    jax.tree.map(lambda a, d, e: np.testing.assert_allclose(a, d + e, rtol=1e-4, atol=1e-7),
                 g_attached["target_0"]["mlp"], g_detached["target_0"]["mlp"], extra)
    assert np.any(np.abs(np.asarray(extra["fc1"]["kernel"])) > 1e-6)
    np.testing.assert_allclose(float(attached(inputs, params, state)[0]), float(detached(inputs, params, state)[0]),
                               rtol=1e-6)


def similarity_kl_reference_jax(source, target):
    """T = 1 restatement with jnp (differentiable): mean over rows of KL(softmax(S_t) || softmax(S_s))."""
    s = source / jnp.linalg.norm(source, axis=1, keepdims=True)
    t = target / jnp.linalg.norm(target, axis=1, keepdims=True)
    p, log_q = jax.nn.softmax(t @ t.T, axis=1), jax.nn.log_softmax(s @ s.T, axis=1)
    return jnp.sum(p * (jnp.log(p) - log_q)) / source.shape[0]


def test_each_branch_has_its_own_criterion_instance():
    """Margin base: source and every branch own a beta vector [C], each trained (non-zero gradient) and read by its
    own branch only: moving branch 0's beta changes branch 0's loss and nothing else."""
    term = _s2sd(base="margin", base_options=dict(beta_init=0.9), target_dims=(16, 16))
    inputs = _inputs(3)
    params, state = term.init(jax.random.key(1), inputs)
    betas = [params["source"]["beta"]] + [params[f"target_{k}"]["criterion"]["beta"] for k in range(2)]
    assert all(b.shape == (C,) and np.all(b == 0.9) for b in betas)
    grads = jax.grad(lambda p: term(inputs, p, state)[0])(params)
    assert all(np.any(g != 0) for g in (grads["source"]["beta"], grads["target_0"]["criterion"]["beta"],
                                         grads["target_1"]["criterion"]["beta"]))
    _, _, before = term(inputs, params, state)
    assert {"source", "target_0", "target_1", "kl_0", "kl_1", "gamma"} <= set(before)
    moved = jax.tree.map(lambda a: a, params)
    moved["target_0"]["criterion"]["beta"] = params["target_0"]["criterion"]["beta"] + 0.3
    _, _, after = term(inputs, moved, state)
    assert float(after["target_0"]) != float(before["target_0"])
    assert float(after["target_1"]) == float(before["target_1"]) and float(after["source"]) == float(before["source"])


@pytest.mark.parametrize("options,message", [
    (dict(target_dims=()), "target_dims is empty"),
    (dict(target_dims=(16, 0)), r"target_dims \[16, 0\]: every target dimension must be positive"),
    (dict(base="triplet"), "unknown base loss 'triplet'; valid: margin, rmargin, multisimilarity, proxyanchor"),
    (dict(feat_delay=-1), "feat_delay=-1 must be >= 0"),
    (dict(base="margin", base_options=dict(marign=0.2)), "base_options .* for base loss 'margin'"),
])
def test_option_errors_name_the_bad_value(options, message):
    with pytest.raises(ValueError, match=message):
        terms.build_term("s2sd", dict(weight=1.0, **options))


def test_pool_aggr_needs_unpooled_features():
    term = _s2sd(target_dims=(8,), pool_aggr=True)
    inputs = _inputs(0)
    inputs = _with(inputs, taps={"pooled": inputs.student_taps["pooled"]})
    with pytest.raises(ValueError, match=r"pool_aggr \('A'\) needs the backbone's unpooled last stage"):
        term.init(jax.random.key(0), inputs)


# ---- configs ------------------------------------------------------------------------------------------------------
from configs.dml import common as dml  # noqa: E402
from configs.s2sd import cars196, common as s2sd_configs, cub200, fashion_mnist, sop  # noqa: E402

DATASETS = {"cub200": cub200, "cars196": cars196, "sop": sop}


def test_every_table_4_cell_has_a_config_with_its_published_number():
    for dataset, module in DATASETS.items():
        column = s2sd_configs.COLUMN[dataset]
        for loss in dml.LOSSES:
            for variant in ("base",) + tuple(s2sd_configs.VARIANTS):
                config = module.get_config(f"loss={loss},variant={variant}")
                published = config.info.published_recall_at_1
                if loss != "proxyanchor" and variant != "base":
                    assert published == s2sd_configs.PUBLISHED_R1[loss][variant][column]
                if loss != "proxyanchor":
                    assert config.info.published_nmi == s2sd_configs.PUBLISHED_NMI[loss][variant][column]
                if variant == "base":
                    assert set(config.stages.model.losses) == {loss}
                    continue
                block = config.stages.model.losses.s2sd
                dims, pool_aggr, feat_distill = s2sd_configs.VARIANTS[variant]
                assert (tuple(block.target_dims), block.pool_aggr, block.feat_distill) == (dims, pool_aggr,
                                                                                           feat_distill)
                assert block.feat_weight == (5.0 if dataset == "sop" else 50.0) and block.gamma == 50.0
    assert cub200.get_config("variant=dsd,gamma=250").info.published_recall_at_1 == 65.04  # Table 12
    attached = cub200.get_config("variant=msda,detach_targets=False")  # Table 15
    assert attached.info.published_recall_at_1 == 65.34 and not attached.stages.model.losses.s2sd.detach_targets
    assert cars196.get_config("variant=msda,detach_targets=False").info.published_recall_at_1 is None
    assert sop.get_config("loss=margin,variant=dsd").stages.model.losses.s2sd.base_options.beta_init == 0.9
    with pytest.raises(ValueError, match="Unknown variant 'msdx'; valid variants: base, dsd, dsda, msd"):
        cub200.get_config("variant=msdx")


@pytest.mark.parametrize("loss", ["margin", "rmargin", "multisimilarity", "proxyanchor"])
def test_one_gradient_step_of_every_table_4_term_on_resnet50_sized_features(loss):
    """Each variant's `s2sd` block, built as the CUB config writes it, on ResNet-50-sized taps (2048-d pooled, a
    2x2x2048 last stage) and 128-d embeddings: finite loss, finite gradients, every branch and the source trained."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 2).astype(np.int32)
    feats = jnp.asarray(np.maximum(rng.normal(size=(8, 2, 2, 2048)), 0), jnp.float32)
    z = rng.normal(size=(8, 128))
    for variant in s2sd_configs.VARIANTS:
        block = cub200.get_config(f"loss={loss},variant={variant}").stages.model.losses.s2sd.to_dict()
        term = terms.build_term("s2sd", block, terms.DataFacts(num_classes=100)).term
        inputs = _term_inputs(labels, jnp.asarray(z), {"pooled": feats.mean((1, 2)), "feats": [feats]}, 2000,
                              jax.random.key(0))

        def loss_fn(params, embedding):
            x = embedding / jnp.linalg.norm(embedding, axis=1, keepdims=True)
            return term(_with(inputs, x), params, state)[0]
        params, state = term.init(jax.random.key(1), inputs)
        value, (g_params, g_embedding) = jax.value_and_grad(loss_fn, argnums=(0, 1))(params, jnp.asarray(z))
        assert np.isfinite(float(value)), variant
        assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(g_params)), variant
        assert np.any(np.asarray(g_embedding) != 0), variant
        for k in range(len(block["target_dims"])):
            assert np.any(np.asarray(g_params[f"target_{k}"]["mlp"]["fc1"]["kernel"]) != 0), (variant, k)


@pytest.mark.parametrize("dataset,variant", [("cub200", "dsd"), ("cub200", "msdfa"), ("sop", "msdf")])
def test_tfds_configs_validate_with_their_parameter_groups(dataset, variant):
    """SOP adds the one-epoch MLP warm-up: the backbone (everything but the embedding head) is its own frozen group."""
    from kdjax.train import loop
    from tests import helpers, tfds_fakes
    config = helpers.narrow(DATASETS[dataset].get_config(f"runlocal,loss=margin,variant={variant}"))
    label, classes = ("class_id", 40) if dataset == "sop" else ("label", 200)
    with tfds_fakes.mock(tfds_fakes.class_dataset(label, classes, {"train": 3, "test": 2})):
        spec, = loop.validate(config)
    groups = spec.optimizer["groups"]
    assert set(groups) == {"margin_beta", "target_mlps"} | ({"backbone"} if dataset == "sop" else set())
    if dataset == "sop":
        assert groups["backbone"]["frozen_epochs"] == 1.0
        assert "backbone" not in sop.get_config("loss=margin,variant=base").stages.model.optimizer.groups
        assert "backbone" not in sop.get_config("variant=dsd,mlp_warmup_epochs=0").stages.model.optimizer.groups


def _warmup_config():
    """msdfa for three steps, F from step 1, the backbone held for the first two; a checkpoint after every step."""
    from kdjax import parallel
    from kdjax.train import loop, stage
    config = fashion_mnist.get_config("runlocal,loss=margin,variant=msdfa,feat_delay=1")
    spec, = loop.validate(config)
    steps_per_epoch = stage.build(spec, parallel.make_mesh()).steps_per_epoch
    config = fashion_mnist.get_config(f"runlocal,loss=margin,variant=msdfa,feat_delay=1,"
                                      f"mlp_warmup_epochs={2 / steps_per_epoch!r}")
    config.stages.model.num_steps = 3
    config.checkpoint.update(every_steps=1, max_to_keep=3)
    return config


@pytest.fixture(scope="module")
def warmup_run(tmp_path_factory):
    from kdjax.train import loop
    workdir = tmp_path_factory.mktemp("s2sd_straight")
    result = loop.run(_warmup_config(), str(workdir))[0]
    assert result["status"] == "done" and "eval/recall@1" in result["final"]
    return workdir


def _params(workdir, step=None):
    from kdjax.train import checkpoint as ckpt_lib
    checkpoints = ckpt_lib.Checkpointer(str(workdir / "model" / "checkpoints"))
    tree = checkpoints.restore_raw(step)[0]
    checkpoints.close()
    return tree


@pytest.mark.trains("configs/s2sd/fashion_mnist.py",
                     # configs/dml's recipe (trained in test_dml.py) with the s2sd term trained here
                     "configs/s2sd/cub200.py", "configs/s2sd/cars196.py", "configs/s2sd/sop.py")
def test_fashion_mnist_msdfa_warms_up_and_switches_feature_distillation_on(warmup_run):
    """The feature term is off at step 0 and on after; the backbone stays put through the warm-up while head and
    branches move, then moves; every unweighted part is logged; the exported model is the embedding network alone
    (the branches live under params['terms'])."""
    import json
    records = [json.loads(line) for line in open(warmup_run / "model" / "metrics.jsonl")]
    active = [r["s2sd/feat_active"] for r in records if "s2sd/feat_active" in r]
    assert active[0] == 0.0 and active[-1] == 1.0
    train = [r for r in records if "loss/total" in r]
    assert {"s2sd/source", "s2sd/target_3", "s2sd/kl_0", "s2sd/feat_kl", "s2sd/gamma"} <= set(train[-1])
    assert [r["train/lr_backbone"] for r in train] == [0.0, 0.0, train[-1]["train/lr"]] != [0.0] * 3

    trees = {step: _params(warmup_run, step)["params"] for step in (1, 2, 3)}
    conv = lambda t: np.asarray(t["model"]["Conv_0"]["kernel"])  # noqa: E731
    head = lambda t: np.asarray(t["model"]["embedding_head"]["kernel"])  # noqa: E731
    mlp = lambda t: np.asarray(t["terms"]["s2sd"]["target_0"]["mlp"]["fc1"]["kernel"])  # noqa: E731
    np.testing.assert_array_equal(conv(trees[1]), conv(trees[2]))
    assert not np.array_equal(conv(trees[2]), conv(trees[3]))
    assert not np.array_equal(head(trees[1]), head(trees[2])) and not np.array_equal(mlp(trees[1]), mlp(trees[2]))
    assert "embedding_head" in trees[3]["model"] and "s2sd" not in trees[3]["model"]
    assert set(trees[3]["terms"]["s2sd"]) == {"source", "target_0", "target_1", "target_2", "target_3"}


def test_resume_across_the_feature_delay_and_the_warm_up_equals_the_straight_run(warmup_run, tmp_path):
    """Preempted after step 1 (F switches on at step 1, the backbone starts at step 2): the resumed run ends with
    the straight run's parameters, branch and criterion parameters and optimiser state."""
    from kdjax.train import loop
    from tests import helpers
    first = loop.run(_warmup_config(), str(tmp_path), on_event=helpers.sigterm_at("step", "model", 1))
    assert first[-1]["status"] == "preempted"
    assert loop.run(_warmup_config(), str(tmp_path))[-1]["status"] == "done"
    straight, resumed = _params(warmup_run), _params(tmp_path)
    jax.tree.map(np.testing.assert_array_equal, straight, resumed)


class _Split:
    """An evaluation split as the evaluators read it: local batches with a padding mask."""

    def __init__(self, images, labels, batch):
        pad = -len(labels) % batch
        self.images = np.concatenate([images, np.zeros((pad,) + images.shape[1:], images.dtype)])
        self.labels = np.concatenate([labels, np.zeros(pad, labels.dtype)])
        self.mask = np.arange(len(self.labels)) < len(labels)
        self.batch = batch

    def batches(self):
        for i in range(0, len(self.labels), self.batch):
            yield {"image": self.images[i:i + self.batch], "label": self.labels[i:i + self.batch],
                   "_mask": self.mask[i:i + self.batch]}


@pytest.mark.parametrize("pool_aggr", [False, True])
def test_retrieval_term_heads_report_each_branch_and_the_pooled_feature(pool_aggr):
    """configs/s2sd's branch diagnostics: `term_heads=True` adds the retrieval metrics of each target branch and of
    the normalised pooled feature, equal to the metrics of those embeddings computed outside the evaluator (branch
    MLPs restated in NumPy); padding rows are dropped; the model's own metrics are unchanged."""
    from kdjax import metrics, parallel
    from kdjax.evaluators import retrieval
    term = _s2sd(target_dims=(16, 24), pool_aggr=pool_aggr)
    params, _ = term.init(jax.random.key(3), _inputs())
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(5), 6).astype(np.int32)
    images = rng.normal(size=(30, H, W, F)).astype(np.float32)
    projection = jnp.asarray(rng.normal(size=(F, D)), jnp.float32)

    def apply_fn(variables, x, train):  # a stand-in model: ReLU features, pooled, projected and normalised
        feats = jax.nn.relu(x) * variables["scale"]
        pooled = feats.mean((1, 2))
        z = pooled @ projection
        return z / jnp.linalg.norm(z, axis=1, keepdims=True), {"pooled": pooled, "feats": [feats]}

    evaluator = retrieval.Retrieval(mesh=parallel.make_mesh(), data=_Split(images, labels, 8), ks=(1, 2),
                                    roth_map_r=5, nmi=False, term_heads=True)
    assert evaluator.reads_terms
    weighted = terms.build_terms({"s2sd": dict(weight=1.0, target_dims=(16, 24), pool_aggr=pool_aggr)},
                                 terms.DataFacts(num_classes=C))
    variables = {"scale": jnp.float32(1.5)}
    result = evaluator.run(apply_fn, variables, terms=(weighted, {"s2sd": params}))
    feats = np.maximum(images.astype(np.float64), 0) * 1.5
    pooled = feats.mean((1, 2))
    f = pooled + (feats.max((1, 2)) if pool_aggr else 0.0)
    want = {"": metrics.retrieval_metrics(np.asarray(apply_fn(variables, jnp.asarray(images), False)[0]), labels,
                                          ks=[1, 2], roth_map_r=5),
            "s2sd/pooled/": metrics.retrieval_metrics(pooled / np.linalg.norm(pooled, axis=1, keepdims=True), labels,
                                                      ks=[1, 2], roth_map_r=5)}
    for k in range(2):
        mlp = jax.tree.map(lambda a: np.asarray(a, np.float64), params[f"target_{k}"]["mlp"])
        z = np.maximum(f @ mlp["fc1"]["kernel"] + mlp["fc1"]["bias"], 0) @ mlp["fc2"]["kernel"] + mlp["fc2"]["bias"]
        want[f"s2sd/target_{k}/"] = metrics.retrieval_metrics(z / np.linalg.norm(z, axis=1, keepdims=True), labels,
                                                              ks=[1, 2], roth_map_r=5)
    expected = {prefix + name: v for prefix, values in want.items() for name, v in values.items()}
    assert set(result) == set(expected)
    for name, value in expected.items():
        assert result[name] == pytest.approx(value, abs=1e-6), name
    assert len({result[f"s2sd/{h}/recall@1"] for h in ("pooled", "target_0", "target_1")} | {result["recall@1"]}) > 1
    plain = retrieval.Retrieval(mesh=parallel.make_mesh(), data=_Split(images, labels, 8), ks=(1, 2), roth_map_r=5,
                                nmi=False).run(apply_fn, variables)
    assert plain == {k: v for k, v in result.items() if "/" not in k}
