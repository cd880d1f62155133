"""Offline analogue of Srinivas & Fleuret (ICML 2018) Table 2 on Fashion-MNIST: Jacobian-norm penalty and noise robustness.

VGG-9 at width 0.25 on 32x32 Fashion-MNIST (resized), CE + lambda * ||grad_x z_y||^2 for `:lam=<lambda>`, trained
on 500 images per class (5,000 images) for 6 epochs at batch 128 with Adam 1e-3 -> 1e-4 at epoch 5, no
augmentation; evaluated with Gaussian noise of std 0, 0.1, 0.2, 0.3, 0.4 on the normalised test images.
Runtime on 2 CPU cores: 1-3 minutes per lambda.

    python -m experiments.main --config=configs/jacobian_matching/fashion_mnist_table2.py:lam=1.0 --workdir=W/lam1
"""
from configs import common
from configs.jacobian_matching import cifar100_table2


def get_config(arg=None):
    arg = common.parse_arg(arg, runlocal=False, seed=0, lam=0.0)
    config = common.base_config(seed=arg.seed)
    config.batch_size = 128
    config.eval_batch_size = 1000
    config.log_every_steps = 50
    config.eval_every_epochs = 1e9
    config.checkpoint.every_steps = 1000
    config.data = common.data_block("fashion_mnist", train="resize(32)", eval="resize(32)", per_class=500)
    losses = {"ce": dict(weight=1.0)}
    if arg.lam:
        losses["jacobian_norm"] = dict(weight=arg.lam, output="label")
    config.stages.model = common.stage(dict(name="vgg9", width=0.25), losses, optimizer=common.adam(),
                                       schedule=common.multistep(1e-3, (5,)), num_epochs=6,
                                       evals=cifar100_table2.noise_evals(arg.seed))
    config.stage_order = ("model",)
    if arg.runlocal:
        common.runlocal(config)
    return config
