"""Srinivas & Fleuret (ICML 2018) Table 2: noise robustness of VGG-9 on CIFAR-100 with a Jacobian-norm penalty.

`:lam=<lambda>` trains CE + lambda * ||grad_x z_y||^2 (kdjax default output: the true-class logit; the paper does
not say which output) for lambda in {0, 0.1, 1, 10}; `:row=l2` trains with L2 weight decay 1e-3
(PyTorch-style coupled decay in Adam) and `:row=dropout` with dropout 0.25 on the pooled features (placement not
stated in the paper). Every run is evaluated with Gaussian noise of std 0, 0.1, 0.2, 0.3, 0.4 added to the
normalised test images (`eval/accuracy_noise_<std>`).
Paper (clean / 0.1 / 0.2 / 0.3 / 0.4): lambda 0: 64.78 / 61.9 / 47.53 / 29.63 / 17.69; 0.1: 65.62 / 63.36 / 53.57 /
37.38 / 23.99; 1: 63.59 / 62.66 / 57.53 / 47.48 / 35.43; 10: 61.37 / 60.78 / 58.28 / 52.82 / 44.96;
l2: 66.92 / 60.41 / 39.93 / 23.32 / 13.76; dropout: 66.8 / 61.53 / 44.34 / 26.70 / 15.77.
Recipe: Adam 1e-3 -> 1e-4 at epoch 400 of 500, batch 128, no augmentation (Sec 10.3). Last-epoch accuracy.
Runtime (estimate, not measured here): about 4 h (lambda 0) to 10 h (lambda > 0, double backprop) on one A100.

    python -m experiments.main --config=configs/jacobian_matching/cifar100_table2.py:lam=1.0 --workdir=W/lam1
    python -m experiments.main --config=configs/jacobian_matching/cifar100_table2.py:row=dropout --workdir=W/dropout
"""
from configs import common
from configs.jacobian_matching import common as jm

SIGMAS = (0.0, 0.1, 0.2, 0.3, 0.4)
ROWS = ("jacobian", "l2", "dropout")


def noise_evals(seed: int) -> dict:
    """Top-1 on clean test images and under Gaussian noise of each std (the same noise draws for every model)."""
    return {"eval": dict(type="classification", noise_sigmas=SIGMAS, noise_seed=seed)}


def get_config(arg=None):
    arg = common.parse_arg(arg, runlocal=False, seed=0, lam=0.0, row="jacobian")
    if arg.row not in ROWS:
        raise ValueError(f"row={arg.row!r}; valid: {ROWS}")
    config = common.base_config(seed=arg.seed)
    config.batch_size = 128
    config.eval_batch_size = 512
    config.log_every_steps = 100
    config.eval_every_epochs = 10.0
    config.checkpoint.every_steps = 2000
    config.data = common.data_block("cifar100")
    optimizer, schedule = jm.adam_500_epochs()
    model = dict(name="vgg9")
    losses = {"ce": dict(weight=1.0)}
    if arg.row == "jacobian" and arg.lam:
        losses["jacobian_norm"] = dict(weight=arg.lam, output="label")
    if arg.row == "l2":
        optimizer["weight_decay"] = 1e-3
    if arg.row == "dropout":
        model["dropout"] = 0.25
    config.stages.model = common.stage(model, losses, optimizer=optimizer, schedule=schedule, num_epochs=500,
                                       evals=noise_evals(arg.seed))
    config.stage_order = ("model",)
    if arg.runlocal:
        common.runlocal(config)
    return config
