"""Time to a train state: compile + run of the trainer's initialisation (`step.init_state`, as kdjax.train.loop jits
it) with `xla_cpu_options.compiler_options(run_once=True)` against the options the train step compiles with.

    python -m benchmarks.init_compile [--pairs resnet32x4-resnet8x4 vgg13-vgg8] [--width 1.0] [--batch 64]
                                      [--repeats 3] [--methods kd crd]

Each repeat traces and compiles afresh (no in-memory or persistent cache); the two option sets alternate. Prints
medians per pair and the largest parameter difference between the two builds. Last line:
`ratio kdjax/reference: X.XX` = run_once (compile + run) / optimised (compile + run), summed over the pairs.
"""
import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from configs.baselines import cifar100 as baselines
from kdjax import models
from kdjax.ops import xla_cpu_options
from kdjax.train import step as step_lib
from kdjax.train import terms

DATASET_SIZE = 50000  # CIFAR-100's training split: sets the size of CRD's memory banks


def _inputs(pair, width, batch, methods):
    t_name, s_name = pair.split("-")
    teacher = models.get_model(t_name, num_classes=100, width=width)
    student = models.get_model(s_name, num_classes=100, width=width)
    rng = np.random.RandomState(0)
    x = jnp.asarray(rng.randn(batch, 32, 32, 3), jnp.float32)
    batch = {"image": x, "image_strong": x[::-1], "label": jnp.arange(batch) % 100, "index": jnp.arange(batch),
             "contrast_idx": jnp.asarray(rng.randint(0, DATASET_SIZE, (batch, 4097)))}
    losses = {}
    for method in methods:
        losses.update(baselines.method_losses(method, pair))
    weighted = terms.build_terms(losses, terms.DataFacts(num_examples=DATASET_SIZE, num_classes=100))
    return step_lib.Networks(student, teacher), weighted, batch, teacher.init(jax.random.key(0), x, train=False)


def time_init(networks, weighted, batch, teacher_vars, options):
    tx = optax.sgd(0.01)
    fn = jax.jit(lambda r, b, tv: step_lib.init_state(networks, weighted, tx, r, b, tv),
                 compiler_options=options)  # a new function object: traced and compiled anew
    t0 = time.perf_counter()
    compiled = fn.lower(jax.random.key(1), batch, teacher_vars).compile()
    t1 = time.perf_counter()
    state = jax.block_until_ready(compiled(jax.random.key(1), batch, teacher_vars))
    return t1 - t0, time.perf_counter() - t1, state.params


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", nargs="+", default=["resnet32x4-resnet8x4", "vgg13-vgg8"], choices=baselines.PAIRS)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=["kd", "crd"], choices=baselines.METHODS)
    args = parser.parse_args()
    jax.config.update("jax_enable_compilation_cache", False)
    variants = {"optimised": xla_cpu_options.compiler_options(), "run_once": xla_cpu_options.compiler_options(
        run_once=True)}
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, width {args.width}, batch {args.batch}, "
          f"methods {' '.join(args.methods)}, median of {args.repeats}")
    totals = dict.fromkeys(variants, 0.0)
    for pair in args.pairs:
        inputs = _inputs(pair, args.width, args.batch, args.methods)
        times, params = {v: [] for v in variants}, {}
        for _ in range(args.repeats):
            for name, options in variants.items():
                compile_s, run_s, params[name] = time_init(*inputs, options)
                times[name].append((compile_s, run_s))
        diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(params["run_once"]),
                                                                   jax.tree.leaves(params["optimised"])))
        for name in variants:
            compile_s, run_s = np.median(np.array(times[name]), axis=0)
            totals[name] += compile_s + run_s
            print(f"{pair:<24} {name:<10} compile {compile_s:6.2f} s  run {run_s:6.3f} s")
        print(f"{pair:<24} largest parameter difference {diff:.2g}")
    print(f"ratio kdjax/reference: {totals['run_once'] / totals['optimised']:.2f}")


if __name__ == "__main__":
    main()
