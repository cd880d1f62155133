"""Teacher -> student KD on Fashion-MNIST (offline, from Debian's `dataset-fashion-mnist`), against a CE student.

The quickstart recipe on a harder dataset: 60,000 train / 10,000 test 28x28 grey images, 10 classes.
Stages:
- `teacher`: VGG-8 (mdistiller layout, 3 max-pools: 28 -> 14 -> 7 -> 3) at width 0.5, CE, full train split;
- `student_kd`: VGG-4 at width 0.25, 0.1 * CE + 0.9 * KD (T = 4), on `per_class` images per class
  (default 100, i.e. 1,000 images; `per_class=0` uses the full split);
- `student_ce`: the same student, subset and budget with CE only.
Augmentation: random crop (pad 2) + horizontal flip. SGD momentum 0.9, wd 5e-4, cosine LR from 0.05.
Runtime on 2 CPU cores: 40-70 minutes; the teacher's 7,035 steps dominate (measured 1.8 steps/s with the CPU
shared by other jobs, so about an hour; less on a quiet machine). A few minutes on one GPU (estimate).

    apt-get install -y dataset-fashion-mnist
    python -m experiments.main --config=configs/fashion_mnist_kd.py --workdir=/tmp/kdjax_fmnist
    python -m experiments.main --config=configs/fashion_mnist_kd.py:per_class=0 --workdir=/tmp/kdjax_fmnist_full
"""
from configs import common


def get_config(arg=None):
    arg = common.parse_arg(arg, runlocal=False, seed=0, per_class=100)
    config = common.base_config(seed=arg.seed)
    config.batch_size = 128
    config.eval_batch_size = 512
    config.log_every_steps = 100
    config.eval_every_epochs = 1.0
    config.data = common.data_block("fashion_mnist", train="pad_crop(2)|flip")
    student_data = dict(per_class=arg.per_class or None)
    student_epochs = 15 if not arg.per_class else max(15, 15 * 6000 // arg.per_class // 10)  # equal steps

    optimizer = common.sgd(weight_decay=5e-4)
    schedule = common.cosine(base_lr=0.05)
    student_model = dict(name="vgg4", width=0.25)
    config.stages.teacher = common.stage(dict(name="vgg8", width=0.5), {"ce": dict(weight=1.0)},
                                         optimizer=optimizer, schedule=schedule, num_epochs=15)
    config.stages.student_kd = common.stage(
        student_model, {"ce": dict(weight=0.1), "kd": dict(weight=0.9, temperature=4.0)}, optimizer=optimizer,
        schedule=schedule, num_epochs=student_epochs, teacher=dict(stage="teacher"), data=student_data)
    config.stages.student_ce = common.stage(student_model, {"ce": dict(weight=1.0)}, optimizer=optimizer,
                                            schedule=schedule, num_epochs=student_epochs, data=student_data)
    config.stage_order = ("teacher", "student_kd", "student_ce")
    if arg.runlocal:
        common.runlocal(config)
    return config
