"""CIFAR-100 KD, resnet32x4 -> resnet8x4, with the mdistiller / RepDistiller recipe (Hinton et al. 2015;
reference: megvii-research/mdistiller configs/cifar100/kd.yaml).

Reproduces the KD cell of the standard benchmark table (RepDistiller's README): teacher 79.42, student trained alone
72.50, KD student 73.33 (RepDistiller README, last epoch; mdistiller reports the best epoch). kdjax logs both last
(`final_accuracy`) and best (`best_accuracy`) top-1; compare last to RepDistiller, best to mdistiller, and average
5 seeds (`:seed=N`) since single CIFAR runs spread by about +-0.3.
Recipe: SGD momentum 0.9, weight decay 5e-4, global batch 64, 240 epochs, LR 0.05 x0.1 at epochs 150/180/210;
crop 32 (pad 4) + flip, mdistiller normalisation; KD = 0.1 * CE + 0.9 * KD, T = 4; teacher frozen in eval mode.
The teacher is trained by the `teacher` stage with the same recipe (RepDistiller `train_teacher.py`), or loaded:
`:teacher_checkpoint=/path/to/teacher/checkpoints` (a kdjax stage checkpoint directory) skips that stage.
BatchNorm: global-batch statistics (= a single-GPU PyTorch run at batch 64, whatever the device count).
Runtime (estimate, not measured on this machine): teacher about 3 h, each student about 1.5 h on one A100-class GPU.
Needs the TFDS `cifar100` dataset (downloaded by TFDS on first use).

    python -m experiments.main --config=configs/cifar100_kd.py --workdir=$HOME/kdjax/cifar100_kd_seed0
    python -m experiments.main --config=configs/cifar100_kd.py:seed=1 --workdir=$HOME/kdjax/cifar100_kd_seed1
"""
from configs import common


def get_config(arg=None):
    arg = common.parse_arg(arg, runlocal=False, seed=0, teacher_checkpoint="")
    config = common.base_config(seed=arg.seed)
    config.batch_size = 64
    config.eval_batch_size = 512
    config.log_every_steps = 100
    config.eval_every_epochs = 1.0
    config.checkpoint.every_steps = 2000
    config.data = common.data_block("cifar100", train="pad_crop(4)|flip")

    optimizer = common.sgd(weight_decay=5e-4, momentum=0.9)
    schedule = common.multistep(0.05, (150, 180, 210))
    teacher_model, student_model = dict(name="resnet32x4"), dict(name="resnet8x4")
    config.stages.teacher = common.stage(teacher_model, {"ce": dict(weight=1.0)}, optimizer=optimizer,
                                         schedule=schedule, num_epochs=240)
    teacher = (dict(checkpoint=arg.teacher_checkpoint, model=teacher_model) if arg.teacher_checkpoint
               else dict(stage="teacher"))
    config.stages.student_kd = common.stage(
        student_model, {"ce": dict(weight=0.1), "kd": dict(weight=0.9, temperature=4.0)}, optimizer=optimizer,
        schedule=schedule, num_epochs=240, teacher=teacher)
    config.stages.student_ce = common.stage(student_model, {"ce": dict(weight=1.0)}, optimizer=optimizer,
                                            schedule=schedule, num_epochs=240)
    config.stage_order = (() if arg.teacher_checkpoint else ("teacher",)) + ("student_kd", "student_ce")
    if arg.runlocal:
        common.runlocal(config)
    return config
