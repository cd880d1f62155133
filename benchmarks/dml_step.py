"""One deep-metric-learning train step, kdjax against PyTorch + pytorch-metric-learning in the same run: the
configs/dml/fashion_mnist.py network (CIFAR ResNet-8 with a Linear(64 -> 64) embedding head + L2 normalisation) on a
class-balanced batch of 112 1-channel 28x28 images (56 classes x 2), multi-similarity mining + loss (alpha 2,
beta 40, base 0.5, epsilon 0.1; Roth's reduction), Adam 1e-3.

    python -m benchmarks.dml_step [--batch 112] [--repeats 20] [--model resnet8]

kdjax's step is the trainer's own (`kdjax.train.step.jit_train_step`, metric_learning task, `multisimilarity` term).
The PyTorch step is benchmarks/dml_reference.py's (PML MultiSimilarityMiner + MultiSimilarityLoss). Times are medians
over `--repeats` steps after 3 warm-up steps, the two sides alternating; the network's forward + backward alone is
timed beside them, to split the step into the network and the rest. Last line: `ratio kdjax/reference`.
ResNet-50 at 224 px (the CUB / CARS / SOP configs) is too slow to time on this machine's CPU.
"""
import argparse

import numpy as np

from benchmarks.train_step import setup_line, time_interleaved


def batch_of(batch, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(batch, 28, 28, 1)).astype(np.float32)
    labels = np.repeat(np.arange(batch // 2), 2).astype(np.int32)
    return images, labels


def torch_step(model_name, batch):
    import torch
    import torch.nn.functional as F
    from pytorch_metric_learning import losses, miners, reducers

    from benchmarks import torch_reference
    torch.manual_seed(0)
    model = torch_reference.get_model(model_name, num_classes=64, in_ch=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=False)
    miner = miners.MultiSimilarityMiner(epsilon=0.1)
    criterion = losses.MultiSimilarityLoss(alpha=2, beta=40, base=0.5, reducer=reducers.DoNothingReducer())
    images, labels = batch_of(batch)
    x, y = torch.from_numpy(images.transpose(0, 3, 1, 2).copy()), torch.from_numpy(labels.astype(np.int64))
    model.train()

    def run():
        e = F.normalize(model(x), dim=1)
        a1, _, a2, _ = pairs = miner(e, y)
        per_row = criterion(e, y, pairs)["loss"]["losses"]
        if not torch.is_tensor(per_row):  # PML returns 0 when nothing was mined (a repeated batch gets solved)
            per_row = e.sum(1) * 0.0
        valid = torch.zeros(len(y), dtype=torch.bool)
        valid[torch.from_numpy(np.intersect1d(a1.numpy(), a2.numpy()))] = True
        loss = per_row[valid].sum() / valid.sum().clamp(min=1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()
    return run, sum(p.numel() for p in model.parameters())


MULTISIMILARITY = dict(alpha=2.0, beta=40.0, base=0.5, epsilon=0.1)


def kdjax_step(model_name, batch, losses=None):
    """(a no-argument function running one trainer step and returning its loss, the model's parameter count, the
    compiled step's XLA buffers in MiB: temp + arguments + outputs). `losses`: default multi-similarity alone."""
    import jax

    from kdjax import models, parallel, tasks
    from kdjax.train import optim, step as step_lib, terms

    mesh = parallel.make_mesh()
    model = models.get_model(model_name, num_classes=0, embedding_dim=64)
    images, labels = batch_of(batch)
    data = parallel.global_batch({"image": images, "label": labels}, mesh)
    weighted = terms.build_terms(losses or {"multisimilarity": dict(weight=1.0, **MULTISIMILARITY)},
                                 terms.DataFacts(num_classes=batch // 2))
    tx, schedules = optim.make_optimizer(dict(name="adam", weight_decay=0.0), dict(name="constant", base_lr=1e-3),
                                         steps_per_epoch=1, total_steps=1)
    networks = step_lib.Networks(model, None)
    state = jax.jit(lambda r, b: step_lib.init_state(networks, weighted, tx, r, b, {}),
                    out_shardings=parallel.replicated(mesh))(jax.random.key(0), data)
    train_step = step_lib.jit_train_step(mesh, networks=networks, weighted_terms=weighted,
                                         task=tasks.get_task("metric_learning"), schedules=schedules,
                                         steps_per_epoch=1)
    mem = train_step.lower(state, {}, data).compile().memory_analysis()
    xla_mib = (mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes) / 2**20 if mem else 0.
    holder = {"state": state}

    def run():
        holder["state"], m = train_step(holder["state"], {}, data)
        return float(jax.block_until_ready(m["loss/total"]))
    return run, sum(x.size for x in jax.tree.leaves(state.params["model"])), xla_mib


def network_parts(model_name, batch):
    """(kdjax, torch) no-argument functions running the network's forward + backward alone (train-mode BatchNorm,
    the gradient of the embeddings' sum; no loss, no optimiser): where the step's time is when it is not the loss."""
    import jax
    import jax.numpy as jnp
    import torch

    from benchmarks import torch_reference
    from kdjax import models, ops, parallel
    images, _ = batch_of(batch)
    model = models.get_model(model_name, num_classes=0, embedding_dim=64)
    variables = model.init(jax.random.key(0), images, train=False)

    def objective(params):
        z, _ = model.apply({**variables, "params": params}, images, train=True, mutable=["batch_stats"])[0]
        return jnp.sum(z)
    grad = ops.jit(jax.grad(objective), mesh=parallel.make_mesh())
    torch.manual_seed(0)
    net = torch_reference.get_model(model_name, num_classes=64, in_ch=1).train()
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())

    def run_torch():
        net.zero_grad()
        torch.nn.functional.normalize(net(x), dim=1).sum().backward()
        return 0.0
    return (lambda: float(jax.block_until_ready(jax.tree.leaves(grad(variables["params"]))[0]).ravel()[0])), run_torch


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=112)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--model", default="resnet8")
    args = parser.parse_args()
    import torch  # before TensorFlow (kdjax's data layer): the other order crashes some wheel pairs
    import pytorch_metric_learning
    run_torch, n_torch = torch_step(args.model, args.batch)
    run_jax, n_jax, _ = kdjax_step(args.model, args.batch)
    if n_jax != n_torch:
        raise SystemExit(f"parameter counts differ (kdjax {n_jax}, torch {n_torch})")
    net_jax, net_torch = network_parts(args.model, args.batch)
    t_jax, t_torch, t_net_jax, t_net_torch = time_interleaved([run_jax, run_torch, net_jax, net_torch], args.repeats)
    print(f"DML step ({args.model} + 64-d head, {n_jax} parameters), batch {args.batch} at 28x28x1, multi-similarity, "
          f"Adam; {setup_line()}, pytorch-metric-learning {pytorch_metric_learning.__version__}")
    print(f"kdjax {1000 * t_jax:8.1f} ms   torch + PML {1000 * t_torch:8.1f} ms")
    print(f"network forward + backward alone: kdjax {1000 * t_net_jax:8.1f} ms   torch {1000 * t_net_torch:8.1f} ms; "
          f"the rest of the step (mining, loss, optimiser): kdjax {1000 * (t_jax - t_net_jax):6.1f} ms   "
          f"torch + PML {1000 * (t_torch - t_net_torch):6.1f} ms")
    print(f"ratio kdjax/reference: {t_jax / t_torch:.2f}")


if __name__ == "__main__":
    main()
