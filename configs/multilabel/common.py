"""L2D's multi-label training recipe (Yang et al., ICCV 2023; reference: penghui-yang/L2D main.py, learner.py,
tools/add_weight_decay.py, configs/coco/*.py), shared by the multi-label configs.

- task loss: BCE summed over the batch and the labels (`focal` with gamma 0);
- Adam (beta2 0.999, eps 1e-8) with coupled L2 decay 1e-4 on parameters with ndim > 1 only (biases and norms 0);
- OneCycle stepped every iteration: max LR 1e-4, pct_start 0.2, cosine, div 25, final div 1e4, beta1 cycled
  0.95 -> 0.85 -> 0.95; `cycle_epochs` > `num_epochs` stops mid-cycle (L2D's teachers: an 80-epoch cycle stopped
  after 30, `stop_epoch_t = 30`);
- batch 64, 224 x 224 inputs in [0, 1] (no normalisation); the ML-Decoder head (`head='ml_decoder'`).
"""
from configs import common

WEIGHT_DECAY = 1e-4


def optimizer() -> dict:
    return dict(name="adam", b1=0.95, b2=0.999, eps=1e-8, weight_decay=WEIGHT_DECAY, exclude_1d_from_decay=True)


def schedule(max_lr: float = 1e-4, cycle_epochs: float | None = None) -> dict:
    return dict(name="onecycle", base_lr=max_lr, pct_start=0.2, div_factor=25.0, final_div_factor=1e4,
                cycle_epochs=cycle_epochs, momentum=(0.95, 0.85))


def bce() -> dict:
    return {"bce": dict(term="focal", gamma=0.0, weight=1.0)}


def l2d_stage(model: dict, *, max_lr: float = 1e-4, num_epochs: float, cycle_epochs: float | None = None,
              losses: dict | None = None, teacher: dict | None = None, evals: dict | None = None):
    return common.stage(model, losses or bce(), optimizer=optimizer(), schedule=schedule(max_lr, cycle_epochs),
                        num_epochs=num_epochs, teacher=teacher, evals=evals)
