"""Offline ICD study on Fashion-MNIST (Debian `dataset-fashion-mnist`; no download): one teacher trained with
CE + lambda * L_intra (lambda = 0: the CE teacher), then the same KD and KD + RKD students from it.

Not a reproduction of a published number: a CPU-sized check of the ICD paper's mechanism (its Tables 1-3 need the
GPU configs teacher.py / student.py). Teacher VGG-8 (mdistiller layout, width 0.25) on the full train split at 16 px,
1,200 steps of batch 128, SGD 0.1 with cosine decay, weight decay 5e-4, crop (pad 2) + flip, the positive
an independent second draw; ICD with the paper's defaults (delta 0.5, T 0.1, capacity 8, logits). Students VGG-4
(width 0.25) on 100 images per class (soft labels matter most with few labels), 600 steps of batch 64, SGD 0.05
with cosine decay; `student_kd`: 0.1 CE + 0.9 KD (T = 4); `student_kd_rkd`: plus RKD (weight 1). Test top-1 after the
last step. `experiments/icd_offline.py` runs lambda in {0, 0.01, 0.02, 0.03, 0.3} x seeds and measures the
teachers' intra-class diversity.
Runtime on 2 CPU cores: teacher about 3 minutes, a student about 1 minute.

    python -m experiments.main --config=configs/icd/fashion_mnist.py:lam=0.02 --workdir=W/lam0.02
"""
from configs import common

WEAK = "resize(16)|pad_crop(2)|flip"


def get_config(arg=None):
    arg = common.parse_arg(arg, runlocal=False, seed=0, lam=0.02, margin=0.5, temperature=0.1, capacity=8)
    if arg.lam < 0:
        raise ValueError(f"lam={arg.lam}: lambda must be >= 0")
    config = common.base_config(seed=arg.seed)
    config.batch_size = 64
    config.eval_batch_size = 1000
    config.log_every_steps = 100
    config.eval_every_epochs = 1e9  # evaluate once, at the end
    config.checkpoint.every_steps = 1000
    config.data = common.data_block("fashion_mnist", train=WEAK, eval="resize(16)")
    losses = {"ce": dict(weight=1.0)}
    teacher_data = {}
    if arg.lam:
        losses["icd"] = dict(weight=arg.lam, margin_threshold=arg.margin, temperature=arg.temperature,
                             capacity=arg.capacity)
        teacher_data = dict(views={"image": WEAK, "image_view2": WEAK})
    optimizer = common.sgd(weight_decay=5e-4, momentum=0.9)
    # the spread of the teacher's soft labels at the students' KD temperature (what Theorem 2 is about)
    evals = {"eval": dict(type="classification"), "soft_labels": dict(type="soft_label_diversity", temperature=4.0)}
    config.stages.teacher = common.stage(dict(name="vgg8", width=0.25), losses, optimizer=optimizer,
                                         schedule=common.cosine(0.1), num_epochs=1, data=teacher_data, evals=evals)
    config.stages.teacher.num_steps = 1200
    config.stages.teacher.batch_size = 128
    student_losses = {"ce": dict(weight=0.1), "kd": dict(weight=0.9, temperature=4.0)}
    for name, extra in (("student_kd", {}), ("student_kd_rkd", {"rkd": dict(weight=1.0)})):
        config.stages[name] = common.stage(dict(name="vgg4", width=0.25), dict(student_losses, **extra),
                                           optimizer=optimizer, schedule=common.cosine(0.05),
                                           num_epochs=1, teacher=dict(stage="teacher"), data=dict(per_class=100))
        config.stages[name].num_steps = 600
    config.stage_order = ("teacher", "student_kd", "student_kd_rkd")
    if arg.runlocal:
        common.runlocal(config)
    return config
