"""L2D's multi-label training recipe (Yang et al., ICCV 2023; reference: penghui-yang/L2D main.py, learner.py,
tools/add_weight_decay.py, configs/coco/*.py), shared by the multi-label configs.

- task loss: BCE summed over the batch and the labels (`focal` with gamma 0);
- Adam (beta2 0.999, eps 1e-8) with coupled L2 decay 1e-4 on parameters with ndim > 1 only (biases and norms 0);
- OneCycle stepped every iteration: max LR 1e-4, pct_start 0.2, cosine, div 25, final div 1e4, beta1 cycled
  0.95 -> 0.85 -> 0.95; `cycle_epochs` > `num_epochs` stops mid-cycle (L2D's teachers: an 80-epoch cycle stopped
  after 30, `stop_epoch_t = 30`);
- batch 64, 224 x 224 inputs in [0, 1] (no normalisation); the ML-Decoder head (`head='ml_decoder'`).
"""
from configs import common

WEIGHT_DECAY = 1e-4


def optimizer() -> dict:
    return dict(name="adam", b1=0.95, b2=0.999, eps=1e-8, weight_decay=WEIGHT_DECAY, exclude_1d_from_decay=True)


def schedule(max_lr: float = 1e-4, cycle_epochs: float | None = None) -> dict:
    return dict(name="onecycle", base_lr=max_lr, pct_start=0.2, div_factor=25.0, final_div_factor=1e4,
                cycle_epochs=cycle_epochs, momentum=(0.95, 0.85))


def bce() -> dict:
    return {"bce": dict(term="focal", gamma=0.0, weight=1.0)}


def l2d_stage(model: dict, *, max_lr: float = 1e-4, num_epochs: float, cycle_epochs: float | None = None,
              losses: dict | None = None, teacher: dict | None = None, evals: dict | None = None):
    return common.stage(model, losses or bce(), optimizer=optimizer(), schedule=schedule(max_lr, cycle_epochs),
                        num_epochs=num_epochs, teacher=teacher, evals=evals)


# ---- the 3D paper's multi-label benchmarks (L2D's protocol) ---------------------------------------------------------
IMAGE_SIZE = 224
TRAIN_VIEW = "resize({s}, {s})|flip|cutout_pil|l2d_randaugment"   # [supp]: weak flip + strong Cutout/RandAugment
WEAK_VIEW = "resize({s}, {s})|flip"
STRONG_VIEW = "resize({s}, {s})|cutout_pil|l2d_randaugment"
EVAL_VIEW = "resize({s}, {s})"
VIEWS = ("single", "weak_strong", "both")


def views_block(kind: str, image_size: int = IMAGE_SIZE) -> dict:
    """The training views of the supplement's augmentations (not stated as one pipeline or two views):
    'single' (default, L2D's): one view, flip -> CutoutPIL -> RandAugment, seen by teacher and student;
    'weak_strong' / 'both': the strong view as 'image' and the weak (flip) view as 'image_weak', for distillation
    terms that show the teacher the weak view ('weak_strong') or both networks both views ('both')."""
    if kind not in VIEWS:
        raise ValueError(f"Unknown views {kind!r}; valid: {', '.join(VIEWS)}")
    if kind == "single":
        return {"image": TRAIN_VIEW.format(s=image_size)}
    return {"image": STRONG_VIEW.format(s=image_size), "image_weak": WEAK_VIEW.format(s=image_size)}
DATASETS = {
    # TFDS name, train split, eval split, (labels with a positive, images) per split: L2D's protocol (penghui-yang/L2D dataloader.py)
    "coco": dict(name="coco/2014", train_split="train", eval_split="validation",
                 expect=dict(train=(80, 82081), eval=(80, 40137))),
    "voc": dict(name="voc/2007", train_split="train+validation", eval_split="test",
                expect=dict(train=(20, 5011), eval=(20, 4952))),
    "nus_wide": dict(name="nus_wide:{root}", train_split="train", eval_split="test",
                     expect=dict(train=(81, 161789), eval=(81, 107859))),
}
# Backbones and where their ImageNet weights come from (`experiments/convert_imagenet.py --headless`); the CIFAR-style
# zoo models of Table B.1 have no public ImageNet weights and train from scratch at 224 px.
IMAGENET_SOURCES = {"resnet18": "torchvision", "resnet34": "torchvision", "resnet50": "torchvision",
                    "resnet101": "torchvision", "mobilenet_v2": "torchvision", "shufflenet_v2_x1_0": "torchvision",
                    "repvgg_a0": "timm", "swin_t": "timm"}
CIFAR_ZOO = ("vgg13", "resnet32x4", "wrn_40_2", "wrn_16_2", "resnet56", "resnet20", "mobilenetv2", "shufflev2")
# (mAP, OF1, CF1) of the supplement, Tables B.1-B.3: the teacher and student rows of every pair
PUBLISHED_TEACHERS = {
    ("coco", "vgg13"): ("B.1 VGG13 -> MBV2", (74.08, 75.05, 72.20)),
    ("coco", "resnet32x4"): ("B.1 ResNet32x4 -> SHNV2", (79.44, 79.04, 75.98)),
    ("coco", "wrn_40_2"): ("B.1 WRN40-2 -> WRN16-2", (75.42, 77.11, 74.68)),
    ("coco", "resnet56"): ("B.1 ResNet56 -> ResNet20", (72.18, 74.26, 68.09)),
    ("voc", "resnet50"): ("B.2 ResNet50 -> RepVGG-A0 / MBV2", (86.73, 84.92, 81.21)),
    ("voc", "swin_t"): ("B.2 Swin-T -> ResNet18 / MBV2", (91.43, 89.81, 87.63)),
    ("coco", "resnet34"): ("B.3 ResNet34 -> ResNet101 (reversed)", (70.19, 72.30, 66.50)),
    ("coco", "resnet101"): ("the main paper's COCO teacher (main paper unavailable: no published value here)", None),
}
PUBLISHED_STUDENTS = {
    ("coco", "mobilenetv2"): ("B.1 VGG13 -> MBV2", (71.85, 73.68, 68.40)),
    ("coco", "shufflev2"): ("B.1 ResNet32x4 -> SHNV2", (72.58, 73.13, 70.15)),
    ("coco", "wrn_16_2"): ("B.1 WRN40-2 -> WRN16-2", (73.19, 75.68, 72.17)),
    ("coco", "resnet20"): ("B.1 ResNet56 -> ResNet20", (69.25, 71.45, 66.28)),
    ("voc", "repvgg_a0"): ("B.2 ResNet50 -> RepVGG-A0", (83.79, 83.36, 79.83)),
    ("voc", "resnet18"): ("B.2 Swin-T -> ResNet18", (84.01, 83.60, 79.42)),
    ("voc", "mobilenet_v2"): ("B.2 ResNet50 / Swin-T -> MBV2", (86.12, 85.01, 81.76)),
    ("coco", "resnet101"): ("B.3 ResNet34 -> ResNet101 (reversed)", (73.98, 75.01, 70.12)),
}
TEACHER_EPOCHS, TEACHER_CYCLE_EPOCHS, STUDENT_EPOCHS = 30, 80, 80


def data_block(dataset: str, *, nus_wide_root: str = "", image_size: int = IMAGE_SIZE):
    if dataset not in DATASETS:
        raise ValueError(f"Unknown dataset {dataset!r}; valid: {', '.join(DATASETS)}")
    entry = dict(DATASETS[dataset])
    if dataset == "nus_wide":
        if not nus_wide_root:
            raise ValueError("dataset=nus_wide needs :nus_wide_root=<directory of the official NUS-WIDE files>")
        entry["name"] = entry["name"].format(root=nus_wide_root)
    block = common.data_block(entry["name"], views=views_block("single", image_size),
                              eval=EVAL_VIEW.format(s=image_size), train_split=entry["train_split"],
                              eval_split=entry["eval_split"], normalization="none")
    block.expect = entry["expect"]
    return block


def model_block(arch: str, *, image_size: int = IMAGE_SIZE, head: str = "ml_decoder") -> dict:
    """No `dtype`: `config.compute_dtype` sets it (bfloat16: bf16 forward passes, L2D's fp16 autocast; outputs and
    losses stay float32)."""
    if arch not in IMAGENET_SOURCES and arch not in CIFAR_ZOO:
        raise ValueError(f"Unknown model {arch!r}; valid: {', '.join(list(IMAGENET_SOURCES) + list(CIFAR_ZOO))}")
    model = dict(name=arch, head=head)
    if arch == "swin_t":
        model["img_size"] = image_size
    return model


def pretrained_init(stage, arch: str, pretrained: str) -> None:
    """ImageNet initialisation of an L2D network: `pretrained` = a kdjax checkpoint of the headless backbone, or
    'none' (from scratch, said explicitly). The head (ML-Decoder) stays random."""
    if arch in CIFAR_ZOO or pretrained == "none":
        return
    if not pretrained:
        raise ValueError(
            f"model {arch!r} starts from ImageNet weights in the paper: convert {IMAGENET_SOURCES[arch]}'s with "
            f"`python -m experiments.convert_imagenet --source {IMAGENET_SOURCES[arch]} --arch {arch} --headless "
            f"--weights FILE --out DIR` and pass :pretrained=DIR (or :pretrained=none to train from scratch)")
    stage.init_from = pretrained
    stage.init_allow_random = ("/decoder/", "^params/fc/")


def info(published: tuple | None) -> dict:
    row, values = published
    return dict(table_row=row, published_mAP=values and values[0], published_OF1=values and values[1],
                published_CF1=values and values[2])


def one_network_config(arg, *, stage: str, num_epochs: float, cycle_epochs: float | None, published: dict,
                       evals: dict):
    """A teacher or a student trained alone on a benchmark (configs/multilabel/teacher.py, student_baseline.py):
    `arg` has seed, dataset, model, pretrained, nus_wide_root, runlocal."""
    config = common.base_config(seed=arg.seed, task="multilabel")
    config.batch_size = 64
    config.eval_batch_size = 128
    config.log_every_steps = 100
    config.checkpoint.every_steps = 1000
    config.data = data_block(arg.dataset, nus_wide_root=arg.nus_wide_root)
    config.evals = evals
    config.stages[stage] = l2d_stage(model_block(arg.model), num_epochs=num_epochs,
                                     cycle_epochs=cycle_epochs)
    pretrained_init(config.stages[stage], arg.model, arg.pretrained)
    config.stage_order = (stage,)
    config.info = info(published.get((arg.dataset, arg.model), (f"not a {stage} of Tables B.1-B.3", None)))
    if arg.runlocal:
        shrink(config)
    return config


def shrink(config, image_size: int = 64) -> None:
    """:runlocal on mock data: 64 px, 64 train images, 2 steps per stage."""
    common.runlocal(config)
    config.data.train_split = config.data.train_split.split("+")[0].split("[")[0] + "[:64]"
    def resized(views):
        return {k: v.replace(f"resize({IMAGE_SIZE}, {IMAGE_SIZE})", f"resize({image_size}, {image_size})")
                for k, v in views.items()}
    config.data.views = resized(config.data.views)
    config.data.eval_view = EVAL_VIEW.format(s=image_size)
    for stage in config.stages.values():
        if "views" in stage.get("data", {}):
            stage.data.views = resized(stage.data.views)
        if "img_size" in stage.model:
            stage.model.img_size = image_size
        stage.init_from, stage.init_allow_random = "", ()
