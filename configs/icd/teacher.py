"""ICD teachers: CE + lambda * L_intra (Eq. 5) or CE alone, the 'Teacher' rows of the ICD paper's Tables 1-3.

`:dataset=<cifar100|cifar10|tiny_imagenet>,model=<resnet50|wrn_40_2|vgg13>,loss=<icd|ce>` (paper teacher top-1:
CIFAR-100 78.31 / 76.89 / 74.40, Tiny ImageNet 59.48 / 59.48 / 55.91, CIFAR-10 94.08 / 94.85 / 91.54; the paper
does not say whether these are the CE or the ICD teachers). Options: `lam` (lambda, 0.02; paper 0.01-0.03),
`margin` (delta, 0.5), `temperature` (0.1; 1.0 = literal Eq. 4), `capacity` (8 per class), `embedding`
(logits | probs | features), `ce_on_both_views` (CE on the positive view too), `joint_bn` (both views as one
BatchNorm batch), `milestones=30,60,80` (the "reduced three times" reading), `data_root` for Tiny ImageNet.
Recipe (paper Sec 5.1; kdjax's values where it is silent): SGD momentum 0.9, weight decay 5e-4, batch 256, LR 0.5,
90 epochs, x0.1 at epochs 30 and 60; RandomCrop (pad 4) + flip, the positive an independent second draw of the same
recipe. Protocol: last-epoch top-1, mean of 5 seeds (`seed=0..4`). Logged per step: qualifying anchors, classes and
anchors fired, cached entries (`icd/...`), L_intra (`loss/icd`).
Runtime (estimate, not measured here): 1-3 h per teacher on one A100-class GPU (CIFAR), 3-8 h (Tiny ImageNet);
the second view doubles the forward passes.

    python -m experiments.main --config=configs/icd/teacher.py:dataset=cifar100,model=resnet50,loss=icd --workdir=W/icd_resnet50
    python -m experiments.main --config=configs/icd/teacher.py:dataset=cifar100,model=resnet50,loss=ce --workdir=W/ce_resnet50
"""
from configs import common
from configs.icd import common as icd


def get_config(arg=None):
    arg = common.parse_arg(arg, runlocal=False, seed=0, dataset="cifar100", model="resnet50", loss="icd", lam=0.02,
                           margin=0.5, temperature=0.1, capacity=8, embedding="logits", ce_on_both_views=False,
                           joint_bn=False, milestones="30,60", data_root=icd.TINY_IMAGENET_ROOT)
    icd.check(arg.dataset, model=(arg.model, icd.TEACHERS), loss=(arg.loss, ("icd", "ce")))
    if arg.lam < 0:
        raise ValueError(f"lam={arg.lam}: lambda must be >= 0 (0 is the CE teacher; the paper uses 0.01-0.03)")
    config = common.base_config(seed=arg.seed)
    config.batch_size = 256
    config.eval_batch_size = 512
    config.log_every_steps = 100
    config.eval_every_epochs = 5.0
    config.checkpoint.every_steps = 1000
    two_views = arg.loss == "icd"
    config.data = icd.data_block(arg.dataset, two_views=two_views, data_root=arg.data_root)
    losses = {"ce": dict(weight=1.0)}
    if two_views:
        losses["icd"] = dict(weight=arg.lam, margin_threshold=arg.margin, temperature=arg.temperature,
                             capacity=arg.capacity, embedding=arg.embedding, joint_bn=arg.joint_bn)
        if arg.ce_on_both_views:
            losses["ce_view2"] = dict(term="ce", weight=1.0, view="image_view2")
    milestones = tuple(int(m) for m in arg.milestones.split(","))
    config.stages.teacher = common.stage(dict(name=icd.MODELS[arg.model]), losses,
                                         optimizer=common.sgd(weight_decay=5e-4, momentum=0.9),
                                         schedule=common.multistep(0.5, milestones), num_epochs=90)
    config.stage_order = ("teacher",)
    config.info.published_teacher_top1 = icd.published(arg.dataset, icd.HOMOGENEOUS[icd.TEACHERS.index(arg.model)],
                                                       "teacher")[1]
    if arg.runlocal:
        common.runlocal(config)
    return config
