"""A student stage's frozen teacher: which one the config names, and loading it.

A `teacher` block names exactly one source:
- `stage='teacher'`: the checkpoint a stage of the same config wrote in the same workdir (it must run earlier);
- `checkpoint=DIR` with `model=dict(name=...)`: any kdjax `checkpoints` directory;
- `pretrained='mdistiller:resnet32x4'` with `path=...`: a published teacher (`kdjax.teachers`), converted at load.
At load, the weights must fit the teacher model; the teacher is measured once on the evaluation split (kept in
`teacher.json` for relaunches with the same weights), and a published teacher's measured top-1 is compared with the
published one. A teacher of other classes (ImageNet weights for a transfer student) has no metrics on this data.
"""
import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

from kdjax import parallel, schema, teachers
from kdjax.errors import BadFileError, ConfigError, MissingCheckpointError
from kdjax.train import checkpoint as ckpt_lib
from kdjax.train import results
from kdjax.train.logging import say

SOURCES = ("stage", "checkpoint", "pretrained")


@dataclasses.dataclass(frozen=True)
class LoadedTeacher:
    variables: dict             # Flax variables, replicated over the mesh ({} without a teacher)
    record: dict | None         # what teacher.json holds: source, step, fingerprint, measured metrics

    @property
    def fingerprint(self) -> str | None:
        return self.record["fingerprint"] if self.record else None


NO_TEACHER = LoadedTeacher({}, None)


def _published_model(block: schema.Teacher, where: str) -> dict:
    try:
        entry = teachers.get(block.pretrained)
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from e
    if not block.path:
        raise ConfigError(f"{where}: pretrained={block.pretrained!r} needs 'path', the checkpoint or the directory "
                          f"it was unpacked to; it comes from {teachers.RELEASES}")
    if block.model and block.model != dict(name=entry.arch):
        raise ConfigError(f"{where}.model={block.model} contradicts pretrained={block.pretrained!r} (a "
                          f"{entry.arch}); leave 'model' out")
    return dict(name=entry.arch)


def resolve_spec(block: schema.Teacher | None, *, stage: str, order: list[str], stages: dict) -> schema.Teacher | None:
    """The stage's teacher block checked, with its `model` filled in for stage and published teachers."""
    if block is None:
        return None
    where = f"stages.{stage}.teacher"
    sources = [k for k in SOURCES if getattr(block, k)]
    if len(sources) != 1:
        raise ConfigError(f"{where}: set exactly one of 'stage' (a stage of this config), 'checkpoint' (a kdjax "
                          "checkpoint directory, with 'model') or 'pretrained' (a published teacher such as "
                          f"'mdistiller:resnet32x4', with 'path'); got {sources or 'none'}")
    if (block.path or block.sha256) and not block.pretrained:
        raise ConfigError(f"{where}: 'path' and 'sha256' belong to a 'pretrained' teacher")
    if block.stage:
        if block.stage not in order or order.index(block.stage) >= order.index(stage):
            raise ConfigError(f"{where}.stage={block.stage!r} must be a stage that runs before {stage!r}; stage "
                              f"order: {order}")
        return dataclasses.replace(block, model=dict(stages[block.stage]["model"]))
    if block.pretrained:
        return dataclasses.replace(block, model=_published_model(block, where))
    if not block.model:
        raise ConfigError(f"{where}: a checkpoint teacher needs 'model' (e.g. dict(name='resnet32x4'))")
    return block


def directory(block: schema.Teacher, workdir: str) -> str:
    """The checkpoint directory of a stage or checkpoint teacher."""
    if block.stage:
        return os.path.join(results.stage_dir(workdir, block.stage), "checkpoints")
    return block.checkpoint


def _missing(block: schema.Teacher, stage: str, where: str) -> MissingCheckpointError:
    hint = (f"run `--stage={block.stage}` first" if block.stage
            else block.how_to_get or "pass the `checkpoints` directory of a kdjax teacher stage")
    return MissingCheckpointError(f"stage {stage!r}: no teacher checkpoint in {where}; {hint}")


def check_source(block: schema.Teacher | None, stage: str) -> None:
    """Before anything trains: a published teacher's file and a checkpoint teacher's directory exist (a stage
    teacher is trained by an earlier stage)."""
    if block is None:
        return
    if block.pretrained:
        teachers.resolve_path(block.pretrained, block.path)
    if block.checkpoint and not ckpt_lib.has_checkpoint(block.checkpoint):
        raise _missing(block, stage, block.checkpoint)


def read_variables(block: schema.Teacher, stage: str, workdir: str, num_classes: int) -> tuple[dict, dict]:
    """(variables, record) of the configured teacher: a published checkpoint or a kdjax checkpoint."""
    if block.pretrained:
        variables, record = teachers.load(block.pretrained, block.path, num_classes=num_classes,
                                          expected_sha256=block.sha256 or None)
        return variables, dict(record, checkpoint=record["file"], step=None)
    where = directory(block, workdir)
    if not ckpt_lib.has_checkpoint(where):
        raise _missing(block, stage, where)
    variables, step = ckpt_lib.load_model_variables(where)
    return variables, {"checkpoint": os.path.abspath(where), "step": step}


def abstract_variables(model, image: jax.ShapeDtypeStruct) -> dict:
    return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(image.shape, image.dtype), train=False))


def _check_fits(variables, expected, block, record):
    shapes = lambda t: jax.tree.map(np.shape, t)  # noqa: E731
    if jax.tree.structure(expected) != jax.tree.structure(variables) or shapes(expected) != shapes(variables):
        raise BadFileError(f"the teacher checkpoint in {record['checkpoint']} does not fit teacher model {block.model}")


def _measure(record: dict, earlier: dict, evaluate, measurable: bool):
    """The teacher's metrics: from an earlier teacher.json of the same weights, else measured (when its classes are
    the data's)."""
    if earlier.get("fingerprint") == record["fingerprint"] and earlier.get("eval") is not None:
        return earlier["eval"]
    return evaluate() if measurable else None


def _published_check(record: dict, headline: str) -> str | None:
    """Measured vs published top-1 of a published teacher; returns the warning to print, if any."""
    if not (record.get("pretrained") and record["eval"]):
        return None
    top1 = record["eval"].get(headline)
    record["measured_top1"] = None if top1 is None else 100.0 * top1
    warning = None if top1 is None else teachers.accuracy_warning(record["pretrained"], 100.0 * top1)
    record["accuracy_warning"] = warning
    return warning


def load(plan, workdir: str, evaluators: dict, mesh) -> LoadedTeacher:
    """Loads the frozen teacher of `plan` (params + BN statistics only), measures it once, writes teacher.json."""
    stage_spec = plan.spec
    if plan.teacher_model is None:
        return NO_TEACHER
    variables, record = read_variables(stage_spec.teacher, stage_spec.name, workdir, plan.teacher_model.num_classes)
    _check_fits(variables, abstract_variables(plan.teacher_model, plan.batch_spec["image"]), stage_spec.teacher, record)
    record = dict(record, model=stage_spec.teacher.model, fingerprint=ckpt_lib.fingerprint(variables))
    variables = jax.device_put(variables, parallel.replicated(mesh))
    path = os.path.join(results.stage_dir(workdir, stage_spec.name), "teacher.json")

    def evaluate():
        return {f"{name}/{k}": v for name, ev in evaluators.items()
                for k, v in ev.run(plan.teacher_model.apply, variables).items()}
    record["eval"] = _measure(record, results.read_json(path) or {}, evaluate,
                              plan.teacher_model.num_classes == plan.data.num_classes)
    warning = _published_check(record, stage_spec.task.headline)
    results.write_json(path, record)
    source = record.get("pretrained") or f"{record['checkpoint']} (step {record['step']})"
    measured = ", ".join(f"{k} {v:.4f}" for k, v in record["eval"].items()) if record["eval"] else "other classes"
    say(stage_spec.name, f"teacher {stage_spec.teacher.model['name']} from {source}: {measured}")
    if warning:
        say(stage_spec.name, "\n" + "!" * 100 + f"\n{warning}\n" + "!" * 100)
    return LoadedTeacher(variables, record)


def note_cache(workdir: str, stage: str, cache_record: dict) -> None:
    """Adds what the teacher cache did (folders read or written) to the stage's teacher.json."""
    path = os.path.join(results.stage_dir(workdir, stage), "teacher.json")
    results.write_json(path, dict(results.read_json(path) or {}, cache=cache_record))
