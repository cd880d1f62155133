"""The offline versions of Srinivas & Fleuret (ICML 2018) Tables 1 and 2 as sweeps.

- `:table=1`: configs/jacobian_matching/fashion_mnist_table1.py, every Table 1 row (`method=`) x 1, 5, 10 and 50
  images per class x seeds 0-2; each seed's VGG-9 teacher is trained once and shared by its students; the
  seed-paired difference is to the CE student.
- `:table=2`: configs/jacobian_matching/fashion_mnist_table2.py, the Jacobian-norm penalty for lambda in {0, 0.1, 1,
  10} x seeds 0-1, with test top-1 under Gaussian noise (sigma 0.1-0.4).

    python -m experiments.sweep --sweep=configs/jacobian_matching/offline_study.py:table=1 --workdir=W/table1
    python -m experiments.sweep --sweep=configs/jacobian_matching/offline_study.py:table=2 --workdir=W/table2

Runtime on 2 CPU cores: a teacher about 4 minutes, a Table 1 student 0.5-1.5 minutes, a Table 2 cell 1-3 minutes
(configs/jacobian_matching/README.md).
"""
import ml_collections

from configs import common
from configs.jacobian_matching import common as jm

NOISE = tuple(f"eval/accuracy_noise_{s}" for s in (0.1, 0.2, 0.3, 0.4))


def get_sweep(arg=None):
    arg = common.parse_arg(arg, runlocal=False, table=1)
    local = ":runlocal" if arg.runlocal else ""
    if arg.table == 1:
        return ml_collections.ConfigDict(dict(
            config="configs/jacobian_matching/fashion_mnist_table1.py" + local, seeds=(0, 1, 2),
            grid={"method": tuple(jm.TABLE1_ROWS), "per_class": (1, 5, 10, 50)}, baseline="method=ce",
            stages=("student",)))
    if arg.table == 2:
        return ml_collections.ConfigDict(dict(
            config="configs/jacobian_matching/fashion_mnist_table2.py" + local, seeds=(0, 1),
            grid={"lam": (0, 0.1, 1, 10)}, baseline="lam=0", metrics=NOISE))
    raise ValueError(f"Unknown table {arg.table}; valid: 1, 2")
