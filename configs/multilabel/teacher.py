"""Multi-label teachers of the 3D paper's Tables B.1-B.3 (Li & Cheng; L2D's recipe, Yang et al., ICCV 2023;
reference: penghui-yang/L2D), one network trained alone with L2D's recipe:

ML-Decoder head (768 wide, frozen queries, group FC) on the backbone's last feature map, BCE summed over the batch
and labels, Adam (coupled decay 1e-4 on ndim > 1), OneCycle per iteration (max LR 1e-4, pct_start 0.2, beta1
0.95 -> 0.85 -> 0.95) built for 80 epochs and stopped after 30 (L2D's teacher), batch 64, 224 x 224 inputs in [0, 1]
(no normalisation), train view flip -> CutoutPIL(0.5) -> RandAugment (pip randaugment 1.0.2); evaluation: mAP, OF1,
CF1 in L2D's convention (and ML-GCN's), and the supplement's Table C.4 statistics on the train split.
ImageNet backbones start from converted torchvision / timm weights (`:pretrained=DIR`, see
`experiments/convert_imagenet.py`); the CIFAR-style backbones of Table B.1 (VGG13, ResNet32x4, WRN-40-2, ResNet56)
have no public ImageNet weights and start from scratch at 224 px (kdjax's choice: the supplement says every model is
ImageNet-pretrained without saying where these came from).

| cell | command args | published mAP / OF1 / CF1 |
|---|---|---|
| B.1 VGG13 | dataset=coco,model=vgg13 | 74.08 / 75.05 / 72.20 |
| B.1 ResNet32x4 | dataset=coco,model=resnet32x4 | 79.44 / 79.04 / 75.98 |
| B.1 WRN-40-2 | dataset=coco,model=wrn_40_2 | 75.42 / 77.11 / 74.68 |
| B.1 ResNet56 | dataset=coco,model=resnet56 | 72.18 / 74.26 / 68.09 |
| B.2 ResNet50 | dataset=voc,model=resnet50,pretrained=DIR | 86.73 / 84.92 / 81.21 |
| B.2 Swin-T | dataset=voc,model=swin_t,pretrained=DIR | 91.43 / 89.81 / 87.63 |
| B.3 ResNet34 | dataset=coco,model=resnet34,pretrained=DIR | 70.19 / 72.30 / 66.50 |
| main ResNet101 | dataset=coco,model=resnet101,pretrained=DIR | (main paper) |

`--config.compute_dtype=bfloat16` runs the forward passes in bf16 (L2D: fp16 autocast; losses stay float32).
Runtime on one GPU (not measured: no GPU was available to kdjax's authors): COCO 30 epochs of 1,282 steps, VOC 30 of 78; on 2 CPU cores only the
`:runlocal` smoke test (2 steps at 64 px, about a minute) is practical.

    python -m experiments.main --config=configs/multilabel/teacher.py:dataset=voc,model=resnet50,pretrained=$HOME/kdjax/resnet50_imagenet --workdir=W
    python -m experiments.main --config=configs/multilabel/teacher.py:dataset=coco,model=vgg13 --workdir=W
"""
from configs import common
from configs.multilabel import common as multilabel


def get_config(arg=None):
    arg = common.parse_arg(arg, runlocal=False, seed=0, dataset="voc", model="resnet50", pretrained="",
                           nus_wide_root="")
    return multilabel.one_network_config(
        arg, stage="teacher", num_epochs=multilabel.TEACHER_EPOCHS, cycle_epochs=multilabel.TEACHER_CYCLE_EPOCHS,
        published=multilabel.PUBLISHED_TEACHERS,
        evals={"eval": dict(type="multilabel"),
               "train_stats": dict(type="teacher_stats", split="train", every_epochs=1e9)})
