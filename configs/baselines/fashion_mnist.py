"""Offline mini-benchmark of the single-label KD zoo on Fashion-MNIST (Debian `dataset-fashion-mnist`; no
download): the same teacher, the same student and the same step budget for every method.

Not a reproduction of a published number: a CPU-sized sanity ranking of the methods of configs/baselines/cifar100.py
with their CIFAR weights (pair resnet32x4 -> resnet8x4, both at width 0.25, images resized 28 -> 16). Teacher: full
train split, 2 epochs. Students: 200 images per class, 600 steps of batch 64 (about 19 epochs), SGD 0.05 (x0.1 at
epochs 12 and 16), weight decay 5e-4, crop (pad 2) + flip; DKD / ReviewKD warm up over 2 epochs (their 20 of 240,
scaled) and CTKD's temperature curriculum runs over 1 epoch (its 10 of 240); CRD uses 1024 negatives (the subset
has 1,800 of another class per example); MLLD adds its strong view. `method=ce` is the student alone;
`logit_stand=True` (kd, dkd, mlld, ctkd) and `ctkd_on=dkd` as in cifar100.py; `width=1.0` runs the CIFAR widths
(benchmarks/cache_sweep.py). Test top-1 on the 10,000 test images
after the last step. Runtime on 2 CPU cores: teacher about 5 minutes, a student 1.5-4 minutes. The tables are the
sweeps `configs/baselines/offline_study.py` (every method) and `offline_study_logit.py` (the logit methods with and
without logit standardization, and DIST).

    python -m experiments.main --config=configs/baselines/fashion_mnist.py:method=dkd --workdir=W/dkd
"""
from configs import common
from configs.baselines import cifar100 as cifar

PAIR = "resnet32x4-resnet8x4"
WIDTH = 0.25
STUDENT_STEPS = 600
PER_CLASS = 200
WEAK = "resize(16)|pad_crop(2)|flip"


def get_config(arg=None):
    arg = common.parse_arg(arg, method="kd", runlocal=False, seed=0, teacher_checkpoint="", logit_stand=False,
                           ctkd_on="kd", width=WIDTH)
    if arg.method not in cifar.METHODS:
        raise ValueError(f"Unknown method {arg.method!r}; valid methods: {', '.join(cifar.METHODS)}")
    config = common.base_config(seed=arg.seed)
    config.batch_size = 64
    config.eval_batch_size = 1000
    config.log_every_steps = 100
    config.eval_every_epochs = 1e9  # evaluate once, at the end
    config.checkpoint.every_steps = 1000
    config.data = common.data_block("fashion_mnist", train=WEAK, eval="resize(16)")

    teacher_model = dict(name=PAIR.split("-")[0], width=arg.width)
    optimizer = common.sgd(weight_decay=5e-4, momentum=0.9)
    losses = cifar.method_losses(arg.method, PAIR, arg.logit_stand, arg.ctkd_on)
    for options in losses.values():
        if options.get("warmup_epochs"):
            options["warmup_epochs"] = 2
    if "ctkd" in losses:
        losses["ctkd"]["decay_loops"] = 1.0
    data = dict(per_class=PER_CLASS)
    if arg.method == "crd":
        data["contrast_negatives"] = 1024
    if arg.method == "mlld":
        data["views"] = {"image": WEAK, "image_strong": WEAK + "|randaugment|cutout"}

    config.stages.teacher = common.stage(teacher_model, {"ce": dict(weight=1.0)}, optimizer=optimizer,
                                         schedule=common.multistep(0.05, (2,)), num_epochs=2)
    teacher, stages = None, []
    if arg.method != "ce" and arg.teacher_checkpoint:
        teacher = dict(checkpoint=arg.teacher_checkpoint, model=teacher_model,
                       how_to_get="run this config's teacher stage")
    elif arg.method != "ce":
        teacher, stages = dict(stage="teacher"), ["teacher"]
    config.stages.student = common.stage(dict(name=PAIR.split("-")[1], width=arg.width), losses, optimizer=optimizer,
                                         schedule=common.multistep(0.05, (12, 16)), num_epochs=1, teacher=teacher,
                                         data=data)
    config.stages.student.num_steps = STUDENT_STEPS
    config.stage_order = tuple(stages) + ("student",)
    if arg.runlocal:
        common.runlocal(config)
        if arg.method == "crd":
            config.stages.student.data.contrast_negatives = 16
    return config
