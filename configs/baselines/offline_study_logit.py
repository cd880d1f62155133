"""The logit methods of today on the Fashion-MNIST mini-benchmark, as a sweep: configs/baselines/fashion_mnist.py
for KD, DKD, MLLD and CTKD each without and with logit standardization (Sun et al., CVPR 2024), and DIST (Huang et
al., NeurIPS 2022), x seeds 0-2; one teacher per seed shared by that seed's students; the seed-paired difference is
to KD (`method=kd,logit_stand=False`). The grid is a list: DIST has no standardized form.

    python -m experiments.sweep --sweep=configs/baselines/offline_study_logit.py --workdir=W

Runtime on 2 CPU cores: 3 teachers of about 5 minutes and 27 students of 1.5-4 minutes, about 1.5 hours
(configs/baselines/README.md).
"""
import ml_collections

from configs import common
from configs.baselines import cifar100


def get_sweep(arg=None):
    arg = common.parse_arg(arg, runlocal=False)
    return ml_collections.ConfigDict(dict(
        config="configs/baselines/fashion_mnist.py" + (":runlocal" if arg.runlocal else ""), seeds=(0, 1, 2),
        grid=[{"method": cifar100.LOGIT_METHODS, "logit_stand": (False, True)},
              {"method": ("dist",), "logit_stand": (False,)}],
        baseline="method=kd,logit_stand=False", stages=("student",)))
