"""Small configs and utilities shared by the tests."""
import os
import signal
import subprocess
import sys

import ml_collections

from configs import common

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(*, steps: int = 4, batch_size: int = 16, distill: bool = True) -> ml_collections.ConfigDict:
    """Digits at 8x8, a narrow VGG-9 -> VGG-4 pair: compiles and runs in seconds on CPU."""
    config = common.base_config(seed=0)
    config.batch_size = batch_size
    config.eval_batch_size = 64
    config.log_every_steps = 1
    config.eval_every_epochs = 100.0
    config.checkpoint.every_steps = 1
    config.data = common.data_block("digits", train="pad_crop(1)|flip", eval_split="test[:64]")
    opt, sched = common.sgd(), common.multistep(0.05, (1,))
    config.stages.teacher = common.stage(dict(name="vgg4", width=0.125), {"ce": dict(weight=1.0)},
                                         optimizer=opt, schedule=sched, num_epochs=1)
    config.stages.teacher.num_steps = steps
    order = ["teacher"]
    if distill:
        config.stages.student = common.stage(
            dict(name="vgg4", width=0.0625), {"ce": dict(weight=0.1), "kd": dict(weight=0.9, temperature=4.0)},
            optimizer=opt, schedule=sched, num_epochs=1, teacher=dict(stage="teacher"))
        config.stages.student.num_steps = steps
        order.append("student")
    config.stage_order = tuple(order)
    return config


NARROW = 0.125  # real configs with narrow networks: the same code paths at a fraction of the CPU time


def narrow(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Scales every model of a config (stages and checkpoint teachers) to width NARROW, and ML-Decoder heads to
    width 32 (feed-forward 64)."""
    for stage in config.stages.values():
        stage.model.width = NARROW
        if stage.model.get("head") == "ml_decoder":
            stage.model.head_width, stage.model.head_hidden = 32, 64
        if stage.get("teacher") and stage.teacher.model:
            stage.teacher.model.width = NARROW
    return config


def run_python(code_or_args, *, devices: int | None = None, timeout: int = 600, user_env: bool = False,
               env_changes: dict | None = None) -> subprocess.CompletedProcess:
    """Runs python in a subprocess at the repo root (a fresh JAX with its own device count). `user_env`: without
    the test run's TensorFlow log settings, as a user's shell would start it. `env_changes`: variables to set, or to
    remove where the value is None."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
    if user_env:
        del env["TF_CPP_MIN_LOG_LEVEL"]
    for name, value in (env_changes or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split()
                                if not f.startswith("--xla_force_host_platform_device_count"))
    if devices:
        env["XLA_FLAGS"] += f" --xla_force_host_platform_device_count={devices}"
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else list(code_or_args)
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def sigterm_at(event, stage=None, step=None):
    """An `on_event` hook that sends this process SIGTERM once, at the first `event` of `stage` (at `step`)."""
    fired = []

    def on_event(name, **info):
        if name == event and not fired and (stage is None or info.get("stage") == stage) and \
                (step is None or info.get("step") == step):
            fired.append(info)
            os.kill(os.getpid(), signal.SIGTERM)
    return on_event


def randomise_batch_norm(net, seed: int = 0):
    """`net` (a torch module) in eval mode with random BatchNorm affine parameters and running statistics, so that
    parity tests exercise them (torch initialises them to 1 / 0 / 0 / 1, which hides a swapped or dropped tensor)."""
    import torch
    torch.manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()
