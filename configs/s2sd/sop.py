"""S2SD on Stanford Online Products (supplement Tables 4-6, 12; margin beta starts at 0.9 and F weighs 5, the SOP sample run): `:loss=<margin|rmargin|multisimilarity|proxyanchor>,variant=<base|dsd|dsda|msd|msda|msdf|msdfa>,seed=N`.

The configs/dml/sop.py baseline (frozen-BN ResNet-50, 128-d, Adam 1e-5, class-balanced batches of 112) with its
loss wrapped by the `s2sd` term: target branches Linear(2048 -> d) -> ReLU -> Linear(d -> d) on the pooled feature
(DSD d = 2048; MSD d = 512, 1024, 1536, 2048; "A" adds global max pooling; "F" distils the detached pooled-feature
similarities with weight `feat_weight` from step 1000), T = 1, gamma = 50 (`gamma=` for the Table 12 ablation;
with multisimilarity DSD the config states that table's number), MLPs at the base LR without weight decay, every
branch with its own criterion (own beta / proxies). The first epoch (`mlp_warmup_epochs=1`; `=0` turns it off) warms
up the MLPs, the embedding head and the criterion parameters with the backbone held fixed; the `base` rows (the
configs/dml recipe) have no branches and no warm-up.
Published R@1 of each cell: `config.info.published_recall_at_1` (Table 4; ProxyAnchor: Table 6, whose BN-Inception
/ 512-d setting this ResNet-50 recipe does not match), NMI: `config.info.published_nmi` (Table 4),
mAP@1000: `config.info.published_map_at_1000` (Table 5).
Protocol: max over epochs of each metric, mean ± std of 5 seeds (`python -m experiments.reproduce ...
--seeds=0,1,2,3,4`); evaluation as configs/dml.
Runtime (estimate, not measured here): 3-5 h on one A100-class GPU (MSD adds four MLP branches to the step).

    python -m experiments.main --config=configs/s2sd/sop.py:loss=multisimilarity,variant=msdf,pretrained=$HOME/kdjax/resnet50_imagenet --workdir=W/sop_ms_msdf
"""
from configs.s2sd import common as s2sd


def get_config(arg=None):
    return s2sd.tfds_config("sop", s2sd.parse(arg, variant="msdf", beta_init=0.9, feat_weight=5.0,
                                              mlp_warmup_epochs=1.0))
