"""Stanford Online Products, Revisiting-DML baselines (S2SD supplement Table 4 baseline rows): `:loss=<margin|rmargin|multisimilarity|proxyanchor>,seed=N`.

Published R@1 (mean of 5 seeds, max over epochs): Margin / R-Margin / Multisimilarity 78.43 / 77.58 / 77.99
(`config.info.published_recall_at_1`; ProxyAnchor has no baseline row there).
Data: TFDS `stanford_online_products`, 59,551 / 60,502 images of 11,318 / 11,316 classes (its own split); RandomResizedCrop(224) + flip, evaluation Resize(256) + CenterCrop(224),
ImageNet normalisation, grayscale images as RGB. Class-balanced batches of 112 (Roth's class_random sampler: 56
classes drawn with replacement, 2 images each), 531 steps per epoch.
Model: ImageNet ResNet-50 with frozen BatchNorm, Linear(2048 -> 128) + L2 normalisation; `pretrained=DIR` loads
torchvision's ImageNet weights converted by `python -m experiments.convert_imagenet --arch resnet50
--headless --weights resnet50-0676ba61.pth --out DIR` (without it the backbone starts random). Adam 1e-5 with coupled
weight decay 3e-4 (the supplement; `weight_decay=4e-4` is the reference code's default), the margin's beta at 5e-4 (`margin_beta_lr`), the
proxies at 2e-2, no schedule. Margin beta starts at 1.2 (`beta_init`).
Protocol: every epoch R@1/2/4/8, NMI, MAP@R and mAP@1000 on the evaluation classes, pi_ratio and rho on the
training classes; report the max over epochs of each metric (`results.json` best values) and the last epoch,
mean ± std of 5 seeds (`python -m experiments.reproduce ... --seeds=0,1,2,3,4`).
Runtime (estimate, not measured here): 12-16 h on one A100-class GPU.

    python -m experiments.main --config=configs/dml/sop.py:loss=multisimilarity,pretrained=$HOME/kdjax/resnet50_imagenet --workdir=W/sop_ms
"""
from configs import common
from configs.dml import common as dml


def get_config(arg=None):
    arg = common.parse_arg(arg, runlocal=False, seed=0, loss="multisimilarity", pretrained="", beta_init=1.2,
                           weight_decay=3e-4, margin_beta_lr=5e-4)
    config = dml.tfds_config("sop", arg)
    return dml.runlocal(config) if arg.runlocal else config
