"""The 3D paper's multi-label distillation on PASCAL VOC 2007 (trainval 5,011 / test 4,952, 20 labels): every cell of the supplement's Table B.2
(Li & Cheng; only the supplement is public, so 3D is kdjax's reconstruction: configs/ml_3d/README.md).

`pair=<teacher>-<student>` (resnet50-repvgg_a0, swin_t-resnet18, resnet50-mobilenet_v2, swin_t-mobilenet_v2), `method=` student, rkd, pkt, reviewkd, mse, ps, l2d, mld,
3d (mdkd: quoted only); L2D's student recipe (80 epochs, Adam OneCycle 1e-4, batch 64, 224 px, flip + CutoutPIL +
RandAugment, ML-Decoder heads), the teacher trained first in the same workdir with L2D's teacher recipe (30 of an
80-epoch cycle) or read from `teacher_checkpoint=DIR` (a configs/multilabel/teacher.py run). ImageNet backbones
start from converted weights (`teacher_pretrained=DIR`, `student_pretrained=DIR`, or `none`; see
configs/multilabel/README.md); the CIFAR-style models of Table B.1 from scratch. Options of 3D: `swap_weights`,
`ndd_pairs=images|views|permutation`, `views=single|weak_strong|both`, and the reconstruction's open choices
`ndd_form=exact|bound`, `ndd_reduction=pairs|global|sum|per_image`, `student_head=ml_decoder|linear`
(configs/ml_3d/common.py); `method=focal`, the task loss alone (a control); `--config.compute_dtype=bfloat16` for bf16 forward passes.
Runtime: one student is 80 epochs (78 steps each) on one GPU (not measured:
no GPU was available to kdjax's authors); on 2 CPU cores only `:runlocal` (2 steps at 64 px) is practical.

Published mAP / OF1 / CF1 (the other methods' rows: configs/ml_3d/README.md and `common.PUBLISHED`):

| pair | method | published |
|---|---|---|
| resnet50-repvgg_a0 | student | 83.79 / 83.36 / 79.83 |
| resnet50-repvgg_a0 | mld | 85.07 / 84.91 / 81.55 |
| resnet50-repvgg_a0 | l2d | 86.26 / 85.85 / 82.55 |
| resnet50-repvgg_a0 | 3d | 87.27 / 86.23 / 82.65 |
| swin_t-resnet18 | student | 84.01 / 83.60 / 79.42 |
| swin_t-resnet18 | mld | 84.61 / 84.26 / 80.78 |
| swin_t-resnet18 | l2d | 85.87 / 85.67 / 82.17 |
| swin_t-resnet18 | 3d | 86.53 / 85.98 / 82.62 |
| resnet50-mobilenet_v2 | student | 86.12 / 85.01 / 81.76 |
| resnet50-mobilenet_v2 | mld | 86.38 / 85.67 / 82.43 |
| resnet50-mobilenet_v2 | l2d | 87.32 / 86.48 / 83.26 |
| resnet50-mobilenet_v2 | 3d | 87.92 / 86.78 / 83.59 |
| swin_t-mobilenet_v2 | student | 86.12 / 85.01 / 81.76 |
| swin_t-mobilenet_v2 | mld | 86.11 / 85.98 / 82.55 |
| swin_t-mobilenet_v2 | l2d | 87.37 / 86.88 / 83.68 |
| swin_t-mobilenet_v2 | 3d | 87.78 / 87.12 / 84.16 |

    python -m experiments.main --config=configs/ml_3d/voc.py:pair=resnet50-repvgg_a0,method=3d,teacher_pretrained=DIR,student_pretrained=DIR --workdir=W
    python -m experiments.main --config=configs/ml_3d/voc.py:pair=resnet50-repvgg_a0,method=l2d,teacher_checkpoint=T/teacher/checkpoints,student_pretrained=DIR --workdir=W
"""
from configs.ml_3d import common as ml_3d


def get_config(arg=None):
    return ml_3d.get_config_for("voc", ml_3d.parse(arg, default_pair="resnet50-repvgg_a0"))
