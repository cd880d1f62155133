"""Offline multi-label distillation on Fashion-MNIST mosaics (configs/multilabel/fashion_mnist_mosaic.py's data,
teacher and student; no download): the 3D paper's methods at CPU size, the same teacher, student and step budget
for every method.

Not a reproduction of a published number: the offline counterpart of Tables B.1-B.3. Teacher ResNet8x4 (width
0.25) and student ResNet8 (width 0.5), both with ML-Decoder heads of width 128, L2D's recipe scaled down (max LR
1e-3, 3 epochs, flip only; configs/multilabel/fashion_mnist_mosaic.py); `method=` as configs/ml_3d/common.py
(student, rkd, pkt, reviewkd, mse, ps, l2d, mld, 3d), with 3D's options `swap_weights`, `ndd_pairs`, and `views`
(weak = flip, strong = flip + CutoutPIL(0.5) at 56 px here), the reconstruction's open choices `ndd_form`,
`ndd_reduction`, `student_head` (configs/ml_3d/common.py), `head_width` (the student's decoder), and `method=focal`
(the task loss alone). `teacher_checkpoint=DIR` reuses a trained teacher
(`<workdir of configs/multilabel/fashion_mnist_mosaic.py>/teacher/checkpoints`); without it the teacher trains first.
Runtime on 2 CPU cores: teacher about 10 minutes, a student 6-9 minutes.

    python -m experiments.main --config=configs/ml_3d/fashion_mnist_mosaic.py:method=3d,teacher_checkpoint=T/teacher/checkpoints --workdir=W
"""
from configs import common
from configs.ml_3d import common as ml_3d
from configs.multilabel import common as multilabel
from configs.multilabel import fashion_mnist_mosaic as base

WEAK, STRONG = "flip", "flip|cutout_pil"
# The offline study's cells (configs/ml_3d/offline_study.py): `variant=` sets these arguments at once.
VARIANTS = {
    "student": dict(method="student"),
    "mld": dict(method="mld"),
    "l2d": dict(method="l2d"),
    "ps": dict(method="ps"),
    "3d": dict(method="3d"),
    "3d_swap": dict(method="3d", swap_weights=True),
    "3d_views": dict(method="3d", views="both", ndd_pairs="views"),
    # the control of 3d_views: the same two views (student strong, teacher weak), NDD still across images
    "3d_two_views": dict(method="3d", views="both"),
    # the reconstruction's open choices (configs/ml_3d/README.md) and their controls
    "focal": dict(method="focal"),                               # 3D's task loss, no distillation
    "3d_linear_head": dict(method="3d", student_head="linear"),
    "student_linear_head": dict(method="student", student_head="linear"),   # 3d_linear_head's control
    "3d_bound_sum": dict(method="3d", ndd_form="bound", ndd_reduction="sum"),
    "l2d_768": dict(method="l2d", head_width=768),               # L2D's decoder width: does LED swamp BCE?
}


def get_config(arg=None):
    arg = common.parse_arg(arg, runlocal=False, seed=0, method="3d", teacher_checkpoint="", swap_weights=False,
                           ndd_pairs="images", ndd_form="exact", ndd_reduction="pairs", student_head="ml_decoder",
                           head_width=base.STUDENT["head_width"], views="single", lr=1e-3, variant="")
    if arg.variant:
        if arg.variant not in VARIANTS:
            raise ValueError(f"Unknown variant {arg.variant!r}; valid: {', '.join(VARIANTS)}")
        arg.update(VARIANTS[arg.variant])
    losses = ml_3d.method_losses(arg.method, swap_weights=arg.swap_weights, ndd_pairs=arg.ndd_pairs,
                                 ndd_form=arg.ndd_form, ndd_reduction=arg.ndd_reduction)
    head = ml_3d.student_head(arg.student_head, arg.method)
    config = base.get_config(f"seed={arg.seed},lr={arg.lr}")
    if arg.views not in multilabel.VIEWS:
        raise ValueError(f"Unknown views {arg.views!r}; valid: {', '.join(multilabel.VIEWS)}")
    if arg.ndd_pairs == "views" and arg.views != "both":
        raise ValueError("ndd_pairs='views' pairs each image's weak and strong views: set views=both")
    student = config.stages.student
    if arg.views != "single":
        # the student's stage alone reads two views: the teacher (trained here or shared by a sweep) stays the
        # single-view one every other variant distils from
        student.data = dict(views={"image": STRONG, "image_weak": WEAK})
        for name, options in losses.items():
            if name in ml_3d.TEACHER_VIEW_TERMS:
                options["teacher_view"] = "image_weak"
    student.losses = losses
    student.model.head = head
    if head == "ml_decoder":
        student.model.head_width = arg.head_width
    else:
        del student.model["head_width"], student.model["head_hidden"]
    if arg.method in ("student",) + ml_3d.CONTROLS:
        config.stage_order = ("student",)
    elif arg.teacher_checkpoint:
        student.teacher = dict(stage="", checkpoint=arg.teacher_checkpoint, pretrained="", path="", sha256="",
                               model=dict(base.TEACHER), how_to_get="configs/multilabel/fashion_mnist_mosaic.py")
        config.stage_order = ("student",)
    else:
        student.teacher = dict(stage="teacher", checkpoint="", pretrained="", path="", sha256="", model={},
                               how_to_get="")
        config.stage_order = ("teacher", "student")
    config.info = dict(method=arg.method, swap_weights=arg.swap_weights, ndd_pairs=arg.ndd_pairs, views=arg.views,
                       ndd_form=arg.ndd_form, ndd_reduction=arg.ndd_reduction, student_head=arg.student_head,
                       head_width=arg.head_width)
    if arg.runlocal:
        common.runlocal(config)
        config.data.train_split = "train[:64]"
    return config
