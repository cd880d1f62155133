"""The Fashion-MNIST mini-benchmark's CE and KD cells (configs/baselines/fashion_mnist.py) trained end to end in
PyTorch: the cross-check of kdjax's trainer (input pipeline, optimiser, schedule, BN statistics) against an
independent eager implementation of the same recipe and budget. Data order and subset draws are this script's own.

    python -m benchmarks.kd_end_to_end_torch --workdir=/tmp/kd_torch [--seeds=0,1,2] [--threads=2] [--kdjax_teacher=DIR]

`--kdjax_teacher=DIR` (the `teacher/checkpoints` directory of `experiments.baselines_offline`) adds KD students that
distil from kdjax's own teacher, copied into the PyTorch model, so the KD comparison does not hinge on two teachers
trained separately (`kd_kdjax_teacher_seedN`).

Recipe, restated from the config (not read from it): images 28 -> 16 (bilinear, antialiased), train view pad-2 crop
+ flip, normalisation (0.2860, 0.3530); teacher resnet32x4 at width 0.25 (widths 8-16-32-64, 5 blocks per stage) on
the full train split for 2 epochs of batch 64, SGD 0.05, momentum 0.9, weight decay 5e-4; students resnet8x4 at
width 0.25 on 200 images per class, 600 steps of batch 64, LR 0.05 x0.1 at epochs 12 and 16 (31 steps per epoch);
KD = 0.1 CE + 0.9 T^2 KL(T = 4), the teacher in eval mode. Test top-1 on the 10,000 test images after the last
step. Writes `<workdir>/results.json` (resumable per cell) and prints mean ± std (ddof 1) over seeds.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import time

import numpy as np
from PIL import Image

try:  # the bench extra; `--help` works without it (the README-command test runs in CI)
    import torch
    import torch.nn.functional as F

    from benchmarks import torch_reference
except ImportError:
    torch = None

MEAN, STD = 0.2860, 0.3530
WIDTHS = (8, 16, 32, 64)  # (32, 64, 128, 256) x 0.25
BATCH, STUDENT_STEPS, PER_CLASS, MILESTONES_EPOCHS = 64, 600, 200, (12, 16)


FASHION_MNIST = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist, as kdjax's source reads it
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def read_idx(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(data[3]))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * len(shape)).reshape(shape)


def load_fashion_mnist():
    """Read here rather than through kdjax: TensorFlow (kdjax's pipeline) and torch in one process crash on this
    machine's oneDNN builds."""
    return {split: tuple(read_idx(os.path.join(FASHION_MNIST, f)) for f in files) for split, files in FILES.items()}


def resize(images: np.ndarray) -> np.ndarray:
    """28x28 uint8 -> 16x16 uint8 with PIL's antialiased bilinear filter (torchvision Resize on PIL images)."""
    return np.stack([np.asarray(Image.fromarray(im).resize((16, 16), Image.BILINEAR)) for im in images])


def augment(images: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    """RandomCrop(16, padding=2) + RandomHorizontalFlip, ToTensor, Normalize: [B, 1, 16, 16] float32."""
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))
    out = np.empty_like(images)
    for i, (dy, dx, flip) in enumerate(zip(rng.integers(0, 5, len(images)), rng.integers(0, 5, len(images)),
                                           rng.random(len(images)) < 0.5)):
        crop = padded[i, dy:dy + 16, dx:dx + 16]
        out[i] = crop[:, ::-1] if flip else crop
    return normalise(out)


def normalise(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(((images / 255.0 - MEAN) / STD).astype(np.float32)[:, None])


def model(blocks_per_stage: int) -> torch.nn.Module:
    net = torch_reference.CifarResNet(blocks_per_stage, WIDTHS, 10, in_ch=1)
    for m in net.modules():  # mdistiller's conv init, as kdjax's CIFAR ResNets
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return net


EXPORT = """
import sys, numpy as np, jax
from kdjax.train import checkpoint as ckpt_lib
variables, _ = ckpt_lib.load_model_variables(sys.argv[1])
flat = {}
for prefix, t in variables.items():
    for path, x in jax.tree_util.tree_leaves_with_path(t):
        flat[prefix + "/" + "/".join(p.key for p in path)] = np.asarray(x)
np.savez(sys.argv[2], **flat)
"""


def kdjax_teacher(directory: str, workdir: str) -> torch.nn.Module:
    """kdjax's CIFAR ResNet variables -> the twin's state dict (flax creation-order names, see
    kdjax/models/mdistiller.py); the checkpoint is read in a subprocess (no TensorFlow next to torch here)."""
    import subprocess
    import sys
    out = os.path.join(workdir, "kdjax_teacher.npz")
    subprocess.run([sys.executable, "-c", EXPORT, directory, out], check=True, cwd=os.getcwd())
    v = np.load(out)
    sd = {}

    def conv(dst, src):
        sd[f"{dst}.weight"] = v[f"params/{src}/kernel"].transpose(3, 2, 0, 1)

    def bn(dst, src):
        sd.update({f"{dst}.weight": v[f"params/{src}/scale"], f"{dst}.bias": v[f"params/{src}/bias"],
                   f"{dst}.running_mean": v[f"batch_stats/{src}/mean"], f"{dst}.running_var": v[f"batch_stats/{src}/var"]})
    conv("stem.0", "Conv_0")
    bn("stem.1", "BatchNorm_0")
    for i, (s, b) in enumerate((s, b) for s in (1, 2, 3) for b in range(5)):
        block = f"stage{s}_block{b}"
        conv(f"blocks.{i}.conv1", f"{block}/Conv_0")
        bn(f"blocks.{i}.bn1", f"{block}/BatchNorm_0")
        conv(f"blocks.{i}.conv2", f"{block}/Conv_1")
        bn(f"blocks.{i}.bn2", f"{block}/BatchNorm_1")
        if f"params/{block}/Conv_2/kernel" in v:
            conv(f"blocks.{i}.shortcut.0", f"{block}/Conv_2")
            bn(f"blocks.{i}.shortcut.1", f"{block}/BatchNorm_2")
    sd["fc.weight"], sd["fc.bias"] = v["params/Dense_0/kernel"].T, v["params/Dense_0/bias"]
    net = model(5)
    missing = net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(x)) for k, x in sd.items()}, strict=False)
    assert not missing.unexpected_keys and all(k.endswith("num_batches_tracked") for k in missing.missing_keys), missing
    return net.eval()


def train(net, images, labels, *, steps, seed, milestones=(), teacher=None):
    """Shuffled epochs (drop last), SGD with coupled decay, LR x0.1 from each milestone step on."""
    rng = np.random.default_rng(seed)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(milestones), gamma=0.1)
    per_epoch, order, step = len(images) // BATCH, np.array([], int), 0
    net.train()
    start = time.time()
    while step < steps:
        if len(order) < BATCH:
            order = rng.permutation(len(images))[:per_epoch * BATCH]
        batch, order = order[:BATCH], order[BATCH:]
        x, y = augment(images[batch], rng), torch.from_numpy(labels[batch].astype(np.int64))
        logits = net(x)
        if teacher is None:
            loss = F.cross_entropy(logits, y)
        else:
            with torch.no_grad():
                teacher_logits = teacher(x)
            loss = torch_reference.kd_loss(logits, teacher_logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        if step % 200 == 0:
            rate = step / (time.time() - start)
            print(f"  step {step}/{steps} | {rate:.1f} steps/s ETA {(steps - step) / rate:.0f} s", flush=True)
    return net


def accuracy(net, images, labels) -> float:
    net.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(images), 1000):
            correct += int((net(normalise(images[i:i + 1000])).argmax(1).numpy() == labels[i:i + 1000]).sum())
    return correct / len(images)


def few_shot(labels, seed):
    rng = np.random.default_rng(seed)
    return np.sort(np.concatenate([rng.choice(np.flatnonzero(labels == c), PER_CLASS, replace=False)
                                   for c in range(10)]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--kdjax_teacher", default="", help="kdjax teacher checkpoints directory (optional)")
    args = parser.parse_args(argv)
    if torch is None:
        raise SystemExit("benchmarks.kd_end_to_end_torch needs PyTorch: pip install -e '.[bench]'")
    torch.set_num_threads(args.threads)
    os.makedirs(args.workdir, exist_ok=True)
    path = os.path.join(args.workdir, "results.json")
    results = json.load(open(path)) if os.path.exists(path) else {}
    data = load_fashion_mnist()
    (train_x, train_y), (test_x, test_y) = data["train"], data["test"]
    train_x, test_x = resize(train_x), resize(test_x)

    torch.manual_seed(0)
    teacher_file = os.path.join(args.workdir, "teacher.pt")
    teacher = model(5)
    if os.path.exists(teacher_file):
        teacher.load_state_dict(torch.load(teacher_file))
    else:
        start = time.time()
        train(teacher, train_x, train_y, steps=2 * (len(train_x) // BATCH), seed=0)
        torch.save(teacher.state_dict(), teacher_file)
        results["teacher"] = {"top1": accuracy(teacher, test_x, test_y), "seconds": time.time() - start}
        json.dump(results, open(path, "w"), indent=1)
    teacher.eval()
    print(f"teacher: {100 * results['teacher']['top1']:.2f}", flush=True)

    teachers = {"kd": teacher}
    if args.kdjax_teacher:
        teachers["kd_kdjax_teacher"] = kdjax_teacher(args.kdjax_teacher, args.workdir)
        results["kdjax_teacher"] = {"top1": accuracy(teachers["kd_kdjax_teacher"], test_x, test_y)}
        print(f"kdjax teacher in PyTorch: {100 * results['kdjax_teacher']['top1']:.2f}", flush=True)
    per_epoch = PER_CLASS * 10 // BATCH
    for seed in [int(s) for s in args.seeds.split(",")]:
        subset = few_shot(train_y, seed)
        for method in ("ce",) + tuple(teachers):
            key = f"{method}_seed{seed}"
            if key in results:
                continue
            torch.manual_seed(seed)
            start = time.time()
            student = train(model(1), train_x[subset], train_y[subset], steps=STUDENT_STEPS, seed=seed,
                            milestones=[m * per_epoch for m in MILESTONES_EPOCHS], teacher=teachers.get(method))
            results[key] = {"top1": accuracy(student, test_x, test_y), "seconds": time.time() - start}
            json.dump(results, open(path, "w"), indent=1)
            print(f"{key}: {100 * results[key]['top1']:.2f} ({results[key]['seconds']:.0f} s)", flush=True)
    for method in ("ce",) + tuple(teachers):
        values = 100 * np.array([v["top1"] for k, v in results.items() if k.startswith(method + "_seed")])
        print(f"{method}: {values.mean():.2f} ± {values.std(ddof=1) if len(values) > 1 else 0:.2f} "
              f"(n={len(values)})")


if __name__ == "__main__":
    main()
