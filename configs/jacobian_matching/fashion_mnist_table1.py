"""Offline analogue of Srinivas & Fleuret (ICML 2018) Table 1 on Fashion-MNIST (Debian `dataset-fashion-mnist`; no download).

Same protocol as `cifar100_table1.py`, scaled to 2 CPU cores: images resized 28 -> 32 (VGG-9 has five 2x2
pools), teacher VGG-9 and student VGG-4 at width 0.25 (16..128 channels), teacher 3 epochs on the full train
split, students a fixed budget of 300 steps (batch min(128, subset size)), Adam 1e-3 -> 1e-4 at 80% of training,
no augmentation. `:method=<row>,per_class=<n>` as in Table 1 (n in 1, 5, 10, 50 here).
Runtime on 2 CPU cores: teacher about 4 minutes, a student cell 0.5-1.5 minutes.
The whole sweep (6 rows x 4 subset sizes x 3 seeds + Table 2) is `experiments/jacobian_offline.py`.

    python -m experiments.main --config=configs/jacobian_matching/fashion_mnist_table1.py --workdir=W --stage=teacher
    python -m experiments.main --config=configs/jacobian_matching/fashion_mnist_table1.py:method=ce_act_jac,per_class=5,teacher_checkpoint=W/teacher/checkpoints --workdir=W/ce_act_jac_5
"""
from configs import common
from configs.jacobian_matching import common as jm

STUDENT_STEPS = 300
TEACHER_EPOCHS = 3


def get_config(arg=None):
    arg = common.parse_arg(arg, runlocal=False, seed=0, method="ce_act_jac", per_class=5, teacher_checkpoint="")
    config = common.base_config(seed=arg.seed)
    config.batch_size = jm.few_shot_batch_size(arg.per_class, 10)
    config.eval_batch_size = 1000
    config.log_every_steps = 50
    config.eval_every_epochs = 1e9  # evaluate once, at the end
    config.checkpoint.every_steps = 1000
    config.data = common.data_block("fashion_mnist", train="resize(32)", eval="resize(32)")
    jm.table1_stages(config, method=arg.method, per_class=arg.per_class, teacher_epochs=TEACHER_EPOCHS,
                     student_epochs=1, teacher_model=dict(name="vgg9", width=0.25),
                     student_model=dict(name="vgg4", width=0.25), teacher_checkpoint=arg.teacher_checkpoint)
    config.stages.student.num_steps = STUDENT_STEPS
    # The fixed step budget replaces epochs: anneal at 80% of the steps, as 400 of 500 epochs in the paper.
    steps_per_epoch = max(1, arg.per_class * 10 // config.batch_size)
    config.stages.student.schedule.milestones = (int(0.8 * STUDENT_STEPS) // steps_per_epoch,)
    config.stages.teacher.data = dict(per_class=None)
    if arg.runlocal:
        common.runlocal(config)
    return config
