"""The Revisiting-DML protocol (Roth et al., ICML 2020) as configs: class-split datasets, the frozen-BN ResNet-50 with
a 128-d embedding head, Adam with the published parameter groups, class-balanced batches, retrieval evaluation.
Reference: Confusezius/Revisiting_Deep_Metric_Learning_PyTorch (= MLforHealth/S2SD without the S2SD parts)."""
import ml_collections

from configs import common

LOSSES = ("margin", "rmargin", "multisimilarity", "proxyanchor")
# TFDS builder, splits, class ranges (first half of the classes trains, the second evaluates; SOP has its own
# split), (classes, images) each side must have, epochs, rho-miner p_switch (ResNet backbone, S2SD supplement),
# published R@1 of the baselines (S2SD supplement Table 4, mean of 5 seeds, max over epochs).
DATASETS = {
    "cub200": dict(tfds="caltech_birds2011", train_split="train+test", eval_split="train+test",
                   train_classes=(0, 100), eval_classes=(100, 200), expect=dict(train=(100, 5864), eval=(100, 5924)),
                   epochs=150, p_switch=0.4, published=dict(margin=63.09, rmargin=64.93, multisimilarity=62.80)),
    "cars196": dict(tfds="cars196", train_split="train+test", eval_split="train+test", train_classes=(0, 98),
                    eval_classes=(98, 196), expect=dict(train=(98, 8054), eval=(98, 8131)), epochs=150,
                    p_switch=0.35, published=dict(margin=79.86, rmargin=82.37, multisimilarity=81.68)),
    "sop": dict(tfds="stanford_online_products", train_split="train", eval_split="test", train_classes=None,
                eval_classes=None, expect=dict(train=(11318, 59551), eval=(11316, 60502)), epochs=100,
                p_switch=0.15, published=dict(margin=78.43, rmargin=77.58, multisimilarity=77.99)),
}
RETRIEVAL = {"eval": dict(type="retrieval", ks=(1, 2, 4, 8)),
             # pi_ratio and rho of the training classes (eval transforms), read at the best-R@1 epoch
             "train": dict(type="embedding_space", split="train")}


def loss_block(loss: str, *, p_switch: float, beta_init: float = 1.2) -> dict:
    if loss not in LOSSES:
        raise ValueError(f"Unknown loss {loss!r}; valid losses: {', '.join(LOSSES)}")
    if loss == "margin":
        return {"margin": dict(weight=1.0, margin=0.2, beta_init=beta_init)}
    if loss == "rmargin":
        return {"rmargin": dict(weight=1.0, margin=0.2, beta_init=beta_init, p_switch=p_switch)}
    if loss == "multisimilarity":
        return {"multisimilarity": dict(weight=1.0, alpha=2.0, beta=40.0, base=0.5, epsilon=0.1)}
    return {"proxyanchor": dict(weight=1.0, alpha=32.0, delta=0.1)}


def optimizer(*, base_lr: float = 1e-5, weight_decay: float = 3e-4, margin_beta_lr: float = 5e-4,
              proxy_lr_multiplier: float = 2000.0) -> tuple[dict, dict]:
    """Adam with coupled weight decay (torch Adam) on backbone + head; the margin's beta at its own LR, the proxies
    at base LR x multiplier, both without decay. No LR schedule. Weight decay 3e-4 is the S2SD supplement's (Sec. A,
    "learning rate of 1e-5 and weight decay of 3e-4"); the default of Roth's code, which the supplement says it
    follows (Confusezius/Revisiting_Deep_Metric_Learning_PyTorch parameters.py `--decay`), is 4e-4: the config
    argument `weight_decay=4e-4` runs the code's value. The groups' LRs are parameters.py's."""
    groups = {"margin_beta": dict(pattern=r"^terms/r?margin/beta$", base_lr=margin_beta_lr, weight_decay=0.0),
              "proxies": dict(pattern=r"^terms/proxyanchor/proxies$", lr_mult=proxy_lr_multiplier, weight_decay=0.0)}
    return (dict(name="adam", b1=0.9, b2=0.999, eps=1e-8, weight_decay=weight_decay, exclude_1d_from_decay=False,
                 groups=groups), dict(name="constant", base_lr=base_lr))


def used_groups(optimizer_block: dict, losses: dict) -> dict:
    """Keeps only the groups whose parameters exist (an unused group pattern is an error)."""
    keep = {"margin_beta": any(k in losses for k in ("margin", "rmargin")), "proxies": "proxyanchor" in losses}
    groups = {g: o for g, o in optimizer_block["groups"].items() if keep.get(g, True)}
    return dict(optimizer_block, groups=groups)


def tfds_config(dataset: str, arg) -> ml_collections.ConfigDict:
    """A dataset's baseline config: the frozen-BN ResNet-50 (pretrained weights from `pretrained`, a checkpoint of
    `experiments/convert_imagenet.py --arch resnet50 --headless`) trained with one DML loss."""
    d = DATASETS[dataset]
    config = common.base_config(seed=arg.seed, task="metric_learning")
    config.batch_size = 112
    config.eval_batch_size = 256
    config.log_every_steps = 50
    config.eval_every_epochs = 1.0
    config.checkpoint.every_steps = 1000
    config.data = common.data_block(d["tfds"], train="random_resized_crop(224)|flip", eval="resize(256)|center_crop(224)",
                                    train_split=d["train_split"], eval_split=d["eval_split"], normalization="imagenet")
    config.data.train_classes, config.data.eval_classes = d["train_classes"], d["eval_classes"]
    config.data.expect = d["expect"]
    config.data.sampler, config.data.samples_per_class, config.data.sampler_mode = "class_balanced", 2, "class_random"
    config.evals = RETRIEVAL
    losses = loss_block(arg.loss, p_switch=d["p_switch"], beta_init=arg.beta_init)
    opt, schedule = optimizer(weight_decay=arg.weight_decay, margin_beta_lr=arg.margin_beta_lr)
    config.stages.model = common.stage(dict(name="resnet50", embedding_dim=128, frozen_bn=True), losses,
                                       optimizer=used_groups(opt, losses), schedule=schedule, num_epochs=d["epochs"])
    if arg.pretrained:
        config.stages.model.init_from = arg.pretrained
        config.stages.model.init_allow_random = (r"^params/embedding_head/",)
    config.stage_order = ("model",)
    config.info.published_recall_at_1 = d["published"].get(arg.loss)
    return config


def runlocal(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """common.runlocal at 32 px, with an evaluation set that holds classes with several images each (retrieval
    needs positives): the first 4 evaluation classes, or the first 64 images of a class-sorted split (SOP)."""
    common.runlocal(config)
    config.data.views.image = "random_resized_crop(32)|flip"
    config.data.eval_view = "resize(36)|center_crop(32)"
    if config.data.eval_classes is not None:
        lo = config.data.eval_classes[0]
        config.data.eval_split = config.data.eval_split.split("[")[0]
        config.data.eval_classes = (lo, lo + 4)
    return config

