"""Quickstart: teacher -> student KD on scikit-learn's bundled digits, plus the same student trained with CE only.

Data: `digits` (1,437 train / 360 test 8x8 images, upscaled to 32x32), no download needed.
Stages: `teacher` = VGG-9 at width 0.25 (CE); `student_kd` = VGG-4 at width 0.25 distilled with
0.1 * CE + 0.9 * KD (T = 4, the mdistiller weights); `student_ce` = the same student with CE alone.
Runtime: about 2-3 minutes on 2 CPU cores. At the end `experiments.main` prints the three test accuracies.

    python -m experiments.main --config=configs/quickstart.py --workdir=/tmp/kdjax_quickstart
"""
from configs import common


def get_config(arg=None):
    arg = common.parse_arg(arg, runlocal=False, seed=0)
    config = common.base_config(seed=arg.seed)
    config.batch_size = 64
    config.eval_batch_size = 120
    config.log_every_steps = 20
    config.eval_every_epochs = 5.0
    config.checkpoint.every_steps = 200
    config.data = common.data_block("digits", image_size=32, augment=("crop",), crop_padding=4)

    teacher_model = dict(name="vgg9", width=0.25)
    student_model = dict(name="vgg4", width=0.25)
    optimizer = common.sgd(weight_decay=5e-4)
    schedule = common.cosine(base_lr=0.05)
    config.stages.teacher = common.stage(teacher_model, {"ce": dict(weight=1.0)}, optimizer=optimizer,
                                         schedule=schedule, num_epochs=30)
    config.stages.student_kd = common.stage(
        student_model, {"ce": dict(weight=0.1), "kd": dict(weight=0.9, temperature=4.0)},
        optimizer=optimizer, schedule=schedule, num_epochs=30, teacher=dict(stage="teacher"))
    config.stages.student_ce = common.stage(student_model, {"ce": dict(weight=1.0)}, optimizer=optimizer,
                                            schedule=schedule, num_epochs=30)
    config.stage_order = ("teacher", "student_kd", "student_ce")
    if arg.runlocal:
        common.runlocal(config)
    return config
