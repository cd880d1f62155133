"""The PyTorch + pytorch-metric-learning side of configs/dml/fashion_mnist.py: the same network, loss, sampler,
augmentation and step budget, trained and evaluated with the reference libraries, for several seeds.

    python -m benchmarks.dml_reference [--seeds 0,1,2] [--steps 1000] [--loss multisimilarity]

Network: the CIFAR ResNet-8 (16-16-32-64; mdistiller's kaiming-normal conv init) on 1-channel 28x28 images, whose
classifier is the Linear(64 -> 64) embedding head, then L2 normalisation (as kdjax's `embedding_dim=64`).
Data: Fashion-MNIST from Debian's files; training classes 0-4 of the train split, retrieval on classes 5-9 of the
test split; RandomCrop(28, padding 2) + horizontal flip, normalised with mean 0.2860, std 0.3530.
Batches: Roth's class_random rule (56 classes drawn with replacement, 2 images each), NumPy-seeded.
Loss: PML's MultiSimilarityMiner(epsilon=0.1) + MultiSimilarityLoss(alpha=2, beta=40, base=0.5) with a
DoNothingReducer, averaged over the anchors that have both a mined positive and a mined negative (Roth's reduction,
which kdjax implements; PML's MeanReducer would average over all rows). Adam 1e-3, 1,000 steps.
Evaluation: PML's AccuracyCalculator (precision_at_1 = Recall@1, mean_average_precision_at_r) with the evaluation
images as query and reference set (each query excluded from its own neighbours).
Prints per-seed and mean ± std R@1 and MAP@R; configs/dml/README.md puts them beside kdjax's.
"""
import argparse
import gzip
import os
import time

import numpy as np

MEAN, STD = 0.2860, 0.3530
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist


def _idx(name):
    """An IDX file (no kdjax / TensorFlow import here: TensorFlow and PyTorch's Triton crash in one process)."""
    with gzip.open(os.path.join(FASHION_MNIST_DIR, name), "rb") as f:
        data = f.read()
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(data[3]))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * data[3]).reshape(shape)


def _split(images, labels, lo, hi):
    keep = (labels >= lo) & (labels < hi)
    return images[keep], labels[keep]


def _augment(batch, rng):
    """RandomCrop(28, padding=2) + RandomHorizontalFlip on [N, 28, 28] uint8."""
    padded = np.pad(batch, ((0, 0), (2, 2), (2, 2)))
    out = np.empty_like(batch)
    for k in range(len(batch)):
        i, j = rng.integers(0, 5, 2)
        crop = padded[k, i:i + 28, j:j + 28]
        out[k] = crop[:, ::-1] if rng.random() < 0.5 else crop
    return out


def _class_random(labels, batch, rng, m=2):
    classes = np.unique(labels)
    members = {c: np.flatnonzero(labels == c) for c in classes}
    chosen = rng.choice(classes, batch // m, replace=True)
    return np.concatenate([rng.choice(members[c], m, replace=True) for c in chosen])


def train_and_evaluate(seed, steps, loss_name="multisimilarity"):
    import torch
    import torch.nn.functional as F
    from pytorch_metric_learning import losses, miners, reducers
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    from benchmarks import torch_reference  # the bench extra: --help works without torch

    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 0xD1])
    x_train, y_train = _split(_idx("train-images-idx3-ubyte.gz"), _idx("train-labels-idx1-ubyte.gz"), 0, 5)
    x_eval, y_eval = _split(_idx("t10k-images-idx3-ubyte.gz"), _idx("t10k-labels-idx1-ubyte.gz"), 5, 10)
    model = torch_reference.get_model("resnet8", num_classes=64, in_ch=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    if loss_name != "multisimilarity":
        raise SystemExit("the reference implements the multisimilarity comparison only")
    miner = miners.MultiSimilarityMiner(epsilon=0.1)
    criterion = losses.MultiSimilarityLoss(alpha=2, beta=40, base=0.5, reducer=reducers.DoNothingReducer())

    def embed(images):
        x = torch.from_numpy(((images.astype(np.float32) / 255.0 - MEAN) / STD)[:, None])
        return F.normalize(model(x), dim=1)

    t0 = time.time()
    model.train()
    for _ in range(steps):
        idx = _class_random(y_train, 112, rng)
        labels = torch.from_numpy(y_train[idx].astype(np.int64))
        e = embed(_augment(x_train[idx], rng))
        a1, _, a2, _ = pairs = miner(e, labels)
        per_row = criterion(e, labels, pairs)["loss"]["losses"]
        valid = torch.zeros(len(labels), dtype=torch.bool)
        valid[np.intersect1d(a1.numpy(), a2.numpy())] = True
        loss = per_row[valid].sum() / max(int(valid.sum()), 1) if torch.is_tensor(per_row) and per_row.ndim else per_row
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        embeddings = torch.cat([embed(x_eval[i:i + 1000]) for i in range(0, len(x_eval), 1000)]).numpy()
    calculator = AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r"), k="max_bin_count")
    scores = calculator.get_accuracy(embeddings, y_eval, embeddings, y_eval, ref_includes_query=True)
    return {"recall@1": float(scores["precision_at_1"]), "map_at_r": float(scores["mean_average_precision_at_r"]),
            "wall_time": time.time() - t0}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--loss", default="multisimilarity")
    args = parser.parse_args()
    import torch
    import pytorch_metric_learning
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), pytorch-metric-learning "
          f"{pytorch_metric_learning.__version__}")
    runs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        r = train_and_evaluate(seed, args.steps, args.loss)
        runs.append(r)
        print(f"seed {seed}: R@1 {100 * r['recall@1']:.2f}  MAP@R {100 * r['map_at_r']:.2f}  ({r['wall_time']:.0f} s)",
              flush=True)
    for key in ("recall@1", "map_at_r"):
        v = 100 * np.array([r[key] for r in runs])
        print(f"{key}: {v.mean():.2f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.2f}")


if __name__ == "__main__":
    main()
