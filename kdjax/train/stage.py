"""One stage of a recipe (a teacher, a distilled student, a baseline), as named steps:

    build -> load_teacher -> init_or_resume -> compile -> train (evaluate, save) -> finish

`Stage.abstract()` runs the build steps without data reads or compilation (models and loss terms through
`jax.eval_shape`): validation uses it for every stage before any trains.

Per stage, `<workdir>/<stage>/` holds `checkpoints/` (the last few, for resuming), `checkpoints_best/` (the state at
the best value of the headline metric), TensorBoard events, `metrics.jsonl`, `results.json` and, for distillation
stages, `teacher.json` (the teacher's checkpoint, fingerprint and measured metrics).
Resume: when `checkpoints/` holds a checkpoint, the state, the data position (a function of the step) and the best
metrics so far are restored, so the run continues exactly as if it had not stopped. A checkpoint written under a
config with another trajectory (model, losses, data, optimiser, schedule, teacher, init, seed, steps) is refused;
`config.allow_extend=True` lets a finished or running stage continue to a larger step count, and says so.
"""
import dataclasses
import json
import math
import os
import re
import time

import jax
import jax.numpy as jnp
import numpy as np
from clu import periodic_actions

from kdjax import data as data_lib
from kdjax import evaluators as evaluators_lib
from kdjax import models, ops, parallel, provenance, teachers
from kdjax.train import checkpoint as ckpt_lib
from kdjax.train import logging as log_lib
from kdjax.train import optim, preemption, recipe
from kdjax.train import step as step_lib


class NonFiniteError(FloatingPointError):
    pass


def write_json(path, obj):
    """Atomic (write then rename), process 0 only."""
    if jax.process_index() == 0:
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, default=str)
        os.replace(tmp, path)


def _has_checkpoint(directory: str) -> bool:
    if not os.path.isdir(directory):
        return False
    checkpointer = ckpt_lib.Checkpointer(directory)
    try:
        return checkpointer.latest_step() is not None
    finally:
        checkpointer.close()


def build_model(model_cfg: dict, num_classes: int):
    """`model.num_classes` overrides the dataset's (an ImageNet teacher on a 67-class dataset)."""
    kw = {k: v for k, v in model_cfg.items() if k != "name"}
    kw.setdefault("num_classes", num_classes)
    return models.get_model(model_cfg["name"], **kw)


def identity(config, stage_spec: recipe.StageSpec, total_steps: int) -> dict:
    """Everything that determines a stage's trajectory; a resumed run must match it."""
    teacher = None
    if stage_spec.teacher:
        teacher = {k: stage_spec.teacher.get(k) for k in ("stage", "checkpoint", "pretrained", "model")}
    record = {"model": stage_spec.model, "losses": stage_spec.losses, "data": stage_spec.data, "batch_size": stage_spec.batch_size,
              "seed": int(config.seed), "optimizer": stage_spec.optimizer, "schedule": stage_spec.schedule, "teacher": teacher,
              "init_from": stage_spec.init_from, "init_allow_random": list(stage_spec.init_allow_random),
              "task": stage_spec.task.name, "total_steps": int(total_steps)}
    return json.loads(json.dumps(record, default=str))


def check_identity(stage, where, saved: dict, current: dict, *, allow_extend: bool) -> bool:
    """Raises on a changed trajectory; returns True when only total_steps changed and extension is allowed."""
    changed = sorted(k for k in current if saved.get(k) != current[k])
    if changed == ["total_steps"] and allow_extend:
        return True
    if changed:
        details = "; ".join(f"{k}: checkpoint {saved.get(k)} vs config {current[k]}" for k in changed)
        hint = (" To train a finished or running stage for more steps, set --config.allow_extend=True."
                if "total_steps" in changed else "")
        raise RuntimeError(f"stage {stage!r}: {where} holds a run of a different config ({details}). Use a new "
                           f"--workdir, or restore the original settings to resume.{hint}")
    return False


@dataclasses.dataclass
class _Tracker:
    """Last and best value of every evaluation metric (best in each metric's own direction)."""
    lower_is_better: set
    best: dict = dataclasses.field(default_factory=dict)   # metric -> {'value', 'step'}
    last: dict = dataclasses.field(default_factory=dict)   # metric -> value, plus 'step'

    def update(self, step: int, values: dict) -> set:
        improved = set()
        for k, v in values.items():
            old = self.best.get(k)
            lower = k.split("/", 1)[-1] in self.lower_is_better
            if old is None or (v < old["value"] if lower else v > old["value"]):
                self.best[k] = {"value": v, "step": step}
                improved.add(k)
        self.last = dict(values, step=step)
        return improved


class Stage:
    def __init__(self, config, spec: recipe.StageSpec, workdir: str | None, *, mesh=None, on_event=None):
        self.config, self.spec = config, spec
        self.mesh = mesh or parallel.make_mesh()
        self.dir = os.path.join(workdir, spec.name) if workdir else None
        self.workdir = workdir
        self._on_event = on_event or (lambda event, **info: None)

    def on_event(self, event, **info):
        self._on_event(event, stage=self.spec.name, **info)

    # ---- build ------------------------------------------------------------------------------------------------------
    def build(self):
        config = self.config
        for name, size in (("batch_size", self.spec.batch_size), ("eval_batch_size", int(config.eval_batch_size))):
            if size % jax.device_count():
                raise recipe.ConfigError(f"{name}={size} is not divisible by the device count {jax.device_count()}; "
                                         f"choose a multiple of {jax.device_count()}")
        try:
            self.data = data_lib.build(self.spec.data, seed=int(config.seed), batch_size=self.spec.batch_size,
                                       eval_batch_size=int(config.eval_batch_size),
                                       process_index=jax.process_index(), process_count=jax.process_count())
        except (ValueError, FileNotFoundError) as e:
            raise recipe.ConfigError(f"stages.{self.spec.name}.data: {e}") from e
        if self.data.label_kind != self.spec.task.label_kind:
            raise recipe.ConfigError(f"stages.{self.spec.name}: task {self.spec.task.name!r} needs {self.spec.task.label_kind} "
                                     f"labels; {self.data.train_split.name} has {self.data.label_kind} labels")
        self.steps_per_epoch = self.data.train.steps_per_epoch
        self.total_steps = int(self.spec.num_steps) if self.spec.num_steps else int(round(self.spec.num_epochs * self.steps_per_epoch))
        num_classes = self.data.num_classes
        try:
            self.model = build_model(self.spec.model, num_classes)
        except ValueError as e:
            raise recipe.ConfigError(f"stages.{self.spec.name}.model: {e}") from e
        if self.data.label_kind == "multi_hot" and self.model.num_classes != num_classes:
            raise recipe.ConfigError(f"stages.{self.spec.name}.model: num_classes={self.model.num_classes}, but "
                                     f"{self.data.train_split.name} has {num_classes} labels; a multi-label model has "
                                     "one output per label (remove model.num_classes)")
        try:
            self.teacher_model = build_model(self.spec.teacher["model"], num_classes) if self.spec.teacher else None
        except ValueError as e:
            raise recipe.ConfigError(f"stages.{self.spec.name}.teacher.model: {e}") from e
        self.networks = step_lib.Networks(self.model, self.teacher_model)
        self.tx, self.schedules = optim.make_optimizer(self.spec.optimizer, self.spec.schedule,
                                                       steps_per_epoch=self.steps_per_epoch,
                                                       total_steps=self.total_steps)
        spec_local = self.data.train.element_spec()
        scale = jax.process_count()
        self.batch_spec = {k: jax.ShapeDtypeStruct((shape[0] * scale,) + shape[1:], dtype,
                                                   sharding=parallel.batch_sharding(self.mesh))
                           for k, (shape, dtype) in spec_local.items()}
        self.identity = identity(config, self.spec, self.total_steps)
        self.dataset_size = len(self.data.train_split)

    def _abstract_teacher_vars(self):
        if self.teacher_model is None:
            return {}
        image = self.batch_spec["image"]
        return jax.eval_shape(lambda: self.teacher_model.init(jax.random.key(0), jnp.zeros(image.shape, image.dtype),
                                                              train=False))

    def _init_fn(self, teacher_vars, batch):
        return lambda rng: step_lib.init_state(self.networks, self.spec.weighted_terms, self.tx, rng, batch,
                                               teacher_vars, self.dataset_size, self.data.num_classes)

    def abstract(self):
        """The build steps without data reads or compilation: validates the stage (models, loss terms, parameter
        groups, teacher source) and returns the abstract train state."""
        self.build()
        if self.spec.init_from and not _has_checkpoint(self.spec.init_from):
            raise recipe.ConfigError(f"stages.{self.spec.name}.init_from={self.spec.init_from!r}: no kdjax checkpoint "
                                     "there (the `checkpoints` directory of a kdjax stage)")
        if self.spec.teacher and self.spec.teacher.get("pretrained"):
            teachers.resolve_path(self.spec.teacher["pretrained"], self.spec.teacher["path"])
        if self.spec.teacher and self.spec.teacher.get("checkpoint"):
            directory = self.spec.teacher["checkpoint"]
            if not _has_checkpoint(directory):
                raise FileNotFoundError(f"stage {self.spec.name!r}: no teacher checkpoint in {directory}; "
                                        f"{self.spec.teacher.get('how_to_get') or 'pass the checkpoints directory of a kdjax teacher stage'}")
        zeros = {k: jnp.zeros(v.shape, v.dtype) for k, v in self.batch_spec.items()}
        teacher_vars = self._abstract_teacher_vars()
        try:
            state = jax.eval_shape(lambda tv, b: self._init_fn(tv, b)(jax.random.key(0)), teacher_vars, zeros)
        except (ValueError, TypeError, KeyError, IndexError) as e:
            raise recipe.ConfigError(f"stages.{self.spec.name}: building the networks and loss terms failed: "
                                     f"{type(e).__name__}: {e}") from e
        try:
            optim.check_groups_match(state.params, self.spec.optimizer)
        except ValueError as e:
            raise recipe.ConfigError(f"stages.{self.spec.name}.{e}") from e
        return state

    # ---- teacher ----------------------------------------------------------------------------------------------------
    def teacher_directory(self) -> str:
        if self.spec.teacher.get("stage"):
            return os.path.join(self.workdir, self.spec.teacher["stage"], "checkpoints")
        return self.spec.teacher["checkpoint"]

    def _teacher_variables(self):
        """(variables, record) of the configured teacher: a published checkpoint or a kdjax checkpoint."""
        teacher = self.spec.teacher
        if teacher.get("pretrained"):
            variables, record = teachers.load(teacher["pretrained"], teacher["path"],
                                              num_classes=self.teacher_model.num_classes,
                                              expected_sha256=teacher.get("sha256"))
            return variables, dict(record, checkpoint=record["file"], step=None)
        directory = self.teacher_directory()
        if not _has_checkpoint(directory):
            hint = (f"run `--stage={teacher['stage']}` first" if teacher.get("stage")
                    else teacher.get("how_to_get") or "pass the `checkpoints` directory of a kdjax teacher stage")
            raise FileNotFoundError(f"stage {self.spec.name!r}: no teacher checkpoint in {directory}; {hint}")
        checkpointer = ckpt_lib.Checkpointer(directory)
        tree, _, step = checkpointer.restore_raw()
        checkpointer.close()
        variables = {"params": tree["params"]["model"], "batch_stats": tree["batch_stats"]}
        return variables, {"checkpoint": os.path.abspath(directory), "step": int(step)}

    def load_teacher(self):
        """Loads the frozen teacher (params + BN statistics only), measures it once (teacher.json keeps the result
        for relaunches with the same weights), and checks a published teacher against its published top-1."""
        self.teacher_vars, self.teacher_record = {}, None
        if self.teacher_model is None:
            return
        variables, record = self._teacher_variables()
        expected = self._abstract_teacher_vars()
        shapes = lambda t: jax.tree.map(np.shape, t)  # noqa: E731
        if jax.tree.structure(expected) != jax.tree.structure(variables) or shapes(expected) != shapes(variables):
            raise RuntimeError(f"stage {self.spec.name!r}: the teacher checkpoint in {record['checkpoint']} does not "
                               f"fit teacher model {self.spec.teacher['model']}")
        self.teacher_vars = jax.device_put(variables, parallel.replicated(self.mesh))
        self.teacher_record = dict(record, model=self.spec.teacher["model"],
                                   fingerprint=ckpt_lib.fingerprint(variables), eval=None)
        path = os.path.join(self.dir, "teacher.json")
        earlier = json.load(open(path, encoding="utf-8")) if os.path.exists(path) else {}
        if earlier.get("fingerprint") == self.teacher_record["fingerprint"] and earlier.get("eval") is not None:
            self.teacher_record["eval"] = earlier["eval"]
        # a teacher of other classes (ImageNet weights for transfer) has no metrics on this data
        elif self.teacher_model.num_classes == self.data.num_classes:
            self.teacher_record["eval"] = {f"{name}/{k}": v for name, ev in self._evaluators().items()
                                           for k, v in ev.run(self.teacher_model.apply, self.teacher_vars).items()}
        warning = None
        if record.get("pretrained") and self.teacher_record["eval"]:
            top1 = self.teacher_record["eval"].get(self.spec.task.headline)
            self.teacher_record["measured_top1"] = None if top1 is None else 100.0 * top1
            warning = None if top1 is None else teachers.accuracy_warning(record["pretrained"], 100.0 * top1)
            self.teacher_record["accuracy_warning"] = warning
        write_json(path, self.teacher_record)
        source = record.get("pretrained") or f"{record['checkpoint']} (step {record['step']})"
        self._print(f"teacher {self.teacher_record['model']['name']} from {source}: "
                    + (", ".join(f"{k} {v:.4f}" for k, v in self.teacher_record["eval"].items())
                       if self.teacher_record["eval"] else "other classes"))
        if warning:
            self._print("\n" + "!" * 100 + f"\n{warning}\n" + "!" * 100)

    # ---- state ------------------------------------------------------------------------------------------------------
    def _evaluators(self):
        if not hasattr(self, "_evaluator_objs"):
            self._evaluator_objs = {name: evaluators_lib.build(name, entry, mesh=self.mesh, data=self.data)
                                    for name, entry in self.spec.evals.items()}
        return self._evaluator_objs

    def initialise_from(self, state):
        """Copies student parameters and BN statistics of matching path and shape from a kdjax checkpoint
        (pretrained initialisation). Every array left at its random init must match `init_allow_random` (regexes
        on paths such as 'params/Dense_0/kernel'): a new head of another size is expected, a silently skipped
        backbone layer is not."""
        directory = self.spec.init_from
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
            kept.append(optim.path_string(path))
            return leaf

        target = {"params": state.params["model"], "batch_stats": state.batch_stats}
        loaded = jax.tree_util.tree_map_with_path(pick, jax.device_get(target))
        allowed = [re.compile(p) for p in self.spec.init_allow_random]
        unexpected = [k for k in kept if not any(p.search(k) for p in allowed)]
        if not copied or unexpected:
            raise RuntimeError(f"stage {self.spec.name!r}: init_from={directory}: "
                               + ("no array matches this model" if not copied else
                                  f"{len(unexpected)} arrays have no counterpart of the same shape: {unexpected[:8]}")
                               + "; list the paths that may stay randomly initialised in init_allow_random "
                                 f"(now {list(self.spec.init_allow_random)})")
        self._print(f"initialised {len(copied)} arrays from {directory}; random as allowed: {kept or 'none'}")
        return state.replace(params=dict(state.params, model=loaded["params"]), batch_stats=loaded["batch_stats"])

    def init_or_resume(self):
        repl = parallel.replicated(self.mesh)
        zeros = {k: jnp.zeros(v.shape, v.dtype) for k, v in self.batch_spec.items()}
        init = ops.jit(lambda rng, tv, b: self._init_fn(tv, b)(rng), mesh=self.mesh, run_once=True,
                       out_shardings=repl)
        state = init(jax.random.key(int(self.config.seed)), self.teacher_vars, zeros)
        optim.check_groups_match(state.params, self.spec.optimizer)
        if self.spec.init_from:
            state = jax.device_put(self.initialise_from(state), repl)
            state = state.replace(opt_state=jax.jit(self.tx.init, out_shardings=repl)(state.params))
        ckpt = self.config.checkpoint
        self.checkpointer = ckpt_lib.Checkpointer(os.path.join(self.dir, "checkpoints"),
                                                  max_to_keep=int(ckpt.max_to_keep))
        self.best_checkpointer = ckpt_lib.Checkpointer(os.path.join(self.dir, "checkpoints_best"), max_to_keep=1)
        fingerprint = self.teacher_record["fingerprint"] if self.teacher_record else None
        self.meta = {"best": {}, "last_eval": {}, "wall_time": 0.0, "run_id": f"{self.spec.name}-{int(time.time())}",
                     "identity": self.identity, "teacher_fingerprint": fingerprint, "extensions": []}
        start = self.checkpointer.latest_step()
        if start is not None:
            abstract = ckpt_lib.abstract_with_sharding(jax.eval_shape(lambda: state.checkpoint_tree()), repl)
            try:
                tree, meta = self.checkpointer.restore(start, abstract)
            except ValueError as e:
                raise RuntimeError(f"stage {self.spec.name!r}: the checkpoint in {self.checkpointer.directory} does "
                                   f"not fit this config ({e}); use a new --workdir") from e
            extended = check_identity(self.spec.name, self.checkpointer.directory, meta.get("identity", {}),
                                      self.identity, allow_extend=bool(self.config.get("allow_extend")))
            if meta.get("teacher_fingerprint") != fingerprint:
                raise RuntimeError(f"stage {self.spec.name!r}: the teacher's weights changed since the checkpoint in "
                                   f"{self.checkpointer.directory} was written (fingerprint "
                                   f"{meta.get('teacher_fingerprint')} vs {fingerprint}); use a new --workdir")
            if start > self.total_steps:
                raise RuntimeError(f"stage {self.spec.name!r}: the checkpoint in {self.checkpointer.directory} is at "
                                   f"step {start}, beyond this config's {self.total_steps} steps; use a new --workdir")
            if extended:
                meta["extensions"] = meta.get("extensions", []) + [
                    {"at_step": start, "from_steps": meta["identity"]["total_steps"], "to_steps": self.total_steps,
                     "time": time.time()}]
                self._print(f"extending the run from {meta['identity']['total_steps']} to {self.total_steps} steps "
                            "(allow_extend; schedules follow the new step count from here on)")
            self.meta.update({k: meta[k] for k in ("best", "last_eval", "wall_time", "run_id", "extensions")
                              if k in meta})
            state = state.replace_from_checkpoint(tree)
            self._print(f"resumed from step {start} (epoch {start / self.steps_per_epoch:.2f}) in "
                        f"{self.checkpointer.directory}")
        self.state, self.start_step = state, start or 0

    def compile(self):
        static = dict(networks=self.networks, weighted_terms=tuple(self.spec.weighted_terms), task=self.spec.task,
                      schedules=self.schedules, steps_per_epoch=self.steps_per_epoch, dataset_size=self.dataset_size,
                      num_classes=self.data.num_classes)
        jitted = step_lib.jit_train_step(self.mesh, **static)
        self.train_step = jitted.lower(self.state, self.teacher_vars, self.batch_spec).compile()

    # ---- train ------------------------------------------------------------------------------------------------------
    def _print(self, text):
        if jax.process_index() == 0:
            print(f"[{self.spec.name}] {text}", flush=True)

    def _save(self, step):
        self.meta.update(wall_time=time.time() - self._t_start, data_step=step)
        self.checkpointer.save(step, self.state.checkpoint_tree(), dict(self.meta))

    def _flush(self, window, step):
        """Writes the measurements since the last flush; a non-finite loss, gradient or parameter stops the run
        before anything is saved, so a bad state is never written."""
        window = jax.device_get(window)
        first = step - len(window) + 1
        for offset, m in enumerate(window):
            if m["train/finite"] < 1 or not all(math.isfinite(float(v)) for k, v in m.items() if k.startswith("loss/")):
                terms = ", ".join(f"{k.split('/', 1)[1]}={float(v)}" for k, v in sorted(m.items())
                                  if k.startswith("loss/"))
                raise NonFiniteError(f"non-finite values at step {first + offset}: {terms}; l2 of gradients "
                                     f"{float(m['train/l2_grads'])}, of updated parameters "
                                     f"{float(m['train/l2_params'])}. The last checkpoint is from before.")
        scalars = {k: float(np.mean([m[k] for m in window])) for k in window[0] if k != "train/finite"}
        self.writer.write_scalars(step, scalars)
        self.progress.print(step, scalars)

    def _evaluate(self, step, due):
        self.on_event("eval", step=step)
        variables = {"params": self.state.params["model"], "batch_stats": self.state.batch_stats}
        values = {}
        for name in due:
            values.update({f"{name}/{k}": v for k, v in self._evaluators()[name].run(self.model.apply,
                                                                                    variables).items()})
        improved = self.tracker.update(step, values)
        headline = self.spec.best_metric
        self.meta.update(best=self.tracker.best, last_eval=self.tracker.last)
        scalars = dict(values)
        scalars.update({f"{k}/best": v["value"] for k, v in self.tracker.best.items() if k in values})
        self.writer.write_scalars(step, scalars)
        if headline in improved:
            self.best_checkpointer.save(step, self.state.checkpoint_tree(), dict(self.meta, data_step=step))
        if headline in values:
            best = self.tracker.best[headline]
            others = ", ".join(f"{k} {v:.4f}" for k, v in values.items() if k != headline)
            self._print(f"step {step}: {headline} {values[headline]:.4f} (best {best['value']:.4f} at step "
                        f"{best['step']}){', ' + others if others else ''}")

    def train(self) -> str:
        config, spe = self.config, self.steps_per_epoch
        self.writer = log_lib.create_writer(self.dir)
        if self.start_step == 0:
            self.writer.write_hparams({"stage": self.spec.name, "model": self.spec.model["name"],
                                       "total_steps": self.total_steps, "steps_per_epoch": spe})
        for ext in self.meta["extensions"]:
            if ext["at_step"] == self.start_step:
                self.writer.write_scalars(self.start_step, {"run/extended_to_steps": ext["to_steps"]})
        self.progress = log_lib.ConsoleProgress(self.spec.name, self.total_steps, spe, self.start_step)
        report = periodic_actions.ReportProgress(num_train_steps=self.total_steps, writer=self.writer,
                                                 every_steps=int(config.log_every_steps))
        evaluators = self._evaluators()
        default_every = float(config.eval_every_epochs)
        eval_every = {name: max(1, int(round(float(entry.get("every_epochs", default_every)) * spe)))
                      for name, entry in self.spec.evals.items()}
        self.tracker = _Tracker({k for name, ev in evaluators.items() for k in ev.lower_is_better},
                                best=dict(self.meta["best"]), last=dict(self.meta["last_eval"]))
        self._t_start = time.time() - float(self.meta["wall_time"])
        save_every, log_every = int(config.checkpoint.every_steps), int(config.log_every_steps)
        step, window = self.start_step, []
        batches = self.data.train.batches(step)
        while step < self.total_steps:
            batch = parallel.global_batch(next(batches), self.mesh)
            self.state, measurements = self.train_step(self.state, self.teacher_vars, batch)
            window.append(measurements)
            step += 1
            report(step)
            self.on_event("step", step=step)
            stop = preemption.should_stop()
            is_last = step == self.total_steps
            due = [name for name, every in eval_every.items() if step % every == 0 or is_last]
            is_save = step % save_every == 0 or is_last
            if step % log_every == 0 or is_save or due or stop:
                self._flush(window, step)
                window = []
            if due:
                self._evaluate(step, due)
                stop = stop or preemption.should_stop()  # a SIGTERM during the evaluation
            if stop or is_save:
                self._save(step)
            if stop:
                self._print(f"SIGTERM: checkpointed step {step}, exiting")
                return "preempted"
        self.writer.flush()
        return "done"

    def finish(self, status: str) -> dict:
        step = self.checkpointer.latest_step() or 0
        results = {"stage": self.spec.name, "status": status, "step": step, "total_steps": self.total_steps,
                   "model": self.spec.model["name"], "headline": self.spec.best_metric,
                   "best_step": self.meta["best"].get(self.spec.best_metric, {}).get("step", 0),
                   "final": {k: v for k, v in self.meta["last_eval"].items() if k != "step"},
                   "best": self.meta["best"], "wall_time": time.time() - self._t_start,
                   "code": provenance.code_version(), "identity": self.identity}
        for k, v in results["final"].items():
            results[f"final_{k.removeprefix('eval/')}"] = v
        for k, v in self.meta["best"].items():
            results[f"best_{k.removeprefix('eval/')}"] = v["value"]
        if status == "done":
            write_json(os.path.join(self.dir, "results.json"), results)
        self.writer.close()
        return results

    # ---- all steps --------------------------------------------------------------------------------------------------
    def _close(self):
        for checkpointer in (getattr(self, "checkpointer", None), getattr(self, "best_checkpointer", None)):
            if checkpointer is not None:
                checkpointer.close()  # waits for pending saves

    def run(self) -> dict:
        """Trains the stage to completion (or until SIGTERM); returns its results record."""
        name = self.spec.name
        self.on_event("start")
        os.makedirs(self.dir, exist_ok=True)
        self.build()
        self.load_teacher()
        if preemption.should_stop():
            return {"stage": name, "status": "preempted", "step": None}
        try:  # an error (a non-finite step) must not abandon the asynchronous save of the last good step
            self.init_or_resume()
            self.compile()
            self.on_event("compiled")
            if preemption.should_stop():
                return {"stage": name, "status": "preempted", "step": self.start_step}
            status = self.train()
        finally:
            self._close()
        return self.finish(status)
