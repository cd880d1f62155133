"""Published teachers: `teacher=dict(pretrained='mdistiller:resnet32x4', path=...)` in a student stage.

The CIFAR-100 teachers most KD papers distil from are mdistiller's `cifar_teachers.tar` (the weights RepDistiller
released through `scripts/fetch_pretrained_teachers.sh`): `<arch>_vanilla/ckpt_epoch_240.pth`, a PyTorch checkpoint
with the state dict under `model`. Each entry records the architecture, mdistiller's published top-1 (its README's
teacher row; reference: megvii-research/mdistiller README.md), the file inside the archive, its sha256 where one is
known, and the kdjax config that trains an equivalent teacher. Nothing is downloaded: `path` is the user's file, the
unpacked `cifar_teachers` directory, or a `.npz` of the state dict (what `experiments/convert_mdistiller.py` writes,
for machines without torch).

At load (`load`) the file's sha256 is checked against the entry's (or the stage's `sha256=`); the trainer then
measures the teacher on the eval split once and writes measured and expected top-1 to `teacher.json`, warning when
they differ by more than `ACCURACY_TOLERANCE` points.
"""
import dataclasses
import hashlib
import os

import numpy as np

from kdjax import models
from kdjax.errors import BadFileError, MissingCheckpointError
from kdjax.registry import Registry

ACCURACY_TOLERANCE = 1.0  # points of top-1; mdistiller's teachers are single runs, its seeds spread about 0.3
RELEASES = ("mdistiller's GitHub release `cifar_teachers.tar` (https://github.com/megvii-research/mdistiller/"
            "releases/tag/checkpoints), unpacked with `tar xf cifar_teachers.tar`")


@dataclasses.dataclass(frozen=True)
class Teacher:
    source: str          # the `from_torch` source of its checkpoint
    arch: str            # kdjax model name
    top1: float          # published CIFAR-100 top-1 (%)
    file: str            # path inside the unpacked archive
    trains_it: str       # the kdjax config whose teacher stage trains an equivalent model
    sha256: str | None = None  # of `file`; None: not published, the measured hash is recorded instead


def _mdistiller(arch, top1, pair, mdistiller_name=None):
    name = mdistiller_name or arch
    return Teacher("mdistiller", arch, top1, f"{name}_vanilla/ckpt_epoch_240.pth",
                   f"configs/baselines/cifar100.py:pair={pair},method=ce (its `teacher` stage)" if pair else
                   "configs/cifar100_kd.py (with this model as the teacher)")


TEACHERS = Registry("pretrained teacher")
TEACHERS.register("mdistiller:resnet56", _mdistiller("resnet56", 72.34, None))
TEACHERS.register("mdistiller:resnet110", _mdistiller("resnet110", 74.31, None))
TEACHERS.register("mdistiller:resnet32x4", _mdistiller("resnet32x4", 79.42, "resnet32x4-resnet8x4"))
TEACHERS.register("mdistiller:wrn_40_2", _mdistiller("wrn_40_2", 75.61, "wrn_40_2-wrn_16_2"))
TEACHERS.register("mdistiller:vgg13", _mdistiller("vgg13", 74.64, "vgg13-vgg8"))
TEACHERS.register("mdistiller:ResNet50", _mdistiller("resnet50_cifar", 79.34, "resnet50_cifar-mobilenetv2", "ResNet50"))


def get(name: str) -> Teacher:
    return TEACHERS.get(name)


def of_architecture(arch: str) -> str:
    """The name of the published teacher of architecture `arch` (a kdjax model name)."""
    names = TEACHERS.find(lambda name, entry: entry.arch == arch)
    if not names:
        published = ", ".join(f"{n} ({e.arch})" for n, e in TEACHERS.items())
        raise ValueError(f"no published teacher of architecture {arch!r}; published: {published}")
    return names[0]


def resolve_path(name: str, path: str) -> str:
    """The checkpoint file: `path` itself, or the entry's file under it (the unpacked archive's directory, or the
    directory that holds `cifar_teachers/`). Raises FileNotFoundError saying where the file comes from."""
    entry = get(name)
    candidates = [path, os.path.join(path, entry.file), os.path.join(path, "cifar_teachers", entry.file)]
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    raise MissingCheckpointError(f"pretrained teacher {name!r}: no checkpoint at {path!r} (looked for "
                            f"{candidates[1:]}); it comes from {RELEASES}; pass the unpacked directory or the "
                            f"`{entry.file}` file as teacher.path")


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_state_dict(path: str) -> dict:
    """A PyTorch checkpoint (`.pth` / `.pt`; needs torch) or a `.npz` of name -> array."""
    if path.endswith(".npz"):
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    try:
        import torch
    except ImportError as e:
        raise ImportError(f"reading {path} needs PyTorch (`pip install torch`); or convert it once where torch is "
                          "installed: `python -m experiments.convert_mdistiller --checkpoint=... --out=X.npz`") from e
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (torch raises UnpicklingError subclasses that vary by version)
        # a checkpoint that pickles other objects beside the tensors (NumPy scalars in `best_acc`, ...): the user
        # supplied this file, and a pinned hash is checked before it is read
        print(f"{path}: not a tensors-only checkpoint ({type(e).__name__}); loading it with weights_only=False")
        return torch.load(path, map_location="cpu", weights_only=False)


def load(name: str, path: str, *, num_classes: int, expected_sha256: str | None = None) -> tuple[dict, dict]:
    """(variables, record) of the pretrained teacher `name` from `path`; the record (for teacher.json) holds the
    file, its sha256, the expected top-1 and the config that trains an equivalent teacher. A hash that differs from
    the expected one (the stage's `sha256`, else the registry's) is an error: the file is corrupt or another one."""
    entry = get(name)
    file = resolve_path(name, path)
    digest = sha256(file)  # checked (when one is pinned) before anything in the file is unpickled
    expected = expected_sha256 or entry.sha256
    if expected and digest != expected:
        raise BadFileError(f"pretrained teacher {name!r}: {file} has sha256 {digest}, expected {expected}: the file is "
                         f"corrupt or not this teacher; fetch it again from {RELEASES}")
    variables = models.from_torch(entry.arch, read_state_dict(file), source=entry.source, num_classes=num_classes)
    record = {"pretrained": name, "file": os.path.abspath(file), "sha256": digest, "sha256_expected": expected,
              "expected_top1": entry.top1, "trains_it": entry.trains_it}
    return variables, record


def accuracy_warning(name: str, measured_top1: float) -> str | None:
    """The loud line to print when the measured top-1 (%, eval split) is off the published one, else None."""
    expected = get(name).top1
    if abs(measured_top1 - expected) <= ACCURACY_TOLERANCE:
        return None
    return (f"WARNING: pretrained teacher {name!r} measures {measured_top1:.2f}% top-1 on this eval split, "
            f"{expected:.2f}% published (tolerance {ACCURACY_TOLERANCE}): check the data (normalisation, split) and "
            "the file before comparing students with published numbers")
