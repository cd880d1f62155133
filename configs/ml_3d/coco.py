"""The 3D paper's multi-label distillation on MS-COCO 2014 (L2D's lists: 82,081 / 40,137 images, 80 labels): every cell of the supplement's Table B.1 (and B.3, the reversed ResNet34 -> ResNet101)
(Li & Cheng; only the supplement is public, so 3D is kdjax's reconstruction: configs/ml_3d/README.md).

`pair=<teacher>-<student>` (vgg13-mobilenetv2, resnet32x4-shufflev2, wrn_40_2-wrn_16_2, resnet56-resnet20, resnet34-resnet101), `method=` student, rkd, pkt, reviewkd, mse, ps, l2d, mld,
3d (mdkd: quoted only); L2D's student recipe (80 epochs, Adam OneCycle 1e-4, batch 64, 224 px, flip + CutoutPIL +
RandAugment, ML-Decoder heads), the teacher trained first in the same workdir with L2D's teacher recipe (30 of an
80-epoch cycle) or read from `teacher_checkpoint=DIR` (a configs/multilabel/teacher.py run). ImageNet backbones
start from converted weights (`teacher_pretrained=DIR`, `student_pretrained=DIR`, or `none`; see
configs/multilabel/README.md); the CIFAR-style models of Table B.1 from scratch. Options of 3D: `swap_weights`,
`ndd_pairs=images|views|permutation`, `views=single|weak_strong|both`, and the reconstruction's open choices
`ndd_form=exact|bound`, `ndd_reduction=pairs|global|sum|per_image`, `student_head=ml_decoder|linear`
(configs/ml_3d/common.py); `method=focal`, the task loss alone (a control); `--config.compute_dtype=bfloat16` for bf16 forward passes.
Runtime: one student is 80 epochs (1,282 steps each) on one GPU (not measured:
no GPU was available to kdjax's authors); on 2 CPU cores only `:runlocal` (2 steps at 64 px) is practical.

Published mAP / OF1 / CF1 (the other methods' rows: configs/ml_3d/README.md and `common.PUBLISHED`):

| pair | method | published |
|---|---|---|
| vgg13-mobilenetv2 | student | 71.85 / 73.68 / 68.40 |
| vgg13-mobilenetv2 | mld | 74.92 / 75.75 / 71.21 |
| vgg13-mobilenetv2 | l2d | 71.05 / 73.98 / 68.18 |
| vgg13-mobilenetv2 | 3d | 74.34 / 75.27 / 71.98 |
| resnet32x4-shufflev2 | student | 72.58 / 73.13 / 70.15 |
| resnet32x4-shufflev2 | mld | 72.79 / 73.88 / 70.91 |
| resnet32x4-shufflev2 | l2d | 72.66 / 73.22 / 71.34 |
| resnet32x4-shufflev2 | 3d | 74.98 / 75.82 / 73.59 |
| wrn_40_2-wrn_16_2 | student | 73.19 / 75.68 / 72.17 |
| wrn_40_2-wrn_16_2 | mld | 73.32 / 75.74 / 73.72 |
| wrn_40_2-wrn_16_2 | l2d | 72.98 / 76.89 / 72.03 |
| wrn_40_2-wrn_16_2 | 3d | 76.12 / 77.99 / 74.92 |
| resnet56-resnet20 | student | 69.25 / 71.45 / 66.28 |
| resnet56-resnet20 | mld | 70.28 / 72.46 / 67.29 |
| resnet56-resnet20 | l2d | 71.45 / 73.09 / 67.54 |
| resnet56-resnet20 | 3d | 74.37 / 75.66 / 69.55 |
| resnet34-resnet101 | student | 73.98 / 75.01 / 70.12 |
| resnet34-resnet101 | mld | 74.64 / 75.78 / 71.10 |
| resnet34-resnet101 | l2d | 75.51 / 76.25 / 71.75 |
| resnet34-resnet101 | 3d | 77.48 / 77.63 / 72.42 |

    python -m experiments.main --config=configs/ml_3d/coco.py:pair=resnet56-resnet20,method=3d,teacher_pretrained=DIR,student_pretrained=DIR --workdir=W
    python -m experiments.main --config=configs/ml_3d/coco.py:pair=resnet56-resnet20,method=l2d,teacher_checkpoint=T/teacher/checkpoints,student_pretrained=DIR --workdir=W
"""
from configs.ml_3d import common as ml_3d


def get_config(arg=None):
    return ml_3d.get_config_for("coco", ml_3d.parse(arg, default_pair="resnet56-resnet20"))
