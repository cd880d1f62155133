"""One KD train step, kdjax against PyTorch eager in the same run: teacher forward (eval mode) + student forward /
backward + SGD (momentum 0.9, weight decay 5e-4), 0.1 CE + 0.9 KD, batch 64, 32x32, 100 classes.

    python -m benchmarks.train_step [--pairs resnet32x4-resnet8x4,vgg9-vgg4] [--batch 64] [--repeats 10]

Both sides use every core of the machine (XLA's and PyTorch's default thread pools); times are medians over
`--repeats` steps after 3 warm-up steps, the kdjax and PyTorch steps alternating. kdjax's step is the trainer's own
(`kdjax.train.step.train_step`, jitted on the device mesh by `kdjax.ops.jit`, i.e. with its XLA:CPU options). Last line:
`ratio kdjax/reference: X.XX`, the larger of the pairs' kdjax/PyTorch time ratios.
"""
import argparse
import statistics
import time

import numpy as np

from kdjax.provenance import allocator


def setup_line() -> str:
    """What a figure depends on besides the code: 'jax V (backend), torch V (N threads), malloc M'."""
    import jax
    import torch
    return (f"jax {jax.__version__} ({jax.devices()[0].platform}), torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), malloc {allocator()}")


def time_calls(fn, repeats, warmup=3):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_interleaved(fns, repeats, warmup=3):
    """Medians of each function's wall time, the calls alternating (a, b, a, b, ...) so that both sides of a ratio
    see the same machine: on this shared VM the speed drifts by up to 30% over minutes."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [statistics.median(ts) for ts in times]


def kdjax_step(teacher_name, student_name, batch, losses=None, cached=False, dtype="float32"):
    """Returns (a no-argument function that runs one kdjax train step, waits for it and returns its total loss,
    the student's parameter count, the compiled step's XLA buffers in MiB: temp + arguments + outputs).
    `losses`: the step's terms (default 0.1 CE + 0.9 KD at T = 4). `cached`: the teacher's logits come with the
    batch, as a stage with a teacher cache runs (kdjax.train.teacher_cache). `dtype`: both models' compute dtype
    (`config.compute_dtype`)."""
    import jax

    from kdjax import models, parallel, tasks
    from kdjax.train import optim, step as step_lib, teacher_cache, terms

    mesh = parallel.make_mesh()
    teacher, student = (models.get_model(name, num_classes=100, **({"dtype": dtype} if dtype != "float32" else {}))
                        for name in (teacher_name, student_name))
    rng = np.random.default_rng(0)
    local = {"image": rng.normal(size=(batch, 32, 32, 3)).astype(np.float32),
             "label": rng.integers(0, 100, batch).astype(np.int32)}
    teacher_vars = jax.device_put(teacher.init(jax.random.key(1), local["image"], train=False),
                                  parallel.replicated(mesh))
    layout = None
    if cached:
        view = teacher_cache.ViewLayout("image", (("logits", (100,)),), jax.tree.structure({}))
        layout = teacher_cache.Layout({"image": view})
        local[view.batch_key("logits")] = rng.normal(size=(batch, 100)).astype(np.float32)
    data = parallel.global_batch(local, mesh)
    weighted = terms.build_terms(losses or {"ce": dict(weight=0.1), "kd": dict(weight=0.9, temperature=4.0)})
    tx, schedules = optim.make_optimizer(dict(name="sgd", momentum=0.9, weight_decay=5e-4),
                                         dict(name="constant", base_lr=0.05), steps_per_epoch=1, total_steps=1)
    networks = step_lib.Networks(student, teacher, teacher_layout=layout)
    state = jax.jit(lambda r, b, tv: step_lib.init_state(networks, weighted, tx, r, b, tv),
                    out_shardings=parallel.replicated(mesh))(jax.random.key(0), data, teacher_vars)
    train_step = step_lib.jit_train_step(mesh, networks=networks, weighted_terms=weighted,
                                         task=tasks.get_task("classification"), schedules=schedules, steps_per_epoch=1)
    mem = train_step.lower(state, teacher_vars, data).compile().memory_analysis()
    xla_mib = (mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes) / 2**20 if mem else 0.
    holder = {"state": state}

    def run():
        holder["state"], m = train_step(holder["state"], teacher_vars, data)
        return jax.block_until_ready(m["loss/total"])
    count = sum(x.size for x in jax.tree.leaves(state.params["model"]))
    return run, count, xla_mib


def torch_step(teacher_name, student_name, batch, jacobian=False):
    import torch

    from benchmarks import torch_reference
    torch.manual_seed(0)
    teacher, student = torch_reference.get_model(teacher_name), torch_reference.get_model(student_name)
    for p in teacher.parameters():
        p.requires_grad_(False)
    step = torch_reference.make_kd_step(teacher, student, jacobian=jacobian)
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 100, (batch,))
    count = sum(p.numel() for p in student.parameters())
    return (lambda: step(x, y)), count


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", default="resnet32x4-resnet8x4,vgg9-vgg4")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--bf16", action="store_true",
                        help="also time kdjax's step with compute_dtype='bfloat16' (bf16 / float32 per pair)")
    args = parser.parse_args()
    import torch  # before TensorFlow (kdjax's data layer): the other order crashes some wheel pairs
    print(f"KD train step, batch {args.batch}, 32x32, float32; {setup_line()}; median of {args.repeats} steps")
    ratios = []
    for pair in args.pairs.split(","):
        t_name, s_name = pair.split("-")
        run_jax, n_jax, _ = kdjax_step(t_name, s_name, args.batch)
        run_torch, n_torch = torch_step(t_name, s_name, args.batch)
        if n_jax != n_torch:
            raise SystemExit(f"{pair}: student parameter counts differ (kdjax {n_jax}, torch {n_torch})")
        fns = [run_jax, run_torch] + ([kdjax_step(t_name, s_name, args.batch, dtype="bfloat16")[0]] if args.bf16
                                      else [])
        t_jax, t_torch, *t_bf16 = time_interleaved(fns, args.repeats)
        ratios.append(t_jax / t_torch)
        print(f"{pair:<24} kdjax {1000 * t_jax:8.1f} ms   torch {1000 * t_torch:8.1f} ms   "
              f"kdjax/torch {t_jax / t_torch:.2f}"
              + (f"   kdjax bf16 {1000 * t_bf16[0]:8.1f} ms (bf16/float32 {t_bf16[0] / t_jax:.2f})" if t_bf16 else ""))
    print(f"ratio kdjax/reference: {max(ratios):.2f}")


if __name__ == "__main__":
    main()
