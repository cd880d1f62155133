"""CIFAR-100 single-label KD baselines: every method x every standard pair, with the mdistiller recipe.

Reproduces one cell of the benchmark table (RepDistiller / mdistiller READMEs, DKD and MLLD papers;
the ICD paper's Tables 1-3 compare against it): `method` in ce (student alone), kd, fitnet, at, rkd, pkt, vid, crd,
ofd, reviewkd, dkd, mlld, dist (DIST, NeurIPS 2022), ctkd (CTKD, AAAI 2023; `ctkd_on=dkd` for CTKD on DKD);
`logit_stand=True` adds logit standardization (CVPR 2024) to kd, dkd, mlld and ctkd with its per-pair base
temperature and KD weight (the MLLD + LS cell holds the resnet32x4 -> resnet8x4 record, 78.28);
`pair` = <teacher>-<student>, one of resnet32x4-resnet8x4, wrn_40_2-wrn_16_2, vgg13-vgg8, resnet50_cifar-mobilenetv2,
wrn_40_2-shufflev1, resnet32x4-shufflev2, resnet32x4-shufflev1, vgg13-mobilenetv2. The published top-1 of each cell
is in configs/baselines/README.md (and `config.published_top1`).
Recipe (mdistiller / RepDistiller): SGD momentum 0.9, weight decay 5e-4 (student and every method module), global batch 64, 240
epochs, LR x0.1 at 150/180/210, base LR 0.05 (0.01 for MobileNetV2/ShuffleNet students); crop 32 pad 4 + flip;
per-method weights of mdistiller/RepDistiller; DKD and ReviewKD warm up over 20 epochs; OFD runs the teacher's BN
on batch statistics; CRD ships 16384 negatives per example from the input pipeline; MLLD trains on weak and strong
(RandAugment + Cutout) views with its own LR (0.025 / 0.01) and epochs (240, 480 or 960).
kdjax logs the last and the best top-1; RepDistiller's numbers are last-epoch, mdistiller's best-epoch. Average a
few seeds (`:seed=N`): single runs spread by about +-0.3.
Teacher: `teacher_pretrained=DIR` distils from mdistiller's published teacher of the pair (DIR: the unpacked
`cifar_teachers.tar`, or the `.pth` / `.npz` file; kdjax/teachers.py checks its sha256 where known and writes its
measured top-1 next to the published one in WORKDIR/student/teacher.json); `teacher_checkpoint=DIR` loads a kdjax
checkpoint (the `teacher/checkpoints` directory of an earlier run of this config); without either a `teacher` stage
trains one with the same recipe first.


    python -m experiments.main --config=configs/baselines/cifar100.py:pair=resnet32x4-resnet8x4,method=dkd,teacher_pretrained=$HOME/download_ckpts/cifar_teachers --workdir=W/dkd_r32x4

Runtime (estimate, not measured on this machine): student 1-3 h on one A100-class GPU (960-epoch MLLD cells 4x
that; CRD adds its 16384-row gathers); a teacher stage 2-6 h. Needs the TFDS `cifar100` dataset.

    python -m experiments.main --config=configs/baselines/cifar100.py:method=dkd,pair=resnet32x4-resnet8x4 \
        --workdir=$HOME/kdjax/baselines/dkd_res32x4_res8x4
"""

from configs import common

PAIRS = ("resnet32x4-resnet8x4", "wrn_40_2-wrn_16_2", "vgg13-vgg8", "resnet50_cifar-mobilenetv2",
         "wrn_40_2-shufflev1", "resnet32x4-shufflev2", "resnet32x4-shufflev1", "vgg13-mobilenetv2")
METHODS = ("ce", "kd", "fitnet", "at", "rkd", "pkt", "vid", "crd", "ofd", "reviewkd", "dkd", "mlld", "dist", "ctkd")
LOGIT_METHODS = ("kd", "dkd", "mlld", "ctkd")  # logit_stand=True applies (Sun et al. 2024)
CTKD_ON = ("kd", "dkd")  # the loss CTKD's learnt temperature drives
SMALL_LR_STUDENTS = ("mobilenetv2", "shufflev1", "shufflev2")
WEAK = "pad_crop(4)|flip"  # RandomCrop(32, padding=4) + RandomHorizontalFlip

# RepDistiller / mdistiller READMEs, DKD / MLLD papers: (teacher, student alone) and each method's published top-1 per pair, in METHODS[1:] order
PUBLISHED = {
    "resnet32x4-resnet8x4": ((79.42, 72.50), (73.33, 73.50, 73.44, 71.90, 73.64, 73.09, 75.51, 74.95, 75.63, 76.32, 77.08)),
    "wrn_40_2-wrn_16_2": ((75.61, 73.26), (74.92, 73.58, 74.08, 73.35, 74.54, 74.11, 75.48, 75.24, 76.12, 76.23, 76.63)),
    "vgg13-vgg8": ((74.64, 70.36), (72.98, 71.02, 71.43, 71.48, 72.88, 71.23, 73.94, 73.95, 74.84, 74.68, 75.18)),
    "resnet50_cifar-mobilenetv2": ((79.34, 64.60), (67.35, 63.16, 58.58, 64.43, 66.52, 67.57, 69.11, 69.04, 69.89, 70.35, 71.04)),
    "wrn_40_2-shufflev1": ((75.61, 70.50), (74.83, 73.73, 73.32, 72.21, 73.89, 73.61, 76.05, 75.85, 77.14, 76.70, 77.44)),
    "resnet32x4-shufflev2": ((79.42, 71.82), (74.45, 73.54, 72.73, 73.21, 74.69, 73.40, 75.65, 76.82, 77.78, 77.07, 78.44)),
    "resnet32x4-shufflev1": ((79.42, 70.50), (74.07, 73.59, 71.73, 72.28, 74.10, 73.38, 75.11, 75.98, 77.45, 76.45, 77.18)),
    "vgg13-mobilenetv2": ((74.64, 64.60), (67.37, 64.14, 59.40, 64.52, 67.13, 65.56, 69.73, 69.48, 70.37, 69.71, 70.57)),
}
# DKD beta per pair (mdistiller configs/cifar100/dkd/*.yaml).
DKD_BETA = {"resnet32x4-resnet8x4": 8.0, "wrn_40_2-wrn_16_2": 6.0, "vgg13-vgg8": 6.0,
            "resnet50_cifar-mobilenetv2": 8.0, "wrn_40_2-shufflev1": 8.0, "resnet32x4-shufflev2": 8.0,
            "resnet32x4-shufflev1": 8.0, "vgg13-mobilenetv2": 6.0}
# ReviewKD weight per student (official build_review_kd; 5.0 = mdistiller's reviewkd.yaml, kdjax's choice where the
# official table lists no weight for the student).
REVIEWKD_WEIGHT = {"shufflev2": 8.0}
# MLLD epochs per pair (Jin-Ying/Multi-Level-Logit-Distillation configs/cifar100/ours/*.yaml).
MLLD_EPOCHS = {"resnet50_cifar-mobilenetv2": 480, "vgg13-mobilenetv2": 480, "wrn_40_2-shufflev1": 480,
               "resnet32x4-shufflev1": 960, "resnet32x4-shufflev2": 960}

# DIST (Huang et al., NeurIPS 2022), its README: mean ± std of its CIFAR-100 runs (the MobileNetV2 student's teacher
# is ResNet-50 in the paper's table); its CIFAR recipe `dist_t4`: tau 4, CE weight 1, DIST weight 2.
DIST_PUBLISHED = {"resnet32x4-resnet8x4": (76.31, 0.19), "resnet32x4-shufflev2": (77.35, 0.25),
                  "resnet50_cifar-mobilenetv2": (68.66, 0.23)}
# CTKD on KD (global temperature), the logit-standardization README's CTKD row (the CTKD README agrees on vgg13-vgg8
# 73.52 and wrn_40_2-wrn_16_2 75.45).
CTKD_PUBLISHED = {"resnet32x4-resnet8x4": 73.39, "vgg13-vgg8": 73.52, "wrn_40_2-wrn_16_2": 75.45,
                  "resnet32x4-shufflev2": 75.37, "vgg13-mobilenetv2": 68.50, "resnet50_cifar-mobilenetv2": 68.67}
# Logit standardization (sunshangquan/logit-standardization-KD README, "+Ours" rows): top-1 and, from its log file
# names `KD_TYPE,TEACHER,STUDENT,BASE_TEMPERATURE,KD_WEIGHT[,BETA].txt` in logs/, the base temperature and KD weight
# (where no log exists, the README command's (2, 9)). The two ShuffleNetV1 pairs are not in its tables.
LS_PUBLISHED = {
    "resnet32x4-resnet8x4": {"kd": (76.62, 2, 9), "ctkd": (76.67, 2, 9), "dkd": (77.01, 2, 9), "mlld": (78.28, 2, 9)},
    "vgg13-vgg8": {"kd": (74.36, 3, 9), "ctkd": (74.47, 2, 9), "dkd": (74.81, 2, 15), "mlld": (75.22, 2, 6)},
    "wrn_40_2-wrn_16_2": {"kd": (76.11, 2, 9), "ctkd": (76.08, 2, 9), "dkd": (76.39, 2, 12), "mlld": (76.95, 2, 9)},
    "resnet32x4-shufflev2": {"kd": (75.56, 2, 9), "ctkd": (76.18, 2, 9), "dkd": (77.37, 2, 9), "mlld": (78.76, 2, 6)},
    "vgg13-mobilenetv2": {"kd": (68.61, 3, 9), "ctkd": (68.98, 2, 9), "dkd": (69.98, 3, 9), "mlld": (70.94, 2, 6)},
    "resnet50_cifar-mobilenetv2": {"kd": (69.02, 3, 1), "ctkd": (69.36, 2, 9), "dkd": (70.45, 2, 15),
                                   "mlld": (71.19, 2, 9)},
}
LS_DEFAULT = (2, 9)  # the README's --base-temp / --kd-weight
# DKD's BETA where the log name gives one (the authors, issue #31: "the possible third value for DKD is the value of
# BETA"); elsewhere DKD's own per-pair beta.
LS_DKD_BETA = {"vgg13-vgg8": 2.0, "wrn_40_2-wrn_16_2": 2.0, "resnet50_cifar-mobilenetv2": 2.0,
               "vgg13-mobilenetv2": 2.0}
# MLLD + LS's own schedules (logit-standardization-KD configs/cifar100/mlkd/*.yaml): (epochs, base LR); other pairs
# keep MLLD's.
LS_MLLD_RECIPE = {"resnet32x4-resnet8x4": (480, 0.025), "resnet32x4-shufflev2": (960, 0.001),
                  "resnet50_cifar-mobilenetv2": (480, 0.01)}


def ls_losses(method: str, pair: str) -> dict:
    """A logit method with logit standardization, as logit-standardization-KD's tools/train.py sets it: CE weight 1;
    KD / MLLD at the pair's base temperature with the KD weight w (MLLD's on every term); DKD at the base temperature
    with alpha = w and beta = BETA x w (the version of tools/train.py its authors quote in their issue #13, the one
    the log names' temperature and BETA describe; another stored version sets beta = alpha x w and leaves T at 4);
    CTKD (its CTKD/scripts: CE 0.1, KL weight w, the temperature learnt)."""
    _, base, weight = LS_PUBLISHED.get(pair, {}).get(method, (None,) + LS_DEFAULT)
    if method == "kd":
        return {"ce": dict(weight=1.0), "kd": dict(weight=float(weight), temperature=float(base), logit_stand=True)}
    if method == "dkd":
        beta = LS_DKD_BETA.get(pair, DKD_BETA.get(pair, 8.0))
        return {"ce": dict(weight=1.0), "dkd": dict(weight=1.0, warmup_epochs=20, alpha=float(weight),
                                                      beta=beta * weight, temperature=float(base), logit_stand=True)}
    if method == "mlld":
        return {"ce": dict(weight=1.0), "ce_strong": dict(term="ce", weight=1.0, view="image_strong"),
                "mlld": dict(weight=float(weight), variant="official", logit_stand=True,
                             temperatures=(float(base), 3.0, 5.0, 2.0, 6.0))}
    return {"ce": dict(weight=0.1), "ctkd": dict(weight=float(weight), logit_stand=True)}


def method_losses(method: str, pair: str, logit_stand: bool = False, ctkd_on: str = "kd") -> dict:
    """The loss block of one method: weights and options as in the reference recipes."""
    if ctkd_on not in CTKD_ON:
        raise ValueError(f"Unknown ctkd_on {ctkd_on!r}; valid: {', '.join(CTKD_ON)}")
    if logit_stand and method == "ctkd" and ctkd_on == "dkd":
        raise ValueError("logit_stand=True with ctkd_on=dkd: logit standardization publishes CTKD on KD only; set "
                         "--config.stages.student.losses.ctkd.logit_stand=True on a ctkd_on=dkd config instead")
    if logit_stand:
        if method not in LOGIT_METHODS:
            raise ValueError(f"logit_stand applies to the logit methods {', '.join(LOGIT_METHODS)}, not {method!r}")
        return ls_losses(method, pair)
    student = pair.split("-")[1]
    if method == "dkd" and pair not in DKD_BETA:
        raise ValueError(f"dkd: no published beta for pair {pair!r}; pairs with one: {', '.join(DKD_BETA)}")
    table = {
        "ce": {"ce": dict(weight=1.0)},
        "kd": {"ce": dict(weight=0.1), "kd": dict(weight=0.9, temperature=4.0)},
        "fitnet": {"ce": dict(weight=1.0), "fitnet": dict(weight=100.0, hint_layer=2)},
        "at": {"ce": dict(weight=1.0), "at": dict(weight=1000.0, p=2.0)},
        "rkd": {"ce": dict(weight=1.0), "rkd": dict(weight=1.0, distance_weight=25.0, angle_weight=50.0)},
        "pkt": {"ce": dict(weight=1.0), "pkt": dict(weight=30000.0)},
        "vid": {"ce": dict(weight=1.0), "vid": dict(weight=1.0, init_var=5.0, learn_variance=True)},
        "crd": {"ce": dict(weight=1.0), "crd": dict(weight=0.8, feat_dim=128, temperature=0.07, momentum=0.5)},
        "ofd": {"ce": dict(weight=1.0), "ofd": dict(weight=0.001, teacher_bn_mode="train")},
        "reviewkd": {"ce": dict(weight=1.0),
                     "reviewkd": dict(weight=REVIEWKD_WEIGHT.get(student, 5.0), warmup_epochs=20)},
        "dkd": {"ce": dict(weight=1.0),
                "dkd": dict(weight=1.0, warmup_epochs=20, alpha=1.0, beta=DKD_BETA.get(pair), temperature=4.0)},
        "mlld": {"ce": dict(weight=0.1), "ce_strong": dict(term="ce", weight=0.1, view="image_strong"),
                 "mlld": dict(weight=0.9, variant="official")},
        "dist": {"ce": dict(weight=1.0), "dist": dict(weight=2.0, beta=1.0, gamma=1.0, tau=4.0)},
        # CTKD's scripts/run_cifar_distill.sh: KD at CE 0.1 / KL 0.9; DKD at CE 1 / DKD 1 with alpha 1, beta 2
        "ctkd": ({"ce": dict(weight=0.1), "ctkd": dict(weight=0.9)} if ctkd_on == "kd" else
                 {"ce": dict(weight=1.0), "ctkd": dict(weight=1.0, kd_type="dkd", dkd_alpha=1.0, dkd_beta=2.0)}),
    }
    return table[method]


def published_top1(method: str, pair: str, logit_stand: bool = False, ctkd_on: str = "kd") -> float | None:
    """The published CIFAR-100 top-1 of a cell; None where no paper reports it."""
    if logit_stand:
        return LS_PUBLISHED.get(pair, {}).get(method, (None,))[0]
    if method == "dist":
        return DIST_PUBLISHED.get(pair, (None,))[0]
    if method == "ctkd":
        return CTKD_PUBLISHED.get(pair) if ctkd_on == "kd" else None
    (teacher, student), methods = PUBLISHED[pair]
    return student if method == "ce" else methods[METHODS.index(method) - 1]


def get_config(arg=None):
    arg = common.parse_arg(arg, method="kd", pair="resnet32x4-resnet8x4", runlocal=False, seed=0,
                           teacher_checkpoint="", teacher_pretrained="", mlld_variant="official", logit_stand=False,
                           ctkd_on="kd")
    if arg.method not in METHODS:
        raise ValueError(f"Unknown method {arg.method!r}; valid methods: {', '.join(METHODS)}")
    if arg.pair not in PAIRS:
        raise ValueError(f"Unknown pair {arg.pair!r}; valid pairs: {', '.join(PAIRS)}")
    teacher_name, student_name = arg.pair.split("-")
    config = common.base_config(seed=arg.seed)
    config.batch_size = 64
    config.eval_batch_size = 512
    config.log_every_steps = 100
    config.eval_every_epochs = 1.0
    config.checkpoint.every_steps = 2000
    config.data = common.data_block("cifar100", train=WEAK)
    config.info.published_top1 = published_top1(arg.method, arg.pair, arg.logit_stand, arg.ctkd_on)

    small = student_name in SMALL_LR_STUDENTS
    optimizer = common.sgd(weight_decay=5e-4, momentum=0.9)
    milestones = (150, 180, 210)
    base_lr, epochs, data = (0.01 if small else 0.05), 240, {}
    losses = method_losses(arg.method, arg.pair, arg.logit_stand, arg.ctkd_on)
    if arg.method == "mlld":
        losses["mlld"]["variant"] = arg.mlld_variant
        base_lr, epochs = (0.01 if small else 0.025), MLLD_EPOCHS.get(arg.pair, 240)
        if arg.logit_stand and arg.pair in LS_MLLD_RECIPE:
            epochs, base_lr = LS_MLLD_RECIPE[arg.pair]
        data = dict(views={"image": WEAK, "image_strong": WEAK + "|randaugment|cutout"})
    if arg.method == "crd":
        data = dict(contrast_negatives=16384)

    teacher_model = dict(name=teacher_name)
    stages = []
    if arg.teacher_checkpoint and arg.teacher_pretrained:
        raise ValueError("set teacher_checkpoint (a kdjax checkpoint) or teacher_pretrained (a published mdistiller "
                         "teacher), not both")
    if arg.method != "ce":
        if arg.teacher_pretrained:
            teacher = common.pretrained_teacher(teacher_name, arg.teacher_pretrained)
        elif arg.teacher_checkpoint:
            teacher = dict(checkpoint=arg.teacher_checkpoint, model=teacher_model,
                           how_to_get="run this config without teacher_checkpoint: its teacher stage "
                                      "writes WORKDIR/teacher/checkpoints")
        else:
            config.stages.teacher = common.stage(teacher_model, {"ce": dict(weight=1.0)}, optimizer=optimizer,
                                                 schedule=common.multistep(0.05, milestones), num_epochs=240)
            stages.append("teacher")
            teacher = dict(stage="teacher")
    else:
        teacher = None
    config.stages.student = common.stage(dict(name=student_name), losses, optimizer=optimizer,
                                         schedule=common.multistep(base_lr, milestones), num_epochs=epochs,
                                         teacher=teacher, data=data)
    config.stage_order = tuple(stages) + ("student",)
    if arg.runlocal:
        common.runlocal(config)
        if arg.method == "crd":
            config.stages.student.data.contrast_negatives = 64
    return config
