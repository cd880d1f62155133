"""What S2SD adds to a deep-metric-learning step, kdjax against PyTorch + pytorch-metric-learning in the same run:
base (multi-similarity alone), DSD (one 64-d target branch) and MSDFA (branches 16/32/48/64 on average + max
pooled features, feature distillation on) on configs/s2sd/fashion_mnist.py's network (ResNet-8, 64-d embedding,
batch 112 of 1-channel 28x28 images, Adam 1e-3).

    python -m benchmarks.s2sd_cost [--batch 112] [--repeats 10]

kdjax: the trainer's step with the `s2sd` term. PyTorch: the supplement's Listing 1 (Sec F) restated: target MLPs
Linear -> ReLU -> Linear, one PML MultiSimilarityMiner + MultiSimilarityLoss per branch, row-wise
KL(softmax(S_target) || softmax(S_source)) with the targets detached, 1/2 (source + mean targets) + 50 mean KL.
Times: medians of alternating steps after 3 warm-up steps. Memory: kdjax's compiled step buffers (XLA's memory
analysis: temp + arguments + outputs; PyTorch's CPU allocator exposes no comparable figure). Last line:
`ratio kdjax/reference`: kdjax's MSDFA/base time overhead over PyTorch's (target <= 1.0).
"""
import argparse

import numpy as np

from benchmarks.dml_step import MULTISIMILARITY, batch_of, kdjax_step
from benchmarks.train_step import time_interleaved

VARIANTS = {"base": None, "dsd": dict(target_dims=(64,), pool_aggr=False, feat_distill=False),
            "msdfa": dict(target_dims=(16, 32, 48, 64), pool_aggr=True, feat_distill=True)}
GAMMA, FEAT_WEIGHT = 50.0, 50.0


def kdjax_losses(variant):
    options = VARIANTS[variant]
    if options is None:
        return {"multisimilarity": dict(weight=1.0, **MULTISIMILARITY)}
    return {"s2sd": dict(weight=1.0, base="multisimilarity", base_options=MULTISIMILARITY, gamma=GAMMA,
                         feat_weight=FEAT_WEIGHT, feat_delay=0, **options)}


def torch_step(variant, batch):
    import torch
    import torch.nn.functional as F
    from pytorch_metric_learning import losses, miners, reducers

    from benchmarks import torch_reference
    torch.manual_seed(0)
    model = torch_reference.get_model("resnet8", num_classes=64, in_ch=1)
    options = VARIANTS[variant] or dict(target_dims=(), pool_aggr=False, feat_distill=False)
    feature_dim = model.fc.in_features
    mlps = torch.nn.ModuleList(torch.nn.Sequential(torch.nn.Linear(feature_dim, d), torch.nn.ReLU(),
                                                   torch.nn.Linear(d, d)) for d in options["target_dims"])
    optimizer = torch.optim.Adam(list(model.parameters()) + list(mlps.parameters()), lr=1e-3, foreach=False)
    criteria = [(miners.MultiSimilarityMiner(epsilon=0.1),
                 losses.MultiSimilarityLoss(alpha=2, beta=40, base=0.5, reducer=reducers.DoNothingReducer()))
                for _ in range(len(mlps) + 1)]
    images, labels = batch_of(batch)
    x, y = torch.from_numpy(images.transpose(0, 3, 1, 2).copy()), torch.from_numpy(labels.astype(np.int64))
    model.train()

    def ms(criterion, e):
        miner, loss = criterion
        a1, _, a2, _ = pairs = miner(e, y)
        per_row = loss(e, y, pairs)["loss"]["losses"]
        if not torch.is_tensor(per_row):  # PML returns 0 when nothing was mined
            per_row = e.sum(1) * 0.0
        valid = torch.zeros(len(y), dtype=torch.bool)
        valid[torch.from_numpy(np.intersect1d(a1.numpy(), a2.numpy()))] = True
        return per_row[valid].sum() / valid.sum().clamp(min=1)

    def kl_rows(source, target):
        return F.kl_div(F.log_softmax(source @ source.T, 1), F.softmax(target @ target.T, 1), reduction="sum") / len(y)

    def run():
        feats = model.blocks(model.stem(x))
        pooled = feats.mean((2, 3))
        e = F.normalize(model.fc(pooled), dim=1)
        loss = ms(criteria[0], e)
        if len(mlps):
            f = pooled + feats.amax((2, 3)) if options["pool_aggr"] else pooled
            targets = [F.normalize(mlp(f), dim=1) for mlp in mlps]
            target_loss = torch.stack([ms(c, z) for c, z in zip(criteria[1:], targets)]).mean()
            kl = torch.stack([kl_rows(e, z.detach()) for z in targets]).mean()
            loss = 0.5 * (loss + target_loss) + GAMMA * kl
            if options["feat_distill"]:
                loss = loss + FEAT_WEIGHT * kl_rows(e, F.normalize(f, dim=1).detach())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=112)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    import torch  # before TensorFlow (kdjax's data layer): the other order crashes some wheel pairs
    import jax
    print(f"S2SD step cost, resnet8 + 64-d embedding, batch {args.batch} at 28x28x1; jax {jax.__version__} "
          f"({jax.devices()[0].platform}), torch {torch.__version__} ({torch.get_num_threads()} threads)")
    times = {}
    for variant in VARIANTS:
        run_jax, _, mib = kdjax_step("resnet8", args.batch, kdjax_losses(variant))
        t_jax, t_torch = time_interleaved([run_jax, torch_step(variant, args.batch)], args.repeats)
        times[variant] = (t_jax, t_torch)
        print(f"{variant:6s} kdjax {1000 * t_jax:7.1f} ms ({mib:6.1f} MiB XLA buffers)   torch + PML "
              f"{1000 * t_torch:7.1f} ms")
    for variant in ("dsd", "msdfa"):
        over_jax, over_torch = times[variant][0] / times["base"][0], times[variant][1] / times["base"][1]
        print(f"{variant} / base: kdjax {over_jax:.2f}x, torch {over_torch:.2f}x")
    print(f"ratio kdjax/reference: {(times['msdfa'][0] / times['base'][0]) / (times['msdfa'][1] / times['base'][1]):.2f}")


if __name__ == "__main__":
    main()
