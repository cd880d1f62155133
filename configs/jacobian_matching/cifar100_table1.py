"""Srinivas & Fleuret (ICML 2018) Table 1: VGG-9 -> VGG-4 on CIFAR-100 few-shot subsets.

One cell per launch: `:method=<row>,per_class=<n>` with rows ce, ce_act, ce_jac, ce_act_jac, act, act_jac
(CE / activation matching / Jacobian matching weights alpha, beta, gamma in {0, 1}, Sec 10.2) and n in
{1, 5, 10, 50, 100, 500}. Paper numbers (test top-1 %): see `common.TABLE1_PAPER`, e.g. ce_act_jac at 10/class
39.55, ce at 10/class 20.03, ce_act at 500/class 56.65; the VGG-9 teacher reaches 64.78.
Protocol: teacher VGG-9 on the full train split; student VGG-4 on a class-balanced subset drawn from the seed
(`subset_seed` defaults to `seed`); Adam 1e-3 -> 1e-4 at epoch 400 of 500, batch 128 (capped at the subset size,
a multiple of 8); no augmentation, mdistiller normalisation (the paper states no augmentation).
Activation matching = per-example sum of squared logit differences; Jacobian matching = squared distance of the
true-class input gradients (unnormalised), BatchNorm on running statistics inside the Jacobian term. Report the
last-epoch top-1 (`final_accuracy`), mean over seeds.
Runtime (estimate, not measured here): teacher about 4 h on one A100-class GPU; a student cell from minutes
(1/class) to about 5 h (500/class, with Jacobian terms about 3x a plain step).

    python -m experiments.main --config=configs/jacobian_matching/cifar100_table1.py --workdir=W --stage=teacher
    python -m experiments.main --config=configs/jacobian_matching/cifar100_table1.py:method=ce_act_jac,per_class=10,teacher_checkpoint=W/teacher/checkpoints --workdir=W/ce_act_jac_10
"""
from configs import common
from configs.jacobian_matching import common as jm


def get_config(arg=None):
    arg = common.parse_arg(arg, runlocal=False, seed=0, method="ce_act_jac", per_class=10, teacher_checkpoint="")
    if arg.per_class not in jm.PER_CLASS:
        raise ValueError(f"per_class={arg.per_class}; valid: {jm.PER_CLASS}")
    config = common.base_config(seed=arg.seed)
    config.batch_size = jm.few_shot_batch_size(arg.per_class, 100)
    config.eval_batch_size = 512
    config.log_every_steps = 100
    config.eval_every_epochs = 10.0
    config.checkpoint.every_steps = 2000
    config.data = common.data_block("cifar100")
    jm.table1_stages(config, method=arg.method, per_class=arg.per_class, teacher_epochs=500, student_epochs=500,
                     teacher_model=dict(name="vgg9"), student_model=dict(name="vgg4"),
                     teacher_checkpoint=arg.teacher_checkpoint)
    config.stages.teacher.data = dict(per_class=None)
    if arg.runlocal:
        common.runlocal(config)
    return config
