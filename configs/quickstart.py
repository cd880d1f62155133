"""Quickstart: teacher -> student KD on scikit-learn's bundled digits, against the same student trained with CE.

Data: `digits` (1,437 train / 360 test 8x8 images, upscaled to 16x16), no download needed.
Stages:
- `teacher`: VGG-8 (mdistiller layout) at width 0.5, CE on the full train split, 20 epochs;
- `student_kd`: VGG-4 at width 0.25 on a 20-images-per-class subset, 0.1 * CE + 0.9 * KD (T = 4, mdistiller
  weights), teacher frozen in eval mode;
- `student_ce`: the same student, subset, seed and step budget with CE alone.
The student sees only 200 labelled images, the regime where a teacher's soft labels help most (Srinivas & Fleuret 2018, Table 1).
Runtime: about 1 minute on 2 CPU cores (measured: 51-74 s on a 2-core x86-64 machine, jax 0.10.2). At the end
`experiments.main` prints the three test accuracies.

    python -m experiments.main --config=configs/quickstart.py --workdir=/tmp/kdjax_quickstart
"""
from configs import common


def get_config(arg=None):
    arg = common.parse_arg(arg, runlocal=False, seed=0)
    config = common.base_config(seed=arg.seed)
    config.batch_size = 64
    config.eval_batch_size = 120
    config.log_every_steps = 50
    config.eval_every_epochs = 5.0
    config.checkpoint.every_steps = 500
    config.data = common.data_block("digits", train="resize(16)|pad_crop(2)", eval="resize(16)")

    teacher_model = dict(name="vgg8", width=0.5)
    student_model = dict(name="vgg4", width=0.25)
    student_data = dict(per_class=20)
    optimizer = common.sgd(weight_decay=5e-4)
    schedule = common.cosine(base_lr=0.05)
    config.stages.teacher = common.stage(teacher_model, {"ce": dict(weight=1.0)}, optimizer=optimizer,
                                         schedule=schedule, num_epochs=20)
    config.stages.student_kd = common.stage(
        student_model, {"ce": dict(weight=0.1), "kd": dict(weight=0.9, temperature=4.0)},
        optimizer=optimizer, schedule=schedule, num_epochs=100, teacher=dict(stage="teacher"), data=student_data)
    config.stages.student_ce = common.stage(student_model, {"ce": dict(weight=1.0)}, optimizer=optimizer,
                                            schedule=schedule, num_epochs=100, data=student_data)
    config.stage_order = ("teacher", "student_kd", "student_ce")
    if arg.runlocal:
        common.runlocal(config)
    return config
