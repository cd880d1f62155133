"""Loss-term registry and optimiser/schedule construction."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from kdjax.train import optim, terms


def test_build_term_passes_options_and_weight():
    wt = terms.build_term("kd", {"weight": 0.9, "temperature": 2.0})
    assert wt.weight == 0.9 and wt.term.temperature == 2.0 and wt.term.needs_teacher


def test_unknown_term_and_option_list_valid_choices():
    with pytest.raises(ValueError, match=r"unknown loss term 'kdd'; valid loss terms: .*\bce\b.*\bkd\b"):
        terms.build_term("kdd", {"weight": 1.0})
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['temprature'\].*temperature"):
        terms.build_term("kd", {"weight": 1.0, "temprature": 4.0})
    with pytest.raises(ValueError, match="no 'weight'"):
        terms.build_term("ce", {})
    with pytest.raises(ValueError, match=r"unknown loss term 'cee'"):
        terms.build_term("ce_strong", {"term": "cee", "weight": 0.1})


def test_a_term_can_appear_twice_under_another_name():
    wt = terms.build_term("ce_strong", {"term": "ce", "weight": 0.1, "view": "image_strong"})
    assert wt.name == "ce_strong" and wt.term.views == ("image_strong",)
    assert terms.Needs.of([wt]).extra_views == ("image_strong",)
    assert terms.Needs.of([terms.build_term("ce", {"weight": 1.0})]).extra_views == ()  # 'image' is always there


def test_warmup_factor_follows_min_epoch_over_warmup():
    wt = terms.build_term("ce", {"weight": 2.0, "warmup_epochs": 20})
    for epoch, expected in [(1, 0.1), (10, 1.0), (20, 2.0), (35, 2.0)]:
        np.testing.assert_allclose(wt.factor(jnp.float32(epoch)), expected, rtol=1e-6)


def test_multistep_schedule_drops_after_milestone_epochs():
    """lr = base * 0.1^(#milestones strictly below the 1-based epoch): epoch 151 is the first at 0.1x."""
    cfg = dict(name="multistep", base_lr=0.05, milestones=(150, 180, 210))
    spe = 10
    sched = optim.make_schedule(cfg, steps_per_epoch=spe, total_steps=240 * spe)
    step_of = lambda epoch: (epoch - 1) * spe  # first step of a 1-based epoch
    np.testing.assert_allclose(sched(step_of(150) + spe - 1), 0.05)
    np.testing.assert_allclose(sched(step_of(151)), 0.005, rtol=1e-6)
    np.testing.assert_allclose(sched(step_of(181)), 0.0005, rtol=1e-6)
    np.testing.assert_allclose(sched(step_of(240)), 0.00005, rtol=1e-5)


def _optimizer(cfg, lr=1.0):
    return optim.make_optimizer(cfg, dict(name="constant", base_lr=lr), steps_per_epoch=1, total_steps=1)[0]


def test_sgd_coupled_weight_decay_matches_torch_semantics():
    """torch SGD(momentum, weight_decay): g' = g + wd*p; v = mu*v + g'; p -= lr*v (two steps by hand)."""
    cfg = dict(name="sgd", momentum=0.9, nesterov=False, weight_decay=0.1)
    tx = _optimizer(cfg, 0.5)
    p = {"w": jnp.array([1.0, -2.0])}
    g = {"w": jnp.array([0.3, 0.1])}
    state = tx.init(p)
    expected, v = np.array([1.0, -2.0]), np.zeros(2)
    for _ in range(2):
        updates, state = tx.update(g, state, p)
        p = optax.apply_updates(p, updates)
        v = 0.9 * v + (np.array([0.3, 0.1]) + 0.1 * expected)
        expected = expected - 0.5 * v
    np.testing.assert_allclose(p["w"], expected, rtol=1e-6)


def test_exclude_1d_from_decay_leaves_biases_alone():
    tx = _optimizer(dict(name="sgd", momentum=0.0, weight_decay=1.0, exclude_1d_from_decay=True))
    p = {"kernel": jnp.ones((2, 2)), "bias": jnp.ones((2,))}
    zeros = jax.tree.map(jnp.zeros_like, p)
    updates, _ = tx.update(zeros, tx.init(p), p)
    np.testing.assert_allclose(updates["kernel"], -np.ones((2, 2)))
    np.testing.assert_allclose(updates["bias"], np.zeros(2))


def test_adamw_decouples_decay():
    tx = _optimizer(dict(name="adamw", weight_decay=0.5), 0.1)
    p = {"w": jnp.array([2.0])}
    updates, _ = tx.update({"w": jnp.array([0.0])}, tx.init(p), p)
    np.testing.assert_allclose(updates["w"], [-0.1 * 0.5 * 2.0], rtol=1e-6)  # lr * wd * p, no Adam scaling


def test_unknown_optimizer_schedule_and_keys_name_the_valid_ones():
    with pytest.raises(ValueError, match=r"optimizer.name: unknown optimizer 'lamb'; valid optimizers: adam, adamw, sgd"):
        optim.check(dict(name="lamb"), dict(name="constant", base_lr=1.0))
    with pytest.raises(ValueError, match=r"unknown schedule 'step'; valid schedules: constant, cosine, multistep"):
        optim.check(dict(name="sgd"), dict(name="step", base_lr=1.0))
    # keys that belong to another optimizer or schedule, and typos, are errors, not silently dropped
    with pytest.raises(ValueError, match=r"optimizer \(adam\): unknown key\(s\) \['momentum'\]; valid keys: .*'b1'"):
        optim.check(dict(name="adam", momentum=0.9), dict(name="constant", base_lr=1.0))
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['weight_deacy'\]"):
        optim.check(dict(name="sgd", weight_deacy=5e-4), dict(name="constant", base_lr=1.0))
    with pytest.raises(ValueError, match=r"schedule \(cosine\): unknown key\(s\) \['warmup'\]; valid keys: .*warmup_epochs"):
        optim.check(dict(name="sgd"), dict(name="cosine", base_lr=1.0, warmup=5))
    with pytest.raises(ValueError, match=r"schedule \(multistep\): unknown key\(s\) \['warmup_epochs'\]"):
        optim.check(dict(name="sgd"), dict(name="multistep", base_lr=1.0, milestones=(1,), warmup_epochs=5))
    with pytest.raises(ValueError, match=r"schedule \(multistep\): missing key\(s\) \['milestones'\]"):
        optim.check(dict(name="sgd"), dict(name="multistep", base_lr=1.0))
    with pytest.raises(ValueError, match=r"optimizer.groups.head: unknown key\(s\) \['lr'\]"):
        optim.check(dict(name="sgd", groups=dict(head=dict(pattern="Dense", lr=0.1))), dict(name="constant", base_lr=1))


def test_parameter_groups_apply_their_learning_rates_and_decay():
    """One SGD step by hand: the head at base_lr x 10 without decay, the first conv at its own base LR, the rest at
    the schedule's LR with coupled decay."""
    cfg = dict(name="sgd", momentum=0.0, weight_decay=0.5,
               groups=dict(head=dict(pattern=r"^model/Dense_0/", lr_mult=10.0, weight_decay=0.0),
                           stem=dict(pattern=r"Conv_0/kernel$", base_lr=0.02)))
    tx, schedules = optim.make_optimizer(cfg, dict(name="multistep", base_lr=0.1, milestones=(1,)),
                                         steps_per_epoch=2, total_steps=4)
    params = {"model": {"Conv_0": {"kernel": jnp.full((2,), 2.0)}, "Conv_1": {"kernel": jnp.full((2,), 3.0)},
                        "Dense_0": {"kernel": jnp.full((2,), 4.0)}}}
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
    updates, state = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(updates["model"]["Dense_0"]["kernel"], -1.0 * 0.5)            # lr 0.1 x 10, no decay
    np.testing.assert_allclose(updates["model"]["Conv_0"]["kernel"], -0.02 * (0.5 + 0.5 * 2))  # own base LR
    np.testing.assert_allclose(updates["model"]["Conv_1"]["kernel"], -0.1 * (0.5 + 0.5 * 3))   # default group
    assert set(schedules) == {"default", "head", "stem"}
    np.testing.assert_allclose([schedules["head"](0), schedules["head"](2), schedules["stem"](2)],
                               [1.0, 0.1, 0.002], rtol=1e-6)  # the schedule's shape, scaled or restarted
    with pytest.raises(ValueError, match=r"optimizer.groups \['nothing'\]: pattern matches no parameter"):
        optim.check_groups_match(params, dict(groups=dict(nothing=dict(pattern="^terms/"))))


def test_a_frozen_group_waits_then_starts_fresh_at_the_global_schedule():
    """frozen_epochs=1 (2 steps): the backbone neither moves nor decays nor advances Adam's moments during the
    warm-up; afterwards it follows a fresh torch-style Adam (coupled decay) at the schedule's global LR, which has
    dropped by then. The head trains throughout like a single-group optimiser."""
    schedule = dict(name="multistep", base_lr=0.1, milestones=(1,))
    cfg = dict(name="adam", weight_decay=0.01, groups=dict(backbone=dict(pattern=r"^model/(?!head/)", frozen_epochs=1)))
    tx, schedules = optim.make_optimizer(cfg, schedule, steps_per_epoch=2, total_steps=6)
    params = {"model": {"conv": {"kernel": jnp.array([1.0, -2.0])}, "head": {"kernel": jnp.array([0.5, 3.0])}}}
    grads = [jax.tree.map(lambda p, i=i: jnp.sin(p + i), params) for i in range(5)]  # fixed, not state-dependent

    state, p = tx.init(params), params
    history = []
    for g in grads:
        updates, state = tx.update(g, state, p)
        p = optax.apply_updates(p, updates)
        history.append(p)

    def adam_by_hand(x, gs, lrs):
        m = v = np.zeros_like(x)
        for t, (g, lr) in enumerate(zip(gs, lrs), 1):
            g = g + 0.01 * x
            m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g ** 2
            x = x - lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
        return x
    conv, head = (np.asarray(params["model"][k]["kernel"]) for k in ("conv", "head"))
    for step in (0, 1):
        np.testing.assert_array_equal(history[step]["model"]["conv"]["kernel"], conv)
    for step in (2, 3, 4):
        np.testing.assert_allclose(history[step]["model"]["conv"]["kernel"],
                                   adam_by_hand(conv, [np.sin(conv + i) for i in range(2, step + 1)], [0.01] * 3),
                                   rtol=1e-5)
    np.testing.assert_allclose(history[4]["model"]["head"]["kernel"],
                               adam_by_hand(head, [np.sin(head + i) for i in range(5)], [0.1, 0.1, 0.01, 0.01, 0.01]),
                               rtol=1e-5)
    np.testing.assert_allclose([schedules["backbone"](s) for s in (0, 1, 2)], [0.0, 0.0, 0.01], rtol=1e-6)
    with pytest.raises(ValueError, match=r"optimizer.groups.backbone: frozen_epochs=-1 must be >= 0"):
        optim.check(dict(name="adam", groups=dict(backbone=dict(pattern="x", frozen_epochs=-1))), schedule)


@pytest.fixture(scope="module")
def digits_teacher(tmp_path_factory):
    from kdjax.train import loop
    from tests import helpers
    workdir = tmp_path_factory.mktemp("teacher")
    loop.run_stage(helpers.tiny_config(steps=1), "teacher", str(workdir))
    return str(workdir / "teacher" / "checkpoints")


# The zoo's terms (dkd, at, rkd, pkt, fitnet, ...) run together in tests/train/test_zoo_terms.py.
JACOBIAN_PAPER_TERMS = {
    "activation_matching": dict(weight=1.0),
    "jacobian_matching": dict(weight=1.0, select="teacher_top", normalize=True),
    "jacobian_matching_jvp": dict(weight=1.0, num_tangents=2), "jacobian_norm": dict(weight=0.1, output="all"),
    "attention_matching": dict(weight=1.0, student_layers=("feats.1",), teacher_layers=("feats.1",)),
    "attention_jacobian": dict(weight=1.0, student_layer="pooled_feats.0", teacher_layer="pooled_feats.0"),
}


def test_every_jacobian_paper_term_trains_inside_a_step(digits_teacher, tmp_path):
    """One distillation step with all of the Jacobian-matching paper's terms on digits (one compile): each finite and non-zero, and
    the logged total = CE + sum of weight * term."""
    import json
    from kdjax.train import loop
    from tests import helpers
    config = helpers.tiny_config(steps=1)
    config.stages.student.losses = {"ce": dict(weight=1.0), **JACOBIAN_PAPER_TERMS}
    config.stages.student.teacher = dict(stage="", checkpoint=digits_teacher, model=dict(name="vgg4", width=0.125),
                                         how_to_get="")
    result = loop.run_stage(config, "student", str(tmp_path))
    assert result["status"] == "done"
    record = [json.loads(l) for l in open(tmp_path / "student" / "metrics.jsonl") if '"loss/total"' in l][0]
    expected = record["loss/ce"]
    for name, options in JACOBIAN_PAPER_TERMS.items():
        assert np.isfinite(record[f"loss/{name}"]) and record[f"loss/{name}"] != 0.0, name
        expected += float(terms.build_term(name, options).factor(jnp.float32(1.0))) * record[f"loss/{name}"]
    np.testing.assert_allclose(record["loss/total"], expected, rtol=1e-5)
