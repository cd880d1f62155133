"""Srinivas & Fleuret (ICML 2018) Table 3: transfer from an ImageNet ResNet-34 teacher to a VGG-9 student on MIT Scenes (Indoor-67).

`:method=<row>,per_class=<n>` (n in 5, 10, 25, 50, 0 = full) with rows (paper Table 3, test top-1 %, 5/10/25/50/full):
- `ce`          CE on the student from scratch               11.64 / 20.30 / 35.19 / 46.38 / 59.33
- `oracle`      CE on an ImageNet-pretrained VGG-9 (`student_init=<kdjax checkpoint>`)  25.93 / 43.81 / 57.65 / 64.18 / 71.42
- `lwf`         CE + match activations (Li & Hoiem)          17.08 / 27.13 / 45.08 / 55.22 / 65.22
- `lwf_jac`     + attention-map Jacobians                    17.88 / 28.25 / 45.26 / 56.49 / 66.04
- `lwf_att`     CE + activations + attention (Zagoruyko & Komodakis)  16.53 / 28.35 / 46.01 / 57.80 / 67.24
- `lwf_att_jac` + attention-map Jacobians                    18.02 / 29.25 / 47.31 / 58.35 / 67.31
Student: VGG-9 with two heads on the shared pooled features, 67-way (CE) and 1000-way (`aux_logits`, matched to
the teacher's ImageNet logits by squared error, Sec 6.3). Attention matching: every equal-resolution pair, ResNet-34
layer1..layer4 vs VGG-9 after max-pools 2..5 (56/28/14/7 px at 224); attention Jacobians: ResNet layer1 vs VGG
after max-pool 2 ("feature level 1", Sec 10.2), pool window size/5, stride 1. Weights alpha = beta = gamma = 10
(Sec 10.2); attention weight 10 (not stated, unverified). SGD momentum 0.9, LR 1e-3 x0.1 at epochs 40 and 60,
75 epochs, batch 8 (Sec 10.3); 224 px inputs (not stated), ImageNet normalisation, horizontal flips.
Protocol: last-epoch accuracy, mean of two runs with different subsets (`seed=0`, `seed=1`).
Data: `data_root` holds `train/<class>/*.jpg` and `test/<class>/*.jpg` (the official 80/20 split per class).
Teacher: torchvision's ImageNet ResNet-34 converted to a kdjax checkpoint (kdjax downloads no weights):
    python -m experiments.convert_imagenet --weights resnet34-b627a593.pth --out $HOME/kdjax/resnet34_imagenet
Runtime (estimate, not measured here): 1-4 h per cell on one A100-class GPU (full data, Jacobian terms).

    python -m experiments.main --config=configs/jacobian_matching/mit_scenes_table3.py:method=lwf_att_jac,per_class=10,data_root=$HOME/data/mit67,teacher_checkpoint=$HOME/kdjax/resnet34_imagenet --workdir=W
"""
import os

from configs import common

ROWS = {  # CE, activation (LwF), attention, attention-Jacobian weights
    "ce": (10.0, 0.0, 0.0, 0.0), "oracle": (10.0, 0.0, 0.0, 0.0), "lwf": (10.0, 10.0, 0.0, 0.0),
    "lwf_jac": (10.0, 10.0, 0.0, 10.0), "lwf_att": (10.0, 10.0, 10.0, 0.0), "lwf_att_jac": (10.0, 10.0, 10.0, 10.0),
}
HOW_TO_GET_TEACHER = (
    "kdjax needs the ImageNet ResNet-34 teacher as a kdjax checkpoint: download torchvision's resnet34 weights "
    "(resnet34-b627a593.pth) where you have network access, run `python -m experiments.convert_imagenet "
    "--weights resnet34-b627a593.pth --out DIR` (needs torch), and pass `:teacher_checkpoint=DIR`.")


def get_config(arg=None):
    arg = common.parse_arg(arg, runlocal=False, seed=0, method="lwf_att_jac", per_class=10,
                           data_root="~/data/mit_indoor67", teacher_checkpoint="", student_init="", image_size=224)
    if arg.method not in ROWS:
        raise ValueError(f"method={arg.method!r}; valid: {sorted(ROWS)}")
    ce, act, att, jac = ROWS[arg.method]
    config = common.base_config(seed=arg.seed)
    config.batch_size = 8
    config.eval_batch_size = 64
    config.log_every_steps = 100
    config.eval_every_epochs = 5.0
    config.checkpoint.every_steps = 2000
    size = arg.image_size
    config.data = common.data_block(f"folder:{os.path.expanduser(arg.data_root)}", train=f"resize({size}, {size})|flip",
                                    eval=f"resize({size}, {size})", per_class=arg.per_class or None,
                                    normalization="imagenet")
    losses = {"ce": dict(weight=ce)}
    if act:
        losses["lwf"] = dict(weight=act, head="aux_logits", form="squared_error")
    if att:
        losses["attention_matching"] = dict(weight=att, mode="paper",
                                            student_layers=("pooled_feats.1", "pooled_feats.2", "pooled_feats.3",
                                                            "pooled_feats.4"),
                                            teacher_layers=("feats.1", "feats.2", "feats.3", "feats.4"))
    if jac:
        losses["attention_jacobian"] = dict(weight=jac, student_layer="pooled_feats.1", teacher_layer="feats.1",
                                            window_fraction=0.2)
    teacher = None
    if act or att or jac:
        teacher = dict(checkpoint=arg.teacher_checkpoint or "<teacher_checkpoint not set>",
                       model=dict(name="resnet34", num_classes=1000), how_to_get=HOW_TO_GET_TEACHER)
    optimizer = common.sgd(weight_decay=0.0, momentum=0.9)
    schedule = common.multistep(1e-3, (40, 60))
    config.stages.student = common.stage(dict(name="vgg9", aux_classes=1000), losses, optimizer=optimizer,
                                         schedule=schedule, num_epochs=75, teacher=teacher)
    if arg.method == "oracle":
        if not arg.student_init and not arg.runlocal:
            raise ValueError("method=oracle needs :student_init=<kdjax checkpoint of an ImageNet-pretrained VGG-9>")
        config.stages.student.init_from = arg.student_init
        # the ImageNet classifier (1000 classes) cannot seed the 67-way head; the LwF head is new
        config.stages.student.init_allow_random = (r"^params/(Dense_0|aux_head)/",)
    config.stage_order = ("student",)
    if arg.runlocal:
        common.runlocal(config)
    return config
