"""The offline S2SD study as a sweep: configs/s2sd/fashion_mnist.py with the multi-similarity and margin losses
alone (`variant=base`) and with DSD, MSD and MSDF, seeds 0-2, the same 1,000-step budget; `:ablation=attached` is
the supplement's Table 15 ablation, DSD with the distillation reaching the branches (`variant=dsd_attached`);
`:ablation=gamma` is multi-similarity DSD over the distillation weight gamma in {0, 1, 5, 20, 50} (Table 12's
axis), with the retrieval metrics of the target branch and of the normalised pooled feature (`branch_metrics`),
against gamma = 0. Per cell R@1 (headline), MAP@R and NMI on the evaluation classes 5-9, with the seed-paired
difference to the baseline.

    python -m experiments.sweep --sweep=configs/s2sd/offline_study.py --workdir=W
    python -m experiments.sweep --sweep=configs/s2sd/offline_study.py:ablation=attached --workdir=W
    python -m experiments.sweep --sweep=configs/s2sd/offline_study.py:ablation=gamma --workdir=W

Runtime on 2 CPU cores: about 3 minutes per cell, 170 minutes of stage time for the 28 cells in
configs/s2sd/README.md; the gamma ablation is 15 cells (about 45 minutes).
"""
import ml_collections

from configs import common

ABLATIONS = {"": ("base", "dsd", "msd", "msdf"), "attached": ("base", "dsd_attached"), "gamma": ("dsd",)}
GAMMAS = (0.0, 1.0, 5.0, 20.0, 50.0)


def get_sweep(arg=None):
    arg = common.parse_arg(arg, runlocal=False, ablation="")
    if arg.ablation not in ABLATIONS:
        raise ValueError(f"Unknown ablation {arg.ablation!r}; valid: {', '.join(repr(a) for a in ABLATIONS)}")
    config = "configs/s2sd/fashion_mnist.py" + (":runlocal" if arg.runlocal else "")
    if arg.ablation == "gamma":
        return ml_collections.ConfigDict(dict(
            config=config, seeds=(0, 1, 2), grid={"gamma": GAMMAS}, baseline="gamma=0.0",
            set={"loss": "multisimilarity", "variant": "dsd", "branch_metrics": True},
            metrics=("eval/map_at_r", "eval/nmi", "eval/s2sd/target_0/recall@1", "eval/s2sd/pooled/recall@1")))
    return ml_collections.ConfigDict(dict(
        config=config, seeds=(0, 1, 2),
        grid={"loss": ("multisimilarity", "margin"), "variant": ABLATIONS[arg.ablation]}, baseline="variant=base",
        metrics=("eval/map_at_r", "eval/nmi")))
