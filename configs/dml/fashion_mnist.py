"""Offline deep metric learning on Fashion-MNIST (Debian `dataset-fashion-mnist`; no download): train on classes
0-4 (T-shirt, trouser, pullover, dress, coat; 30,000 training images), retrieve classes 5-9 (sandal, shirt, sneaker,
bag, ankle boot; the 5,000 test images of those classes), the Revisiting-DML protocol at CPU size.

Not a reproduction of a published number: the kdjax side of the comparison with PyTorch + pytorch-metric-learning
in configs/dml/README.md (benchmarks/dml_reference.py trains the same network, loss, sampler and budget).
`:loss=<multisimilarity|margin|rmargin|proxyanchor>` (default multisimilarity, alpha 2, beta 40, base 0.5,
epsilon 0.1). Model: the CIFAR ResNet-8 (16-16-32-64 channels) from scratch, Linear(64 -> 64) + L2 normalisation.
1,000 steps of class-balanced batches of 112 (56 classes drawn with replacement, 2 images each; with 5 training
classes every batch holds every class), Adam 1e-3, no weight decay, RandomCrop(28, pad 2) + flip; retrieval on
the evaluation classes every epoch (R@1/2/4/8, MAP@R, mAP@1000, NMI) and after the last step; report the last.
Runtime on 2 CPU cores: about 2 minutes.

    python -m experiments.main --config=configs/dml/fashion_mnist.py:loss=multisimilarity --workdir=W/ms_seed0
"""
from configs import common
from configs.dml import common as dml

STEPS = 1000
EMBEDDING_DIM = 64


def get_config(arg=None):
    arg = common.parse_arg(arg, runlocal=False, seed=0, loss="multisimilarity", lr=1e-3)
    config = common.base_config(seed=arg.seed, task="metric_learning")
    config.batch_size = 112
    config.eval_batch_size = 1000
    config.log_every_steps = 100
    config.eval_every_epochs = 1.0
    config.checkpoint.every_steps = 1000
    config.data = common.data_block("fashion_mnist", train="pad_crop(2)|flip")
    config.data.train_classes, config.data.eval_classes = (0, 5), (5, 10)
    config.data.expect = dict(train=(5, 30000), eval=(5, 5000))
    config.data.sampler, config.data.samples_per_class = "class_balanced", 2
    config.evals = {"eval": dict(type="retrieval", ks=(1, 2, 4, 8))}
    losses = dml.loss_block(arg.loss, p_switch=0.4)
    opt, _ = dml.optimizer(base_lr=arg.lr, weight_decay=0.0, margin_beta_lr=5e-4)
    config.stages.model = common.stage(dict(name="resnet8", embedding_dim=EMBEDDING_DIM), losses,
                                       optimizer=dml.used_groups(opt, losses),
                                       schedule=dict(name="constant", base_lr=arg.lr), num_epochs=1)
    config.stages.model.num_steps = STEPS
    config.stage_order = ("model",)
    if arg.runlocal:
        common.runlocal(config)
        config.batch_size = 16  # 8 classes of 2 when sampled; still divisible by the 8 test devices
    return config
