"""The Fashion-MNIST mini-benchmark of the KD zoo as a sweep: configs/baselines/fashion_mnist.py for every method
(`method=`) x seeds 0-2: one teacher per seed, shared by that seed's students, every student with the same pair and
step budget; the seed-paired difference is to the student alone (`method=ce`).

    python -m experiments.sweep --sweep=configs/baselines/offline_study.py --workdir=W

Runtime on 2 CPU cores: a teacher about 5 minutes, a student 1.5-4 minutes (configs/baselines/README.md).
"""
import ml_collections

from configs import common
from configs.baselines import cifar100


def get_sweep(arg=None):
    arg = common.parse_arg(arg, runlocal=False)
    return ml_collections.ConfigDict(dict(
        config="configs/baselines/fashion_mnist.py" + (":runlocal" if arg.runlocal else ""), seeds=(0, 1, 2),
        grid={"method": tuple(cifar100.METHODS)}, baseline="method=ce", stages=("student",)))
