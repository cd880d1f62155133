"""S2SD on CUB-200-2011 (supplement Tables 4-6, 12): `:loss=<margin|rmargin|multisimilarity|proxyanchor>,variant=<base|dsd|dsda|msd|msda|msdf|msdfa>,seed=N`.

The configs/dml/cub200.py baseline (frozen-BN ResNet-50, 128-d, Adam 1e-5, class-balanced batches of 112) with its
loss wrapped by the `s2sd` term: target branches Linear(2048 -> d) -> ReLU -> Linear(d -> d) on the pooled feature
(DSD d = 2048; MSD d = 512, 1024, 1536, 2048; "A" adds global max pooling; "F" distils the detached pooled-feature
similarities with weight `feat_weight` from step 1000), T = 1, gamma = 50 (`gamma=` for the Table 12 ablation;
with multisimilarity DSD the config states that table's number), MLPs at the base LR without weight decay, every
branch with its own criterion (own beta / proxies). `detach_targets=False` is Table 15's ablation (variant=dsda or
msda, multisimilarity: 65.08 / 65.34 R@1 against 66.51 / 66.96 detached).
Published R@1 of each cell: `config.info.published_recall_at_1` (Table 4; ProxyAnchor: Table 6, whose BN-Inception
/ 512-d setting this ResNet-50 recipe does not match), NMI: `config.info.published_nmi` (Table 4),
mAP@1000: `config.info.published_map_at_1000` (Table 5).
Protocol: max over epochs of each metric, mean ± std of 5 seeds (`python -m experiments.reproduce ...
--seeds=0,1,2,3,4`); evaluation as configs/dml.
Runtime (estimate, not measured here): 3-5 h on one A100-class GPU (MSD adds four MLP branches to the step).

    python -m experiments.main --config=configs/s2sd/cub200.py:loss=multisimilarity,variant=msdfa,pretrained=$HOME/kdjax/resnet50_imagenet --workdir=W/cub200_ms_msdfa
"""
from configs.s2sd import common as s2sd


def get_config(arg=None):
    return s2sd.tfds_config("cub200", s2sd.parse(arg))
