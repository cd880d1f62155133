"""Offline multi-label classification on Fashion-MNIST mosaics (`fashion_mnist_mosaic`: 2x2 mosaics of 1-4 items of
distinct classes, 10 labels, 24,000 train / 4,000 test 56x56 images; `kdjax.data.mosaic`; no download).

Not a reproduction of a published number: the CPU-sized stand-in for the teachers and students-alone of the 3D
paper's Tables B.1-B.3, trained with L2D's recipe scaled down: the ML-Decoder head (frozen queries, label-wise
embeddings, group FC) on a CIFAR ResNet, BCE summed over the batch and labels, Adam with coupled weight decay 1e-4
on ndim > 1 parameters, OneCycle per iteration (pct_start 0.2, div 25, final div 1e4, beta1 cycled 0.95 -> 0.85 ->
0.95), inputs in [0, 1] without normalisation, batch 64. Differences from L2D, for training from scratch on a CPU:
max LR 1e-3 (L2D's 1e-4 is for ImageNet-pretrained backbones), horizontal flip as the only augmentation, an
ML-Decoder of width 128 (feed-forward 256) instead of 768 (2048), and the networks: teacher ResNet8x4 at width 0.25
(8-16-32-64 channels), student ResNet8 at width 0.5 (8-8-16-32), both from scratch.
`:stage=teacher` trains the teacher for 3 epochs (1,125 steps); `:stage=student` the student alone for the same
steps; the default trains both. Evaluation after the last step: mAP / OF1 / CF1 in L2D's convention and ML-GCN's
(`mlgcn_*`), and for the teacher the 3D supplement's Table C.4 statistics on the train split (`train_stats/*`).
Runtime on 2 CPU cores: teacher about 12 minutes, student about 7 minutes (results: configs/multilabel/README.md).

    python -m experiments.main --config=configs/multilabel/fashion_mnist_mosaic.py --workdir=W
"""
from configs import common
from configs.multilabel import common as multilabel

EPOCHS = 3
TEACHER = dict(name="resnet8x4", width=0.25, head="ml_decoder", head_width=128, head_hidden=256)
STUDENT = dict(name="resnet8", width=0.5, head="ml_decoder", head_width=128, head_hidden=256)


def get_config(arg=None):
    arg = common.parse_arg(arg, runlocal=False, seed=0, stage="both", lr=1e-3)
    stages = {"both": ("teacher", "student"), "teacher": ("teacher",), "student": ("student",)}
    if arg.stage not in stages:
        raise ValueError(f"Unknown stage {arg.stage!r}; valid: {', '.join(stages)}")
    config = common.base_config(seed=arg.seed, task="multilabel")
    config.batch_size = 64
    config.eval_batch_size = 1000
    config.log_every_steps = 100
    config.eval_every_epochs = 1e9  # once, after the last step
    config.checkpoint.every_steps = 500
    config.data = common.data_block("fashion_mnist_mosaic", train="flip", normalization="none")
    config.data.expect = dict(train=(10, 24000), eval=(10, 4000))
    evals = {"eval": dict(type="multilabel")}
    config.stages.teacher = multilabel.l2d_stage(TEACHER, max_lr=arg.lr, num_epochs=EPOCHS,
                                             evals=dict(evals, train_stats=dict(type="teacher_stats", split="train")))
    config.stages.student = multilabel.l2d_stage(STUDENT, max_lr=arg.lr, num_epochs=EPOCHS, evals=evals)
    config.stage_order = stages[arg.stage]
    if arg.runlocal:
        common.runlocal(config)
        config.data.train_split = "train[:64]"
        config.stages.teacher.evals.train_stats.split = "eval"
    return config
