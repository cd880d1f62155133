"""The offline study of 3D (Li & Cheng) as a sweep: configs/ml_3d/fashion_mnist_mosaic.py for every `variant` (the
student alone, MLD, L2D, PS, 3D and 3D's open choices: swapped weights, NDD on an image's two views and its control)
x seeds 0-2: one mosaic teacher per seed, shared by that seed's students; mAP (headline), OF1 and CF1, with the
seed-paired difference to the student alone.

    python -m experiments.sweep --sweep=configs/ml_3d/offline_study.py --workdir=W

Runtime on 2 CPU cores: a teacher about 10 minutes, a student 6-9 minutes; 211 minutes of stage time for the
cells in configs/ml_3d/README.md; the variants of the open choices (`3d_two_views`, `focal`, `3d_linear_head`,
`3d_bound_sum`, `l2d_768`) add about 40 minutes a seed on idle cores (`l2d_768` 17 of them), the linear-head control
(`student_linear_head`) 4; their 3-seed table is the README's second.
"""
import ml_collections

from configs import common
from configs.ml_3d import fashion_mnist_mosaic


def get_sweep(arg=None):
    arg = common.parse_arg(arg, runlocal=False)
    return ml_collections.ConfigDict(dict(
        config="configs/ml_3d/fashion_mnist_mosaic.py" + (":runlocal" if arg.runlocal else ""), seeds=(0, 1, 2),
        grid={"variant": tuple(fashion_mnist_mosaic.VARIANTS)}, baseline="variant=student",
        metrics=("eval/OF1", "eval/CF1")))
