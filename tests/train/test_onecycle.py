"""L2D's optimisation: torch OneCycleLR (restated from its source) step by step, Adam's beta1 cycled with it, a
cycle longer than the stage (the teacher's stop_epoch), and coupled decay on ndim > 1 parameters only."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from kdjax.train import optim


def torch_onecycle(step_num, total_steps, *, max_lr, pct_start, div_factor, final_div_factor,
                   max_momentum=0.95, base_momentum=0.85):
    """torch.optim.lr_scheduler.OneCycleLR.get_lr (three_phase=False, anneal_strategy='cos'), restated."""
    initial_lr = max_lr / div_factor
    min_lr = initial_lr / final_div_factor
    phases = [dict(end_step=float(pct_start * total_steps) - 1, lr=(initial_lr, max_lr),
                   momentum=(max_momentum, base_momentum)),
              dict(end_step=total_steps - 1, lr=(max_lr, min_lr), momentum=(base_momentum, max_momentum))]
    start_step = 0
    for i, phase in enumerate(phases):
        end_step = phase["end_step"]
        if step_num <= end_step or i == len(phases) - 1:
            pct = (step_num - start_step) / (end_step - start_step)
            cos = lambda a, b: b + (a - b) / 2.0 * (math.cos(math.pi * pct) + 1)  # noqa: E731
            return cos(*phase["lr"]), cos(*phase["momentum"])
        start_step = phase["end_step"]


L2D = dict(name="onecycle", base_lr=1e-4, pct_start=0.2, div_factor=25.0, final_div_factor=1e4,
           momentum=(0.95, 0.85))


@pytest.mark.parametrize("total", [40, 57, 1282 * 3])
def test_lr_and_beta1_follow_torch_onecyclelr_step_by_step(total):
    lr = optim.make_schedule(L2D, steps_per_epoch=total, total_steps=total)
    b1 = optim.momentum_schedule(L2D, steps_per_epoch=total, total_steps=total)
    steps = np.arange(total)
    expected = np.array([torch_onecycle(s, total, max_lr=1e-4, pct_start=0.2, div_factor=25.0,
                                        final_div_factor=1e4) for s in steps])
    np.testing.assert_allclose(jax.vmap(lr)(steps), expected[:, 0], rtol=2e-5, atol=1e-12)
    np.testing.assert_allclose(jax.vmap(b1)(steps), expected[:, 1], rtol=1e-6)
    assert float(lr(0)) == pytest.approx(4e-6, rel=1e-5) and float(lr(total - 1)) == pytest.approx(4e-10, rel=1e-4)


def test_the_teacher_stops_mid_cycle():
    """Built for 80 epochs, stopped after 30: at the stop the LR is about 8.9e-5 and beta1 about 0.86 (L2D)."""
    spe = 100
    cfg = dict(L2D, cycle_epochs=80)
    lr = optim.make_schedule(cfg, steps_per_epoch=spe, total_steps=30 * spe)
    b1 = optim.momentum_schedule(cfg, steps_per_epoch=spe, total_steps=30 * spe)
    stop = 30 * spe - 1
    want_lr, want_b1 = torch_onecycle(stop, 80 * spe, max_lr=1e-4, pct_start=0.2, div_factor=25.0,
                                      final_div_factor=1e4)
    assert float(lr(stop)) == pytest.approx(want_lr, rel=1e-5) and want_lr == pytest.approx(8.9e-5, rel=0.01)
    assert float(b1(stop)) == pytest.approx(want_b1, rel=1e-6) and want_b1 == pytest.approx(0.86, abs=0.005)


def test_adam_with_cycled_beta1_and_decay_on_matrices_only_matches_torch_by_hand():
    """torch Adam(weight_decay=1e-4) on L2D's param groups (decay on ndim > 1, not on biases), OneCycleLR with
    cycle_momentum: beta1_t changes every step and bias correction uses 1 - beta1_t ** t."""
    total = 12
    cfg = dict(name="adam", weight_decay=1e-4, exclude_1d_from_decay=True, b2=0.999, eps=1e-8)
    tx, _ = optim.make_optimizer(cfg, dict(L2D, base_lr=0.05), steps_per_epoch=4, total_steps=total)
    params = {"kernel": jnp.array([[1.0, -2.0], [0.5, 3.0]]), "bias": jnp.array([0.3, -0.7])}
    state, p = tx.init(params), params
    for t in range(total):
        grads = jax.tree.map(lambda x, t=t: jnp.cos(x * (t + 1)), p)
        updates, state = tx.update(grads, state, p)
        p = optax.apply_updates(p, updates)

    def by_hand(x, decay):
        m = v = np.zeros_like(x)
        for t in range(1, total + 1):
            lr, beta1 = torch_onecycle(t - 1, total, max_lr=0.05, pct_start=0.2, div_factor=25.0,
                                       final_div_factor=1e4)
            g = np.cos(x * t) + decay * x
            m, v = beta1 * m + (1 - beta1) * g, 0.999 * v + 0.001 * g ** 2
            x = x - lr * (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
        return x
    np.testing.assert_allclose(p["kernel"], by_hand(np.asarray(params["kernel"], np.float64), 1e-4), rtol=2e-5)
    np.testing.assert_allclose(p["bias"], by_hand(np.asarray(params["bias"], np.float64), 0.0), rtol=2e-5)


def test_momentum_cycling_needs_adam_and_two_values():
    with pytest.raises(ValueError, match="optimizer 'sgd' is not 'adam'"):
        optim.check(dict(name="sgd"), L2D)
    with pytest.raises(ValueError, match=r"expected \(max, base\)"):
        optim.check(dict(name="adam"), dict(L2D, momentum=(0.95,)))
    with pytest.raises(ValueError, match="unknown key"):
        optim.check(dict(name="adam"), dict(L2D, stop_epoch=30))
