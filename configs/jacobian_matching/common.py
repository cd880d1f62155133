"""Shared pieces of the Jacobian-matching configs (Srinivas & Fleuret, "Knowledge Transfer with Jacobian Matching",
ICML 2018)."""
from configs import common

# Table 1 rows: (CE weight alpha, activation-matching weight beta, Jacobian-matching weight gamma), Sec 10.2.
TABLE1_ROWS = {
    "ce": (1.0, 0.0, 0.0),
    "ce_act": (1.0, 1.0, 0.0),
    "ce_jac": (1.0, 0.0, 1.0),
    "ce_act_jac": (1.0, 1.0, 1.0),
    "act": (0.0, 1.0, 0.0),
    "act_jac": (0.0, 1.0, 1.0),
}
# Paper Table 1 (CIFAR-100, VGG-9 -> VGG-4, test top-1 %), per-class images 1, 5, 10, 50, 100, 500.
TABLE1_PAPER = {
    "ce": (5.69, 13.9, 20.03, 37.6, 44.92, 54.28),
    "ce_act": (12.13, 26.97, 33.92, 46.47, 50.92, 56.65),
    "ce_jac": (6.78, 23.94, 32.03, 45.71, 51.47, 53.44),
    "ce_act_jac": (13.78, 33.39, 39.55, 49.49, 52.43, 54.57),
    "act": (10.73, 28.56, 33.6, 45.73, 50.15, 56.59),
    "act_jac": (13.09, 33.31, 38.16, 47.79, 50.06, 51.33),
}
PER_CLASS = (1, 5, 10, 50, 100, 500)


def row_losses(method: str, *, jacobian_select: str = "label") -> dict:
    if method not in TABLE1_ROWS:
        raise ValueError(f"Unknown Table 1 row method={method!r}; valid: {sorted(TABLE1_ROWS)}")
    alpha, beta, gamma = TABLE1_ROWS[method]
    terms = {}
    if alpha:
        terms["ce"] = dict(weight=alpha)
    if beta:
        terms["activation_matching"] = dict(weight=beta)
    if gamma:
        terms["jacobian_matching"] = dict(weight=gamma, select=jacobian_select, normalize=False)
    return terms


def adam_500_epochs(num_epochs=500, anneal_epoch=400) -> tuple[dict, dict]:
    """Sec 10.3: Adam, LR 1e-3 annealed to 1e-4 at epoch 400 of 500."""
    return common.adam(), common.multistep(1e-3, (anneal_epoch,), decay_factor=0.1)


def table1_stages(config, *, method: str, per_class: int, teacher_epochs: float, student_epochs: float,
                  teacher_model: dict, student_model: dict, teacher_checkpoint: str = "",
                  anneal_fraction: float = 0.8):
    """Teacher (CE on the full split) and one Table-1 student (VGG-4 on `per_class` images per class).

    With `teacher_checkpoint` the student loads that teacher and the teacher stage is not run (sweeps train the
    teacher once: `--stage=teacher`, then every cell with `teacher_checkpoint=<workdir>/teacher/checkpoints`).
    """
    t_opt, t_sched = adam_500_epochs(teacher_epochs, int(anneal_fraction * teacher_epochs))
    s_opt, s_sched = adam_500_epochs(student_epochs, int(anneal_fraction * student_epochs))
    config.stages.teacher = common.stage(teacher_model, {"ce": dict(weight=1.0)}, optimizer=t_opt,
                                         schedule=t_sched, num_epochs=teacher_epochs)
    config.stages.teacher.batch_size = 128  # the teacher trains on the full split at the paper's batch size
    teacher = None
    if method != "ce":
        teacher = (dict(checkpoint=teacher_checkpoint, model=teacher_model) if teacher_checkpoint
                   else dict(stage="teacher"))
    config.stages.student = common.stage(student_model, row_losses(method), optimizer=s_opt, schedule=s_sched,
                                         num_epochs=student_epochs, data=dict(per_class=per_class or None),
                                         teacher=teacher)
    config.stage_order = ("student",) if (teacher_checkpoint or method == "ce") else ("teacher", "student")
    return config


def few_shot_batch_size(per_class: int, num_classes: int, batch_size: int = 128, multiple: int = 8) -> int:
    """The paper's batch (128), capped by the subset size and rounded down to a multiple of 8 devices."""
    return max(multiple, min(batch_size, per_class * num_classes // multiple * multiple))
