"""Offline S2SD on Fashion-MNIST (Debian `dataset-fashion-mnist`): configs/dml/fashion_mnist.py (ResNet-8, 64-d
embedding, classes 0-4 train / 5-9 retrieve, 1,000 steps of class-balanced batches of 112, Adam 1e-3) with its loss
wrapped by S2SD: `:loss=<multisimilarity|margin|rmargin|proxyanchor>,variant=<base|dsd|dsda|msd|msda|msdf|msdfa>`;
a variant ending in `_attached` (`dsd_attached`) lets the distillation reach the branches (`detach_targets=False`).

Not a reproduction of a published number: the supplement's claims (S2SD improves every base loss; F adds on top)
at CPU size. Branch widths scale with the backbone's 64-d pooled feature as the paper's with ResNet-50's 2048
(DSD 64; MSD 16, 32, 48, 64), T = 1, gamma = 50, F from step 130 (the paper's 1,000 of ~7,800 CUB steps), weight 50.
Report the last evaluation (R@1, MAP@R, NMI); `branch_metrics=True` adds those of each target branch and of the
normalised pooled feature (`eval/s2sd/target_<k>/...`, `eval/s2sd/pooled/...`). `mlp_warmup_epochs` (default 0) holds the backbone still
meanwhile, as configs/s2sd/sop.py does. Runtime on 2 CPU cores: about 3 minutes (MSD variants a little more).

    python -m experiments.main --config=configs/s2sd/fashion_mnist.py:loss=multisimilarity,variant=msdf --workdir=W/ms_msdf
"""
from configs import common
from configs.dml import fashion_mnist as dml_fashion_mnist
from configs.s2sd import common as s2sd

FEATURE_DIM = 64  # ResNet-8's pooled feature
DIMS = {"dsd": (64,), "dsda": (64,), "msd": (16, 32, 48, 64), "msda": (16, 32, 48, 64),
        "msdf": (16, 32, 48, 64), "msdfa": (16, 32, 48, 64)}


def get_config(arg=None):
    arg = common.parse_arg(arg, runlocal=False, seed=0, loss="multisimilarity", variant="msdf", lr=1e-3, gamma=50.0,
                           temperature=1.0, feat_weight=50.0, feat_delay=130, mlp_warmup_epochs=0.0,
                           detach_targets=True, branch_metrics=False)
    if arg.variant.endswith("_attached"):  # Table 15's ablation: the distillation reaches the branches
        arg.variant, arg.detach_targets = arg.variant.removesuffix("_attached"), False
    s2sd.check_variant(arg.variant)
    config = dml_fashion_mnist.get_config(f"runlocal={arg.runlocal},seed={arg.seed},loss={arg.loss},lr={arg.lr}")
    (name, options), = config.stages.model.losses.items()
    base_options = {k: v for k, v in options.to_dict().items() if k != "weight"}
    losses = s2sd.s2sd_losses(arg.loss, arg.variant, base_options=base_options, gamma=arg.gamma,
                              temperature=arg.temperature, feat_weight=arg.feat_weight, feat_delay=arg.feat_delay,
                              target_dims=DIMS.get(arg.variant), detach_targets=arg.detach_targets)
    opt = config.stages.model.optimizer.to_dict()
    opt["groups"] = {**opt["groups"], **_all_dml_groups(arg.lr)}
    config.stages.model.losses = losses
    config.stages.model.optimizer = s2sd.s2sd_groups(opt, losses, mlp_lr=arg.lr,
                                                     mlp_warmup_epochs=arg.mlp_warmup_epochs)
    if arg.branch_metrics:
        config.evals.eval.term_heads = True
    return config


def _all_dml_groups(lr):
    from configs.dml import common as dml
    return dml.optimizer(base_lr=lr, weight_decay=0.0, margin_beta_lr=5e-4)[0]["groups"]
