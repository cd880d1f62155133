"""The offline ICD study as a sweep: configs/icd/fashion_mnist.py for lambda in {0, 0.01, 0.02, 0.03, 0.3} x seeds
0-2 (a VGG-8 teacher on the full split, then a VGG-4 KD student and a KD + RKD student on 100 images per class from
it). Per teacher: test top-1, the spread of its soft labels at T = 4 (`soft_labels/intra_class_distance`,
`soft_labels/non_target_entropy`) and the examples that fired in L_intra per batch (`icd/fired_per_example`); per
student: test top-1, with the seed-paired difference to the CE teacher's students (lambda = 0).

    python -m experiments.sweep --sweep=configs/icd/offline_study.py --workdir=W [--parallel=2]

Runtime on 2 CPU cores: about 51 minutes of stage time for the 15 cells (configs/icd/README.md).
"""
import ml_collections

from configs import common


def get_sweep(arg=None):
    arg = common.parse_arg(arg, runlocal=False)
    return ml_collections.ConfigDict(dict(
        config="configs/icd/fashion_mnist.py" + (":runlocal" if arg.runlocal else ""),
        seeds=(0, 1, 2), grid={"lam": (0, 0.01, 0.02, 0.03, 0.3)}, baseline="lam=0",
        metrics=("soft_labels/intra_class_distance", "soft_labels/non_target_entropy", "icd/fired_per_example")))
