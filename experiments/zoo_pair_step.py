"""One distillation step with every KD-zoo method at once on a teacher -> student pair (random data), printing each
method's loss and how far its module parameters moved: a quick check, by hand, that a pair lines up for every
method (CI trains two pairs on mock CIFAR-100 in tests/train/test_zoo_terms.py and shape-checks all eight).

    python -m experiments.zoo_pair_step --pair=resnet50_cifar-mobilenetv2 [--width=0.125]
"""
import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from configs.baselines import cifar100 as baselines
from kdjax import models, ops, tasks
from kdjax.train import step as step_lib
from kdjax.train import terms


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pair", default="resnet32x4-resnet8x4", choices=baselines.PAIRS)
    parser.add_argument("--width", type=float, default=0.125)
    args = parser.parse_args()
    t_name, s_name = args.pair.split("-")
    teacher = models.get_model(t_name, num_classes=100, width=args.width)
    student = models.get_model(s_name, num_classes=100, width=args.width)
    b, n = 8, 40
    rng = np.random.RandomState(0)
    x = jnp.asarray(rng.randn(b, 32, 32, 3), jnp.float32)
    batch = {"image": x, "image_strong": x[::-1], "label": jnp.arange(b) % 100, "index": jnp.arange(b),
             "contrast_idx": jnp.asarray(rng.randint(0, n, (b, 17)))}
    merged = {}
    for method in baselines.METHODS:
        merged.update(baselines.method_losses(method, args.pair))
    weighted = terms.build_terms(merged, terms.DataFacts(num_examples=n, num_classes=100))
    networks = step_lib.Networks(student, teacher)
    teacher_vars = teacher.init(jax.random.key(0), x, train=False)
    tx = optax.sgd(0.01)
    state = ops.jit(lambda r, bt, tv: step_lib.init_state(networks, weighted, tx, r, bt, tv), run_once=True)(
        jax.random.key(1), batch, teacher_vars)
    train = ops.jit(lambda st, tv, bt: step_lib.train_step(
        st, tv, bt, networks=networks, weighted_terms=weighted, task=tasks.get_task("classification"),
        schedules={"default": optax.constant_schedule(0.01)}, steps_per_epoch=10))
    t0 = time.time()
    new_state, metrics = train(state, teacher_vars, batch)
    jax.block_until_ready(metrics)
    print(f"{args.pair}: compile + step {time.time() - t0:.1f} s")
    for k, v in sorted(metrics.items()):
        if k.startswith("loss/"):
            print(f"  {k:<20} {float(v):.5g}")
    for name, params in state.params["terms"].items():
        if jax.tree.leaves(params):
            moved = max(jax.tree.leaves(jax.tree.map(lambda a, c: float(jnp.max(jnp.abs(a - c))), params,
                                                     new_state.params["terms"][name])))
            print(f"  {name} module parameters moved by up to {moved:.3g}")


if __name__ == "__main__":
    main()
