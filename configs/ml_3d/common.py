"""Shared pieces of the 3D paper's configs (Li & Cheng, "Positive Divide and Negative Discrepancy: A New Perspective
on Multi-Label Logit Distillation"; only the supplement is public): the teacher-student pairs of Tables B.1-B.3,
the supplement's numbers, and every method's loss block on L2D's student recipe (configs/multilabel/common.py).

Methods (`method=`): `student` (BCE alone), `mld` (BCE + 10 MLD), `l2d` (BCE + LED(100, 1000) + 10 MLD: L2D's
objective), `ps` (BCE + PS), `mse` (BCE + logit MSE), `rkd` (BCE + L2D's RKD on the pooled features, 10 / 10),
`pkt` (BCE + PKT), `reviewkd` (BCE + ReviewKD on the stage outputs), `3d` (focal BCE, gamma 2, + 100 PD + 10 NDD,
tau 4: kdjax's reconstruction; `swap_weights` puts 100 on NDD and 10 on PD, `ndd_pairs` = images / views /
permutation). `views` (the supplement's weak flip / strong Cutout + RandAugment, configs/multilabel/common.py):
'single' (L2D's one view for both networks, default), 'weak_strong' (the logit terms read the teacher on the weak
view, the student on the strong one), 'both' (as weak_strong, and `ndd_pairs='views'` pairs each image's two views).
The PS, MSE, RKD, PKT and ReviewKD weights are not published (1, as L2D's code defaults; unverified).
`mdkd` is not re-implemented (only its abstract is public): its rows quote the supplement.

The reconstruction's open choices (the supplement leaves them open; the defaults are kdjax's reading):
`ndd_form` exact pairwise MSE (default) or the supplement's Eq. 15 bound (`losses.negative_discrepancy`);
`ndd_reduction` mean over pairs (default), sum, or sum / batch size; `student_head` ML-Decoder (default) or the
backbone's linear classifier (the supplement: MSKD's models "remove the additional MLP head"); gamma_b = 2 read as
a focal exponent on the BCE task loss. `method=focal` (a control, not a published row) trains that task loss alone.
"""
from configs import common
from configs.multilabel import common as multilabel
from kdjax.losses import multilabel as ml_losses

METHODS = ("student", "rkd", "pkt", "reviewkd", "mse", "ps", "l2d", "mld", "mdkd", "3d")
NDD_PAIRS = ("images", "views", "permutation")
CONTROLS = ("focal",)        # methods that are no row of the supplement's tables: the 3D task loss alone
STUDENT_HEADS = {"ml_decoder": "ml_decoder", "linear": "gap_fc"}
TEACHER_VIEW_TERMS = ("mld", "ps", "ml_mse", "pd", "ndd")  # logit terms that can read the teacher on another view
# (mAP, OF1, CF1) of every row of the supplement's Tables B.1 (COCO), B.2 (VOC) and B.3 (COCO, reversed)
PUBLISHED = {'coco': {'vgg13-mobilenetv2': {'teacher': (74.08, 75.05, 72.2),
                                'student': (71.85, 73.68, 68.4),
                                'rkd': (72.48, 73.48, 67.48),
                                'pkt': (71.45, 73.08, 68.43),
                                'reviewkd': (72.49, 73.32, 69.18),
                                'mse': (72.0, 73.9, 68.87),
                                'ps': (71.43, 72.98, 68.78),
                                'l2d': (71.05, 73.98, 68.18),
                                'mdkd': (73.98, 74.89, 71.8),
                                'mld': (74.92, 75.75, 71.21),
                                '3d': (74.34, 75.27, 71.98)},
          'resnet32x4-shufflev2': {'teacher': (79.44, 79.04, 75.98),
                                   'student': (72.58, 73.13, 70.15),
                                   'rkd': (72.0, 73.27, 70.49),
                                   'pkt': (73.12, 73.18, 70.48),
                                   'reviewkd': (73.15, 73.89, 70.14),
                                   'mse': (72.14, 73.64, 71.0),
                                   'ps': (72.45, 73.81, 70.78),
                                   'l2d': (72.66, 73.22, 71.34),
                                   'mdkd': (74.07, 75.13, 72.66),
                                   'mld': (72.79, 73.88, 70.91),
                                   '3d': (74.98, 75.82, 73.59)},
          'wrn_40_2-wrn_16_2': {'teacher': (75.42, 77.11, 74.68),
                                'student': (73.19, 75.68, 72.17),
                                'rkd': (73.18, 75.62, 72.15),
                                'pkt': (73.89, 76.14, 72.89),
                                'reviewkd': (74.01, 76.08, 72.69),
                                'mse': (74.22, 76.15, 73.05),
                                'ps': (73.04, 75.65, 73.48),
                                'l2d': (72.98, 76.89, 72.03),
                                'mdkd': (75.34, 77.2, 73.89),
                                'mld': (73.32, 75.74, 73.72),
                                '3d': (76.12, 77.99, 74.92)},
          'resnet56-resnet20': {'teacher': (72.18, 74.26, 68.09),
                                'student': (69.25, 71.45, 66.28),
                                'rkd': (69.48, 71.98, 67.18),
                                'pkt': (70.15, 72.16, 66.4),
                                'reviewkd': (70.45, 72.68, 67.34),
                                'mse': (69.4, 72.44, 67.48),
                                'ps': (69.77, 71.18, 66.34),
                                'l2d': (71.45, 73.09, 67.54),
                                'mdkd': (73.37, 74.08, 68.29),
                                'mld': (70.28, 72.46, 67.29),
                                '3d': (74.37, 75.66, 69.55)},
          'resnet34-resnet101': {'teacher': (70.19, 72.3, 66.5),
                                 'student': (73.98, 75.01, 70.12),
                                 'rkd': (74.03, 74.96, 70.01),
                                 'pkt': (73.95, 74.94, 69.98),
                                 'reviewkd': (74.02, 74.96, 70.07),
                                 'mse': (74.21, 75.12, 70.18),
                                 'ps': (74.7, 75.78, 71.08),
                                 'l2d': (75.51, 76.25, 71.75),
                                 'mdkd': (76.61, 76.98, 72.03),
                                 'mld': (74.64, 75.78, 71.1),
                                 '3d': (77.48, 77.63, 72.42)}},
 'voc': {'resnet50-repvgg_a0': {'teacher': (86.73, 84.92, 81.21),
                                'student': (83.79, 83.36, 79.83),
                                'rkd': (84.26, 84.29, 80.7),
                                'pkt': (83.93, 83.79, 80.03),
                                'reviewkd': (84.07, 83.62, 80.34),
                                'mse': (84.01, 84.05, 80.52),
                                'ps': (84.8, 84.46, 81.13),
                                'l2d': (86.26, 85.85, 82.55),
                                'mdkd': (86.56, 85.1, 81.46),
                                'mld': (85.07, 84.91, 81.55),
                                '3d': (87.27, 86.23, 82.65)},
         'swin_t-resnet18': {'teacher': (91.43, 89.81, 87.63),
                             'student': (84.01, 83.6, 79.42),
                             'rkd': (83.27, 83.05, 79.55),
                             'pkt': (83.45, 83.25, 79.64),
                             'reviewkd': (83.37, 83.08, 78.93),
                             'mse': (83.6, 83.06, 79.46),
                             'ps': (83.97, 83.75, 79.86),
                             'l2d': (85.87, 85.67, 82.17),
                             'mdkd': (85.99, 85.71, 82.11),
                             'mld': (84.61, 84.26, 80.78),
                             '3d': (86.53, 85.98, 82.62)},
         'resnet50-mobilenet_v2': {'teacher': (86.73, 84.92, 81.21),
                                   'student': (86.12, 85.01, 81.76),
                                   'rkd': (86.22, 84.97, 81.76),
                                   'pkt': (86.1, 84.84, 81.66),
                                   'reviewkd': (85.87, 85.04, 81.73),
                                   'mse': (86.2, 84.94, 81.84),
                                   'ps': (86.26, 85.47, 82.06),
                                   'l2d': (87.32, 86.48, 83.26),
                                   'mdkd': (87.49, 86.49, 83.27),
                                   'mld': (86.38, 85.67, 82.43),
                                   '3d': (87.92, 86.78, 83.59)},
         'swin_t-mobilenet_v2': {'teacher': (91.43, 89.81, 87.63),
                                 'student': (86.12, 85.01, 81.76),
                                 'rkd': (85.68, 85.31, 81.57),
                                 'pkt': (85.67, 85.22, 81.68),
                                 'reviewkd': (85.69, 85.1, 81.56),
                                 'mse': (85.8, 85.51, 81.98),
                                 'ps': (86.07, 85.73, 82.39),
                                 'l2d': (87.37, 86.88, 83.68),
                                 'mdkd': (87.29, 86.71, 83.55),
                                 'mld': (86.11, 85.98, 82.55),
                                 '3d': (87.78, 87.12, 84.16)}}}
TABLES = {("coco", "resnet34-resnet101"): "B.3"}
TABLES.update({("coco", p): "B.1" for p in PUBLISHED["coco"] if p != "resnet34-resnet101"})
TABLES.update({("voc", p): "B.2" for p in PUBLISHED["voc"]})


def method_losses(method: str, *, swap_weights: bool = False, ndd_pairs: str = "images", ndd_form: str = "exact",
                  ndd_reduction: str = "pairs") -> dict:
    """The loss block of `method` (weights as the module docstring)."""
    if method not in METHODS + CONTROLS:
        raise ValueError(f"Unknown method {method!r}; valid methods: {', '.join(METHODS + CONTROLS)}")
    for name, value, valid in (("ndd_pairs", ndd_pairs, NDD_PAIRS), ("ndd_form", ndd_form, ml_losses.NDD_FORMS),
                               ("ndd_reduction", ndd_reduction, ml_losses.NDD_REDUCTIONS)):
        if value not in valid:
            raise ValueError(f"Unknown {name} {value!r}; valid: {', '.join(valid)}")
    bce = multilabel.bce()
    if method == "mdkd":
        raise ValueError("method=mdkd: MDKD (Wang et al., ACM MM 2024) is not re-implemented (only its abstract is "
                         "public); the supplement's MDKD numbers are quoted in configs/ml_3d/README.md and in "
                         "PUBLISHED[dataset][pair]['mdkd']")
    extra = {
        "student": {},
        "mld": {"mld": dict(weight=10.0)},
        "l2d": {"led": dict(weight=1.0, cd_weight=100.0, id_weight=1000.0), "mld": dict(weight=10.0)},
        "ps": {"ps": dict(weight=1.0)},
        "mse": {"ml_mse": dict(weight=1.0)},
        "rkd": {"rkd": dict(weight=1.0, distance_weight=10.0, angle_weight=10.0, distance_reduction="rows")},
        "pkt": {"pkt": dict(weight=1.0)},
        "reviewkd": {"reviewkd": dict(weight=1.0)},
    }.get(method)
    if extra is not None:
        return dict(bce, **extra)
    focal = {"focal": dict(weight=1.0, gamma=2.0)}
    if method == "focal":
        return focal
    pd_weight, ndd_weight = (10.0, 100.0) if swap_weights else (100.0, 10.0)
    return dict(focal, pd=dict(weight=pd_weight, temperature=4.0),
                ndd=dict(weight=ndd_weight, temperature=4.0, pairs=ndd_pairs, form=ndd_form, reduction=ndd_reduction))


def student_head(head: str, method: str) -> str:
    """The student's `model.head` for `student_head` (ml_decoder | linear)."""
    if head not in STUDENT_HEADS:
        raise ValueError(f"Unknown student_head {head!r}; valid: {', '.join(STUDENT_HEADS)}")
    if head == "linear" and method == "l2d":
        raise ValueError("method=l2d distils the ML-Decoder's label-wise embeddings (LED): student_head=linear has "
                         "none; use student_head=ml_decoder")
    return STUDENT_HEADS[head]


def get_config_for(dataset: str, arg) -> "common.ml_collections.ConfigDict":
    """A Tables B.1-B.3 cell: `arg` has pair, method, seed, runlocal, teacher_checkpoint, teacher_pretrained,
    student_pretrained, swap_weights, ndd_pairs, ndd_form, ndd_reduction, student_head, views."""
    if arg.pair not in PUBLISHED[dataset]:
        raise ValueError(f"Unknown pair {arg.pair!r} for {dataset}; valid pairs: {', '.join(PUBLISHED[dataset])}")
    teacher_arch, student_arch = arg.pair.split("-")
    losses = method_losses(arg.method, swap_weights=arg.swap_weights, ndd_pairs=arg.ndd_pairs,
                           ndd_form=arg.ndd_form, ndd_reduction=arg.ndd_reduction)
    head = student_head(arg.student_head, arg.method)
    config = common.base_config(seed=arg.seed, task="multilabel")
    config.batch_size = 64
    config.eval_batch_size = 128
    config.log_every_steps = 100
    config.checkpoint.every_steps = 1000
    if arg.views not in multilabel.VIEWS:
        raise ValueError(f"Unknown views {arg.views!r}; valid: {', '.join(multilabel.VIEWS)}")
    if arg.ndd_pairs == "views" and arg.views != "both":
        raise ValueError("ndd_pairs='views' pairs each image's weak and strong views: set views=both")
    if arg.views != "single":
        for name, options in losses.items():
            if name in TEACHER_VIEW_TERMS:
                options["teacher_view"] = "image_weak"
    config.data = multilabel.data_block(dataset)
    config.evals = {"eval": dict(type="multilabel")}
    teacher_model = multilabel.model_block(teacher_arch)
    stages = []
    if arg.method in ("student",) + CONTROLS:
        teacher = None
    elif arg.teacher_checkpoint:
        teacher = dict(checkpoint=arg.teacher_checkpoint, model=teacher_model,
                       how_to_get=f"configs/multilabel/teacher.py:dataset={dataset},model={teacher_arch}")
    else:
        config.stages.teacher = multilabel.l2d_stage(teacher_model, num_epochs=multilabel.TEACHER_EPOCHS,
                                                     cycle_epochs=multilabel.TEACHER_CYCLE_EPOCHS)
        multilabel.pretrained_init(config.stages.teacher, teacher_arch, arg.teacher_pretrained)
        teacher, stages = dict(stage="teacher"), ["teacher"]
    config.stages.student = multilabel.l2d_stage(multilabel.model_block(student_arch, head=head),
                                                 num_epochs=multilabel.STUDENT_EPOCHS, losses=losses, teacher=teacher)
    multilabel.pretrained_init(config.stages.student, student_arch, arg.student_pretrained)
    if arg.views != "single":
        # only the student reads two views; its teacher is trained on L2D's single pipeline as in every other cell
        config.stages.student.data = dict(views=multilabel.views_block(arg.views))
    config.stage_order = tuple(stages) + ("student",)
    published = PUBLISHED[dataset][arg.pair]
    config.info = dict(table=TABLES[(dataset, arg.pair)], pair=arg.pair, method=arg.method,
                       published_mAP_OF1_CF1=published.get(arg.method), teacher_mAP_OF1_CF1=published["teacher"])
    if arg.runlocal:
        multilabel.shrink(config)
    return config


def parse(arg, default_pair: str):
    return common.parse_arg(arg, runlocal=False, seed=0, pair=default_pair, method="3d", teacher_checkpoint="",
                            teacher_pretrained="", student_pretrained="", swap_weights=False, ndd_pairs="images",
                            ndd_form="exact", ndd_reduction="pairs", student_head="ml_decoder", views="single")
