"""How much a classifier's test top-1 depends on its BatchNorm running statistics: the finished stage's last
checkpoint evaluated with (a) its running statistics, (b) statistics re-estimated from `--batches` train-mode
batches of its own training data with the final weights (PreciseBN, Wu & Johnson 2021; reference:
facebookresearch/fvcore fvcore/nn/precise_bn.py), (c) each test batch's own statistics.

    python -m experiments.bn_recalibration --config=configs/jacobian_matching/fashion_mnist_table2.py:lam=10,seed=3 --workdir=W [--stage=model] [--batches=20]

A large gap between (a) and (b) means the running averages lag the weights (they are an EMA over recent steps),
not that the network is worse; configs/jacobian_matching/README.md (Table 2, lambda = 10) is the case that needed it.
"""
import argparse
import os

import jax
import jax.numpy as jnp
import numpy as np

from kdjax import config_files


def accuracy(predict, batches) -> float:
    right = total = 0
    for batch in batches:
        mask = np.asarray(batch.get("mask", np.ones(len(batch["label"]))), bool)
        hits = np.argmax(predict(jnp.asarray(batch["image"])), -1) == np.asarray(batch["label"])
        right, total = right + int(hits[mask].sum()), total + int(mask.sum())
    return right / total


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--stage", default=None, help="default: the config's last stage")
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args(argv)
    from kdjax import parallel
    from kdjax.train import checkpoint as ckpt_lib
    from kdjax.train import recipe, stage
    config = config_files.load(args.config)
    name = args.stage or recipe.stage_order(config)[-1]
    built = stage.build(recipe.resolve_stage(config, name), parallel.make_mesh())
    variables, step = ckpt_lib.load_model_variables(os.path.join(args.workdir, name, "checkpoints"))
    params, stats = variables["params"], variables["batch_stats"]
    model = built.model

    @jax.jit
    def running(s, x):
        return model.apply({"params": params, "batch_stats": s}, x, train=False)[0]

    @jax.jit
    def batch_statistics(x):
        (logits, _), updated = model.apply({"params": params, "batch_stats": stats}, x, train=True,
                                           mutable=["batch_stats"])
        # flax: new = momentum * old + (1 - momentum) * batch, momentum 0.9 here (layers.batch_norm), old = 0
        zero = jax.tree.map(jnp.zeros_like, stats)
        _, fresh = model.apply({"params": params, "batch_stats": zero}, x, train=True, mutable=["batch_stats"])
        return logits, jax.tree.map(lambda v: v / 0.1, fresh["batch_stats"])

    test = list(built.data.eval.batches())
    train = built.data.train.batches(0)
    estimates = [batch_statistics(jnp.asarray(next(train)["image"]))[1] for _ in range(args.batches)]
    recalibrated = jax.tree.map(lambda *v: sum(v) / len(v), *estimates)
    print(f"{args.config} [{name}] step {step}: test top-1 with running statistics "
          f"{100 * accuracy(lambda x: running(stats, x), test):.2f}, re-estimated on {args.batches} train batches "
          f"{100 * accuracy(lambda x: running(recalibrated, x), test):.2f}, test-batch statistics "
          f"{100 * accuracy(lambda x: batch_statistics(x)[0], test):.2f}")


if __name__ == "__main__":
    main()
