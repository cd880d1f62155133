"""What reproducing each paper config costs, before launching it: training FLOPs from XLA's cost analysis of the
real train step (lowered from abstract shapes: no data, no compilation), the frozen teacher's share of them, the
teacher cache's size, and accelerator-hours at a stated model-FLOP utilisation, with and without the cache.

    python -m benchmarks.cost_table [--mfu 0.3] [--markdown]

Rows: every stage of every paper config under configs/ at its default arguments (the CIFAR-100 zoo: KD on every
pair, and DKD / MLLD / CRD on resnet32x4 -> resnet8x4). Columns:
- `step GFLOP`: one train step (forward + backward + update of the student and every method module, plus the
  teacher's forward passes), XLA's HLO cost analysis with XLA's own convolutions (KDJAX_CPU_SPEEDUPS=0);
- `teacher`: the teacher's share of the step, 1 - (cached step / step) where the cache applies;
- `PFLOP`: the step times the stage's steps (evaluation passes not included: below 2 % for every config here);
- `H100 h` / `v5e h`: PFLOP over the chip's dense bfloat16 peak (989 TFLOP/s H100 SXM, 197 TFLOP/s TPU v5e) at
  `--mfu`; a CIFAR network at batch 64 reaches far less than 30 % (fewer, smaller matrix multiplies): read the hours
  as a lower bound that scales with 1 / MFU;
- `cached h`: the same with the teacher's outputs read from the cache (a student that shares the teacher and data
  stream with one that wrote it), `pass h` the one-time teacher pass that writes it, `cache GB` its float32 size;
  "-" where the stage has no teacher or its terms need the teacher itself (Jacobians, OFD's train-mode teacher).
Dataset sizes come from each config's `data.expect` or `NATIVE` below (CIFAR's 50,000 training images, MIT Indoor 67's
5,360).
"""
import argparse
import dataclasses
import os

if __name__ == "__main__":  # platform-neutral HLO: XLA's convolutions, not the CPU GEMM forms (not when imported)
    os.environ.setdefault("KDJAX_CPU_SPEEDUPS", "0")

import jax  # noqa: E402
import numpy as np  # noqa: E402

from kdjax import config_files, parallel  # noqa: E402
from kdjax.data import samplers  # noqa: E402
from kdjax.train import recipe, stage, teacher_cache  # noqa: E402
from kdjax.train import step as step_lib  # noqa: E402
from kdjax.train import teacher as teacher_lib  # noqa: E402

PEAK_TFLOPS = {"H100": 989.0, "v5e": 197.0}
# size, channels, training images, classes of datasets whose configs give no `data.expect`
NATIVE = {"cifar100": (32, 3, 50000, 100), "cifar10": (32, 3, 50000, 10),
          "mit_indoor67": (256, 3, 5360, 67),  # folder source: Quattoni & Torralba's 80 training images per class
          "digits": (8, 1, 1437, 10), "fashion_mnist": (28, 1, 60000, 10)}  # the offline configs
PAIRS = ("resnet32x4-resnet8x4", "wrn_40_2-wrn_16_2", "vgg13-vgg8", "resnet50_cifar-mobilenetv2",
         "wrn_40_2-shufflev1", "resnet32x4-shufflev2", "resnet32x4-shufflev1", "vgg13-mobilenetv2")
CONFIGS = ([("configs/baselines/cifar100.py", f"method=kd,pair={p}") for p in PAIRS]
           + [("configs/baselines/cifar100.py", f"method={m}") for m in ("dkd", "mlld", "crd")]
           + [("configs/cifar100_kd.py", ""), ("configs/icd/teacher.py", ""), ("configs/icd/student.py", ""),
              ("configs/jacobian_matching/cifar100_table1.py", ""), ("configs/jacobian_matching/cifar100_table2.py", ""),
              ("configs/jacobian_matching/mit_scenes_table3.py", ""),
              ("configs/s2sd/cub200.py", ""), ("configs/s2sd/cars196.py", ""), ("configs/s2sd/sop.py", ""),
              ("configs/dml/cub200.py", ""), ("configs/multilabel/teacher.py", "pretrained=none"),
              ("configs/multilabel/student_baseline.py", "pretrained=none"),
              ("configs/ml_3d/voc.py", "teacher_pretrained=none,student_pretrained=none"),
              ("configs/ml_3d/coco.py", "teacher_pretrained=none,student_pretrained=none")])


def view_size(view: str, native: int) -> tuple[int, int]:
    """(height, width) after a view's ops: the last op that sets the size decides; square sources."""
    size = (native, native)
    for op in filter(None, (o.strip() for o in view.split("|"))):
        name, _, args = op.partition("(")
        values = [int(float(a)) for a in args.rstrip(")").split(",") if a.strip() and "=" not in a][:2]
        if name in ("random_resized_crop", "center_crop", "resize") and values:
            size = (values[0], values[-1]) if len(values) == 2 else (values[0], values[0])
    return size


@dataclasses.dataclass
class ShapesOnlyTrain:
    """What a plan reads from the training pipeline, without one."""
    spec: dict
    steps_per_epoch: int

    def element_spec(self) -> dict:
        return self.spec


@dataclasses.dataclass
class ShapesOnlyData:
    train: ShapesOnlyTrain
    num_examples: int
    num_classes: int


def shapes_only_data(stage_spec) -> ShapesOnlyData:
    spec = stage_spec
    data, b = spec.data, spec.batch_size
    expect = dict(data.expect or {})
    if "train" in expect:
        classes, images = expect["train"]
        native, channels = 224, 3
    else:
        native, channels, images, classes = NATIVE[os.path.basename(data.name.removeprefix("folder:"))]
    if data.per_class:
        images = int(data.per_class) * classes
    labels = np.repeat(np.arange(classes), -(-images // classes))[:images]
    sampler = samplers.SAMPLERS.get(data.sampler or "epoch")(np.arange(images), labels, b, spec.seed, data)
    element = {view: ((b,) + view_size(ops, native) + (channels,), np.float32) for view, ops in data.views.items()}
    element["label"] = ((b, classes), np.float32) if spec.task.label_kind == "multi_hot" else ((b,), np.int32)
    element["index"] = ((b,), np.int32)
    if data.contrast_negatives:
        element["contrast_idx"] = ((b, int(data.contrast_negatives) + 1), np.int32)
    return ShapesOnlyData(ShapesOnlyTrain(element, sampler.steps_per_epoch), images, classes)


def step_flops(plan, teacher_vars) -> float:
    state = jax.eval_shape(lambda tv, b: plan.init_fn(tv, b)(jax.random.key(0)), teacher_vars, plan.zeros_batch())
    step = step_lib.jit_train_step(parallel.make_mesh(), networks=plan.networks, weighted_terms=plan.weighted_terms,
                                   task=plan.spec.task, schedules=plan.schedules,
                                   steps_per_epoch=plan.steps_per_epoch)
    return float(step.lower(state, teacher_vars, plan.batch_spec).cost_analysis()["flops"])


def stage_row(stage_spec, mesh) -> dict:
    spec = stage_spec
    plan = stage.build(stage_spec, mesh, data=shapes_only_data(stage_spec))
    row = {"stage": spec.name, "model": spec.model["name"], "steps": plan.total_steps}
    teacher_vars = {}
    if plan.teacher_model is not None:
        teacher_vars = teacher_lib.abstract_variables(plan.teacher_model, plan.batch_spec["image"])
    row["flops"] = step_flops(plan, teacher_vars)
    row.update(cached=None, teacher=None, cache_gb=None, pass_flops=None)
    if plan.teacher_model is None:
        return row
    layout = teacher_cache.layout(plan, teacher_vars)
    row["teacher_model"] = spec.teacher.model["name"]
    if isinstance(layout, str):
        row["why_not"] = layout
        return row
    cached = teacher_cache.with_cache(plan, layout, mesh)
    row["cached"] = step_flops(cached, teacher_vars)
    row["teacher"] = 1.0 - row["cached"] / row["flops"]
    row["pass_flops"] = row["flops"] - row["cached"]
    per_row = sum(int(np.prod(s)) for v in layout.views.values() for _, s in v.shapes)
    row["cache_gb"] = plan.total_steps * spec.batch_size * per_row * 4 / 1e9
    return row


def hours(flops: float, chip: str, mfu: float) -> float:
    return flops / (PEAK_TFLOPS[chip] * 1e12 * mfu) / 3600


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mfu", type=float, default=0.3)
    args = parser.parse_args()
    mesh = parallel.make_mesh()
    head = ("| config | stage | model (teacher) | steps | step GFLOP | teacher | PFLOP | H100 h | cached h | pass h | "
            "v5e h | cached h | pass h | cache GB |")
    print(f"Training cost at {args.mfu:.0%} MFU of the dense bf16 peak (H100 SXM {PEAK_TFLOPS['H100']:.0f}, "
          f"TPU v5e {PEAK_TFLOPS['v5e']:.0f} TFLOP/s); jax {jax.__version__}\n")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for path, arguments in CONFIGS:
        config = config_files.load(path + (f":{arguments}" if arguments else ""))
        for name in recipe.stage_order(config):
            row = stage_row(recipe.resolve_stage(config, name), mesh)
            total = row["flops"] * row["steps"]
            model = row["model"] + (f" ({row['teacher_model']})" if row.get("teacher_model") else "")
            cells = [f"{path.removeprefix('configs/')}{':' + arguments if arguments else ''}", row["stage"], model,
                     f"{row['steps']:,}", f"{row['flops'] / 1e9:,.1f}",
                     f"{row['teacher']:.0%}" if row["teacher"] is not None else
                     ("needs the teacher itself" if row.get("why_not") else "-"), f"{total / 1e15:,.1f}"]
            for chip in PEAK_TFLOPS:
                cells.append(f"{hours(total, chip, args.mfu):,.2f}")
                if row["cached"] is None:
                    cells += ["-", "-"]
                else:
                    cells.append(f"{hours(row['cached'] * row['steps'], chip, args.mfu):,.2f}")
                    cells.append(f"{hours(row['pass_flops'] * row['steps'], chip, args.mfu):,.2f}")
            cells.append(f"{row['cache_gb']:,.2f}" if row["cache_gb"] is not None else "-")
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
