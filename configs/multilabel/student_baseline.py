"""Multi-label students trained alone (the "Student" rows of the 3D paper's Tables B.1-B.3; Li & Cheng), with L2D's
recipe (Yang et al., ICCV 2023; reference: penghui-yang/L2D): as configs/multilabel/teacher.py, but the OneCycle
schedule runs its full 80 epochs. The distillation methods of those tables train the same students with a teacher
(configs/ml_3d/, the 3D issue).

| cell | command args | published mAP / OF1 / CF1 |
|---|---|---|
| B.1 MBV2 (CIFAR-style) | dataset=coco,model=mobilenetv2 | 71.85 / 73.68 / 68.40 |
| B.1 ShuffleV2 (CIFAR-style) | dataset=coco,model=shufflev2 | 72.58 / 73.13 / 70.15 |
| B.1 WRN-16-2 | dataset=coco,model=wrn_16_2 | 73.19 / 75.68 / 72.17 |
| B.1 ResNet20 | dataset=coco,model=resnet20 | 69.25 / 71.45 / 66.28 |
| B.2 RepVGG-A0 | dataset=voc,model=repvgg_a0,pretrained=DIR | 83.79 / 83.36 / 79.83 |
| B.2 ResNet18 | dataset=voc,model=resnet18,pretrained=DIR | 84.01 / 83.60 / 79.42 |
| B.2 MobileNetV2 | dataset=voc,model=mobilenet_v2,pretrained=DIR | 86.12 / 85.01 / 81.76 |
| B.3 ResNet101 | dataset=coco,model=resnet101,pretrained=DIR | 73.98 / 75.01 / 70.12 |

ImageNet backbones start from converted torchvision / timm weights (`:pretrained=DIR`); the CIFAR-style students of
Table B.1 start from scratch at 224 px (no public ImageNet weights). `--config.compute_dtype=bfloat16`: bf16 forward passes, float32 losses. Runtime: COCO 80 epochs of 1,282 steps, VOC 80
of 78 steps, on one GPU (not measured: no GPU was available to kdjax's authors); on 2 CPU cores only the `:runlocal`
smoke test (2 steps at 64 px, about a minute).

    python -m experiments.main --config=configs/multilabel/student_baseline.py:dataset=voc,model=resnet18,pretrained=$HOME/kdjax/resnet18_imagenet --workdir=W
    python -m experiments.main --config=configs/multilabel/student_baseline.py:dataset=coco,model=wrn_16_2 --workdir=W
"""
from configs import common
from configs.multilabel import common as multilabel


def get_config(arg=None):
    arg = common.parse_arg(arg, runlocal=False, seed=0, dataset="voc", model="resnet18", pretrained="",
                           nus_wide_root="")
    return multilabel.one_network_config(
        arg, stage="student", num_epochs=multilabel.STUDENT_EPOCHS, cycle_epochs=None,
        published=multilabel.PUBLISHED_STUDENTS,
        evals={"eval": dict(type="multilabel")})
