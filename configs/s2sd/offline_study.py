"""The offline S2SD study as a sweep: configs/s2sd/fashion_mnist.py with the multi-similarity and margin losses
alone (`variant=base`) and with DSD, MSD and MSDF, seeds 0-2, the same 1,000-step budget; `:ablation=attached` is
the supplement's Table 15 ablation, DSD with the distillation reaching the branches (`variant=dsd_attached`). Per
cell R@1 (headline), MAP@R and NMI on the evaluation classes 5-9, with the seed-paired difference to the base loss.

    python -m experiments.sweep --sweep=configs/s2sd/offline_study.py --workdir=W
    python -m experiments.sweep --sweep=configs/s2sd/offline_study.py:ablation=attached --workdir=W

Runtime on 2 CPU cores: about 3 minutes per cell, 170 minutes of stage time for the 28 cells in
configs/s2sd/README.md.
"""
import ml_collections

from configs import common

ABLATIONS = {"": ("base", "dsd", "msd", "msdf"), "attached": ("base", "dsd_attached")}


def get_sweep(arg=None):
    arg = common.parse_arg(arg, runlocal=False, ablation="")
    if arg.ablation not in ABLATIONS:
        raise ValueError(f"Unknown ablation {arg.ablation!r}; valid: {', '.join(repr(a) for a in ABLATIONS)}")
    return ml_collections.ConfigDict(dict(
        config="configs/s2sd/fashion_mnist.py" + (":runlocal" if arg.runlocal else ""), seeds=(0, 1, 2),
        grid={"loss": ("multisimilarity", "margin"), "variant": ABLATIONS[arg.ablation]}, baseline="variant=base",
        metrics=("eval/map_at_r", "eval/nmi")))
