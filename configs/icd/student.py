"""ICD students: one cell of the ICD paper's Tables 1-3 (top-1 %, mean of 5 seeds, last epoch).

`:dataset=<cifar100|cifar10|tiny_imagenet>,pair=<teacher>-<student>,method=<method>` with pairs resnet50-resnet34,
wrn_40_2-wrn_16_2, vgg13-vgg8 (Table 1, homogeneous), resnet50-mobilenetv2, vgg13-mobilenetv2, wrn_40_2-shufflev2
(Table 2, heterogeneous; CIFAR-10 both in Table 3), and methods `ce` (student alone), the baselines `kd`, `fitnet`,
`rkd`, `crd`, `ofd`, `reviewkd`, `vid`, `mlld` (kdjax's zoo terms with the mdistiller/RepDistiller weights,
distilled from the CE teacher), `ours` (KD, 0.1 CE + 0.9 KD at T = 4, from the ICD teacher) and `ours_rkd` (that
plus RKD, weight 1). `config.info.published_top1` holds the cell's number, e.g. CIFAR-100 resnet50-resnet34: KD 78.38,
ours 79.10, ours_rkd 79.39; vgg13-mobilenetv2: KD 65.82, ours 66.44, ours_rkd 66.79.
Recipe (paper Sec 5.1): SGD (momentum 0.9, weight decay 5e-4: kdjax's values), batch 128, LR 0.05 for every
student (the paper's; the zoo uses 0.01 for MobileNet/ShuffleNet students), 90 epochs, x0.1 at 30 and 60;
RandomCrop (pad 4) + flip; CRD with 16384 negatives, MLLD with its RandAugment + Cutout view. The teacher runs
frozen in eval mode: `teacher_checkpoint=DIR` loads a teacher of configs/icd/teacher.py (`loss=icd` for ours and
ours_rkd, `loss=ce` otherwise); `teacher_pretrained=DIR` distils the CIFAR-100 baselines from mdistiller's published
CE teacher (the unpacked `cifar_teachers.tar`; kdjax/teachers.py); without either a `teacher` stage trains it first.
Runtime (estimate, not measured here): 1-2 h per student on one A100-class GPU (CIFAR), 3-5 h (Tiny ImageNet).

    python -m experiments.main --config=configs/icd/student.py:dataset=cifar100,pair=resnet50-resnet34,method=ours,teacher_checkpoint=W/icd_resnet50/teacher/checkpoints --workdir=W/ours_r50_r34
    python -m experiments.main --config=configs/icd/student.py:dataset=cifar100,pair=vgg13-mobilenetv2,method=kd --workdir=W/kd_vgg13_mv2
"""
from configs import common
from configs.baselines import cifar100 as zoo
from configs.icd import common as icd
from configs.icd import teacher as teacher_config


def method_losses(method: str, pair: str) -> dict:
    if method == "ours":
        return zoo.method_losses("kd", pair)
    if method == "ours_rkd":
        return dict(zoo.method_losses("kd", pair), rkd=dict(weight=1.0, distance_weight=25.0, angle_weight=50.0))
    return zoo.method_losses(method, pair)


def get_config(arg=None):
    arg = common.parse_arg(arg, runlocal=False, seed=0, dataset="cifar100", pair="resnet50-resnet34", method="ours",
                           teacher_checkpoint="", teacher_pretrained="", data_root=icd.TINY_IMAGENET_ROOT)
    icd.check(arg.dataset, pair=(arg.pair, icd.PAIRS), method=(arg.method, icd.METHODS))
    teacher_name, student_name = arg.pair.split("-")
    config = common.base_config(seed=arg.seed)
    config.batch_size = 128
    config.eval_batch_size = 512
    config.log_every_steps = 100
    config.eval_every_epochs = 5.0
    config.checkpoint.every_steps = 1000
    config.data = icd.data_block(arg.dataset, two_views=False, data_root=arg.data_root)
    table, number = icd.published(arg.dataset, arg.pair, arg.method)
    config.info.published_top1 = number
    config.info.table = table
    data = {}
    if arg.method == "crd":
        data["contrast_negatives"] = 16384
    if arg.method == "mlld":
        weak = config.data.views.image
        data["views"] = {"image": weak, "image_strong": weak + "|randaugment|cutout"}
    teacher_loss = "icd" if arg.method in ("ours", "ours_rkd") else "ce"
    teacher_model = dict(name=icd.MODELS[teacher_name])
    teacher, stages = None, []
    if arg.teacher_pretrained and (arg.dataset != "cifar100" or teacher_loss != "ce" or arg.teacher_checkpoint):
        raise ValueError(f"teacher_pretrained: the published mdistiller teachers are CE teachers on CIFAR-100 (for "
                         f"the baselines' students); dataset={arg.dataset!r}, method={arg.method!r} needs "
                         f"{'an ICD' if teacher_loss == 'icd' else 'a CE'} teacher of its own data (teacher_checkpoint "
                         "or the teacher stage), and teacher_checkpoint cannot be combined with it")
    if arg.method != "ce":
        if arg.teacher_pretrained:
            teacher = common.pretrained_teacher(icd.MODELS[teacher_name], arg.teacher_pretrained)
        elif arg.teacher_checkpoint:
            teacher = dict(checkpoint=arg.teacher_checkpoint, model=teacher_model,
                           how_to_get=f"train it with configs/icd/teacher.py:dataset={arg.dataset},model={teacher_name},"
                                      f"loss={teacher_loss}: its teacher/checkpoints directory")
        else:
            source = teacher_config.get_config(f"dataset={arg.dataset},model={teacher_name},loss={teacher_loss},"
                                               f"seed={arg.seed},data_root={arg.data_root}")
            config.stages.teacher = source.stages.teacher
            config.stages.teacher.batch_size = source.batch_size
            config.stages.teacher.data = dict(views=dict(source.data.views))
            teacher, stages = dict(stage="teacher"), ["teacher"]
    config.stages.student = common.stage(dict(name=icd.MODELS[student_name]), method_losses(arg.method, arg.pair),
                                         optimizer=common.sgd(weight_decay=5e-4, momentum=0.9),
                                         schedule=common.multistep(0.05, (30, 60)), num_epochs=90, teacher=teacher,
                                         data=data)
    config.stage_order = tuple(stages) + ("student",)
    if arg.runlocal:
        common.runlocal(config)
        if arg.method == "crd":
            config.stages.student.data.contrast_negatives = 16
    return config
