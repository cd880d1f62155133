"""The generic training loop: one stage of a recipe (a teacher, a distilled student, a baseline).

Per stage, `<workdir>/<stage>/` holds `checkpoints/`, TensorBoard events, `metrics.jsonl`, `results.json` and, for
distillation stages, `teacher.json` (the teacher's checkpoint and its measured accuracy).
Resume: when the stage's checkpoint directory holds a checkpoint, the state, the data position (a function of the
step) and the best-so-far record are restored, so the run continues exactly as if it had not stopped.
"""
import json
import math
import os
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np
from clu import periodic_actions

from kdjax import data as data_lib
from kdjax import models, parallel
from kdjax.ops import xla_cpu_options
from kdjax.train import checkpoint as ckpt_lib
from kdjax.train import logging as log_lib
from kdjax.train import optim, recipe, step as step_lib


class NonFiniteLossError(FloatingPointError):
    pass


class _PreemptionFlag:
    """SIGTERM (preemptible VMs send it before shutdown) -> finish the step, checkpoint, return 'preempted'.

    Multi-host: the save is collective, so every process must see the signal at the same step; preemption of a TPU
    pod or a Slurm job signals all of them. A single stray SIGTERM to one host would stall the others at the save.
    """

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        signal.signal(signal.SIGTERM, self._previous)


def stage_dir(workdir: str, stage: str) -> str:
    return os.path.join(workdir, stage)


def make_pipelines(config, spec: recipe.StageSpec):
    d = spec.data
    source = data_lib.get_source(d["name"], data_dir=d.get("data_dir"))
    mean, std = data_lib.normalization_for(d["name"], d.get("normalization"))
    subset = None
    if d.get("per_class"):
        seed = d.get("subset_seed")
        subset = data_lib.few_shot_indices(source.labels(d.get("train_split", "train")), int(d["per_class"]),
                                           int(config.seed if seed is None else seed))
    common = dict(source=source, seed=int(config.seed), image_size=d.get("image_size"), mean=mean, std=std,
                  process_index=jax.process_index(), process_count=jax.process_count())
    train = data_lib.Pipeline(split=d.get("train_split", "train"), global_batch_size=spec.batch_size,
                              augment=tuple(d.get("augment") or ()), crop_padding=int(d.get("crop_padding", 4)),
                              strong_augment=tuple(d.get("strong_augment") or ()),
                              contrast_negatives=int(d.get("contrast_negatives") or 0),
                              subset=subset, **common)
    evaluation = data_lib.Pipeline(split=d.get("eval_split", "test"), global_batch_size=int(config.eval_batch_size),
                                   **common)
    return source, train, evaluation


def _build_model(model_cfg: dict, num_classes: int):
    """`model.num_classes` overrides the dataset's (an ImageNet teacher on a 67-class dataset)."""
    kw = {k: v for k, v in model_cfg.items() if k != "name"}
    kw.setdefault("num_classes", num_classes)
    return models.get_model(model_cfg["name"], **kw)


def load_teacher(config, spec, workdir, num_classes, mesh, eval_pipeline):
    """Loads the frozen teacher (params + BN statistics only), measures its accuracy, records both."""
    if spec.teacher.get("stage"):
        directory = os.path.join(stage_dir(workdir, spec.teacher["stage"]), "checkpoints")
    else:
        directory = spec.teacher["checkpoint"]
    if not os.path.isdir(directory) or ckpt_lib.Checkpointer(directory).latest_step() is None:
        hint = (f"run `--stage={spec.teacher['stage']}` first" if spec.teacher.get("stage")
                else spec.teacher.get("how_to_get") or "pass the `checkpoints` directory of a kdjax teacher stage")
        raise FileNotFoundError(f"stage {spec.name!r}: no teacher checkpoint in {directory}; {hint}")
    checkpointer = ckpt_lib.Checkpointer(directory)
    tree, _, step = checkpointer.restore_raw()
    checkpointer.close()
    teacher = _build_model(recipe.teacher_model_cfg(config, spec), num_classes)
    variables = {"params": tree["params"]["model"], "batch_stats": tree["batch_stats"]}
    variables = jax.device_put(variables, parallel.replicated(mesh))
    accuracy = None  # a teacher of other classes (ImageNet weights for transfer) has no accuracy on this data
    if teacher.num_classes == num_classes:
        eval_fn = jax.jit(lambda v, b: step_lib.eval_step(teacher, v, b), out_shardings=parallel.replicated(mesh),
                          compiler_options=xla_cpu_options.compiler_options(mesh))
        accuracy = step_lib.evaluate_model(eval_fn, variables, eval_pipeline, mesh)
    record = {"checkpoint": os.path.abspath(directory), "step": int(step), "model": recipe.teacher_model_cfg(config, spec),
              "eval": accuracy}
    return teacher, variables, record


def initialise_from(state, directory: str):
    """Copies student parameters and BN statistics of matching path and shape from a kdjax checkpoint (pretrained
    initialisation, e.g. the ImageNet "oracle" of paper 004 Table 3); a new head of another size stays random."""
    checkpointer = ckpt_lib.Checkpointer(directory)
    tree, _, _ = checkpointer.restore_raw()
    checkpointer.close()
    source = {"params": tree["params"]["model"], "batch_stats": tree["batch_stats"]}
    copied, kept = [], []

    def pick(path, leaf):
        node = source
        for key in path:
            node = node.get(key.key) if isinstance(node, dict) else None
            if node is None:
                break
        if node is not None and np.shape(node) == leaf.shape:
            copied.append(path)
            return jnp.asarray(node, leaf.dtype)
        kept.append(jax.tree_util.keystr(path))
        return leaf

    target = {"params": state.params["model"], "batch_stats": state.batch_stats}
    loaded = jax.tree_util.tree_map_with_path(pick, jax.device_get(target))
    if not copied:
        raise ValueError(f"init_from={directory}: no parameter matches this model")
    if jax.process_index() == 0:
        print(f"initialised {len(copied)} arrays from {directory}; kept random: {kept or 'none'}", flush=True)
    params = dict(state.params, model=loaded["params"])
    return state.replace(params=params, batch_stats=loaded["batch_stats"])


class _closing:
    def __init__(self, checkpointer):
        self.checkpointer = checkpointer

    def __enter__(self):
        return self.checkpointer

    def __exit__(self, *exc):
        self.checkpointer.close()  # waits for pending saves


def _write_json(path, obj):
    if jax.process_index() == 0:
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2)
        os.replace(tmp, path)


def _check_finite(window, first_step):
    for offset, m in enumerate(window):
        losses = {k: float(v) for k, v in m.items() if k.startswith("loss/")}
        if not all(math.isfinite(v) for v in losses.values()):
            terms = ", ".join(f"{k.split('/', 1)[1]}={v}" for k, v in sorted(losses.items()))
            raise NonFiniteLossError(f"non-finite loss at step {first_step + offset + 1}: {terms}")


def _stage_identity(config, spec) -> dict:
    """What must not change between a checkpoint and the run that resumes it (epochs may, to extend a run)."""
    return json.loads(json.dumps({"model": spec.model, "losses": recipe._to_dict(config.stages[spec.name].losses),
                                  "data": spec.data, "batch_size": spec.batch_size, "seed": int(config.seed),
                                  "optimizer": spec.optimizer.to_dict()}, default=str))


def _check_same_identity(stage, directory, saved, current):
    changed = sorted(k for k in current if saved.get(k) != current[k])
    if changed:
        details = "; ".join(f"{k}: checkpoint {saved.get(k)} vs config {current[k]}" for k in changed)
        raise RuntimeError(f"stage {stage!r}: {directory} holds a checkpoint of a different config ({details}). "
                           "Use a new --workdir, or restore the original settings to resume.")


def _summarise(window) -> dict:
    return {k: float(np.mean([m[k] for m in window])) for k in window[0]}


def run_stage(config, stage: str, workdir: str, *, mesh=None, on_step=None) -> dict:
    """Trains one stage to completion (or until SIGTERM); returns its results record.

    Args:
      config: the experiment ConfigDict.
      stage: a name in `config.stages`.
      workdir: experiment directory; the stage writes under `<workdir>/<stage>/`.
      mesh: device mesh (default: all devices on one 'data' axis).
      on_step: optional callback `on_step(step)` after every step (tests use it to send SIGTERM).
    Returns:
      dict with 'status' ('done' or 'preempted'), 'step', last and best eval accuracy.
    """
    mesh = mesh or parallel.make_mesh()
    spec = recipe.resolve_stage(config, stage)
    out_dir = stage_dir(workdir, stage)
    os.makedirs(out_dir, exist_ok=True)
    source, train_data, eval_data = make_pipelines(config, spec)
    spe = train_data.steps_per_epoch
    total_steps = int(spec.num_steps) if spec.num_steps else int(round(spec.num_epochs * spe))
    model = _build_model(spec.model, source.num_classes)

    teacher, teacher_vars = None, {}
    if spec.teacher is not None:
        teacher, teacher_vars, record = load_teacher(config, spec, workdir, source.num_classes, mesh, eval_data)
        _write_json(os.path.join(out_dir, "teacher.json"), record)
        if jax.process_index() == 0:
            accuracy = f"eval top-1 {record['eval']['accuracy']:.4f}" if record["eval"] else "other classes"
            print(f"[{stage}] teacher {record['model']['name']} from {record['checkpoint']} (step {record['step']}): "
                  f"{accuracy}", flush=True)
    networks = step_lib.Networks(model, teacher)
    schedule = optim.make_schedule(spec.schedule, steps_per_epoch=spe, total_steps=total_steps)
    tx = optim.make_optimizer(spec.optimizer, schedule)
    train_step, eval_fn = step_lib.compile_steps(mesh, networks=networks, weighted_terms=spec.weighted_terms,
                                                 schedule=schedule, steps_per_epoch=spe,
                                                 dataset_size=train_data.split_size)

    repl = parallel.replicated(mesh)
    example = parallel.global_batch(next(train_data.train_batches(0)), mesh)
    init = jax.jit(lambda rng, b, tv: step_lib.init_state(networks, spec.weighted_terms, tx, rng, b, tv,
                                                          train_data.split_size), out_shardings=repl,
                   compiler_options=xla_cpu_options.compiler_options(mesh, run_once=True))
    state = init(jax.random.key(int(config.seed)), example, teacher_vars)
    if spec.init_from:
        state = jax.device_put(initialise_from(state, spec.init_from), repl)
        state = state.replace(opt_state=jax.jit(tx.init, out_shardings=repl)(state.params))

    ckpt_cfg = config.checkpoint
    checkpointer = ckpt_lib.Checkpointer(os.path.join(out_dir, "checkpoints"), max_to_keep=int(ckpt_cfg.max_to_keep))
    save_every = int(ckpt_cfg.every_steps)
    identity = _stage_identity(config, spec)
    meta = {"best_accuracy": -1.0, "best_step": 0, "wall_time": 0.0, "run_id": f"{stage}-{int(time.time())}",
            "stage_identity": identity}
    start = checkpointer.latest_step()
    if start is not None:
        abstract = ckpt_lib.abstract_with_sharding(jax.eval_shape(lambda: state.checkpoint_tree()), repl)
        try:
            tree, meta = checkpointer.restore(start, abstract)
        except ValueError as e:
            raise RuntimeError(f"stage {stage!r}: the checkpoint in {checkpointer.directory} does not fit this "
                               f"config ({e}); use a new --workdir") from e
        _check_same_identity(stage, checkpointer.directory, meta.get("stage_identity", {}), identity)
        if start > total_steps:
            raise RuntimeError(f"stage {stage!r}: the checkpoint in {checkpointer.directory} is at step {start}, "
                               f"beyond this config's {total_steps} steps; use a new --workdir")
        state = state.replace_from_checkpoint(tree)
        if jax.process_index() == 0:
            print(f"[{stage}] resumed from step {start} (epoch {start / spe:.2f}) in {checkpointer.directory}",
                  flush=True)
    start = start or 0

    writer = log_lib.create_writer(out_dir)
    if start == 0:
        writer.write_hparams({"stage": stage, "model": spec.model["name"], "total_steps": total_steps,
                              "steps_per_epoch": spe})
    progress = log_lib.ConsoleProgress(stage, total_steps, spe, start)
    report = periodic_actions.ReportProgress(num_train_steps=total_steps, writer=writer,
                                             every_steps=int(config.log_every_steps))
    eval_every = max(1, int(round(float(config.eval_every_epochs) * spe)))
    t_start = time.time() - float(meta["wall_time"])

    def save(step):
        meta.update(wall_time=time.time() - t_start, data_epoch=step // spe, data_batch_in_epoch=step % spe)
        checkpointer.save(step, state.checkpoint_tree(), dict(meta), force=True)

    def evaluate(step):
        variables = {"params": state.params["model"], "batch_stats": state.batch_stats}
        result = step_lib.evaluate_model(eval_fn, variables, eval_data, mesh)
        if result["accuracy"] > meta["best_accuracy"]:
            meta.update(best_accuracy=result["accuracy"], best_step=step)
        scalars = {f"eval/{k}": v for k, v in result.items()}
        scalars.update({"eval/best_accuracy": meta["best_accuracy"]})
        for sigma in spec.noise_sigmas:
            if sigma:
                noisy = step_lib.evaluate_model(eval_fn, variables, eval_data, mesh, noise_std=sigma,
                                                seed=int(config.seed))
                result[f"accuracy_noise_{sigma:g}"] = noisy["accuracy"]
                scalars[f"eval/accuracy_noise_{sigma:g}"] = noisy["accuracy"]
        writer.write_scalars(step, scalars)
        if jax.process_index() == 0:
            print(f"[{stage}] step {step}: eval top-1 {result['accuracy']:.4f} (best {meta['best_accuracy']:.4f} at "
                  f"step {meta['best_step']}), top-5 {result['top5']:.4f}, loss {result['loss']:.4f}", flush=True)
        return result

    status, last_eval, window = "done", None, []
    batches = train_data.train_batches(start)
    # finally: an error (e.g. a non-finite loss) must not abandon the asynchronous save of the last good step
    with _PreemptionFlag() as preemption, _closing(checkpointer):
        step = start
        while step < total_steps:
            batch = parallel.global_batch(next(batches), mesh)
            state, measurements = train_step(state, teacher_vars, batch)
            window.append(measurements)
            step += 1
            report(step)
            if on_step is not None:
                on_step(step)
            is_last = step == total_steps
            is_save_step = step % save_every == 0 or is_last
            if step % int(config.log_every_steps) == 0 or is_save_step or preemption.requested:
                window = jax.device_get(window)
                _check_finite(window, step - len(window))  # before any save: a bad state is never written
                scalars = _summarise(window)
                writer.write_scalars(step, scalars)
                progress.print(step, scalars)
                window = []
            if step % eval_every == 0 or is_last:
                last_eval = evaluate(step)
            if preemption.requested:
                save(step)
                status = "preempted"
                if jax.process_index() == 0:
                    print(f"[{stage}] SIGTERM: checkpointed step {step}, exiting", flush=True)
                break
            if is_save_step:
                save(step)
    writer.flush()
    if last_eval is None and status == "done":
        last_eval = evaluate(step)
    results = {"stage": stage, "status": status, "step": step, "total_steps": total_steps,
               "model": spec.model["name"], "best_accuracy": meta["best_accuracy"], "best_step": meta["best_step"],
               "wall_time": time.time() - t_start}
    if last_eval is not None:
        results.update({f"final_{k}": v for k, v in last_eval.items()})
    if status == "done":
        _write_json(os.path.join(out_dir, "results.json"), results)
    writer.close()
    return results
