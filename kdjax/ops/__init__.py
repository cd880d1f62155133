"""Array operations below the model layer (no Flax), and kdjax's one switch for XLA:CPU speed paths.

On the CPU backend, unless the environment sets KDJAX_CPU_SPEEDUPS=0, kdjax
- compiles every program it jits through `kdjax.ops.jit` with `xla_cpu_options` (XLA's own convolutions instead of
  YNNPACK's; unoptimised LLVM for programs that run once), and
- builds its convolution layers on `cpu_conv.conv_general_dilated` (GEMM forms where XLA:CPU's convolution is slow).
On GPU and TPU both are plain JAX. Model and loss code never refer to either: the layers and `jit` do.
"""
import os

import jax
from jax import lax

from kdjax.ops import cpu_conv, xla_cpu_options

ENV_SWITCH = "KDJAX_CPU_SPEEDUPS"


def cpu_speedups_enabled(platform: str | None = None) -> bool:
    """True on CPU (`platform`, default the default backend) unless KDJAX_CPU_SPEEDUPS=0."""
    if os.environ.get(ENV_SWITCH, "1") in ("0", "false", "False"):
        return False
    return (platform or jax.default_backend()) == "cpu"


def conv_general_dilated(*args, **kw):
    """The convolution kdjax's layers use: `cpu_conv`'s GEMM forms on CPU (decided at trace time), XLA's elsewhere."""
    if cpu_speedups_enabled():
        return cpu_conv.conv_general_dilated(*args, **kw)
    return lax.conv_general_dilated(*args, **kw)


def jit(fn, *, mesh=None, run_once: bool = False, **jit_kwargs):
    """`jax.jit(fn, **jit_kwargs)` with kdjax's XLA:CPU options when the speed paths are on for `mesh`'s platform.

    run_once: the program runs once (a train state's initialisation), so compile time counts and run time does not.
    """
    platform = mesh.devices.flat[0].platform if mesh is not None else None
    if cpu_speedups_enabled(platform):
        options = xla_cpu_options.compiler_options(run_once=run_once)
        if options:
            jit_kwargs = dict(jit_kwargs, compiler_options=options)
    return jax.jit(fn, **jit_kwargs)


__all__ = ["ENV_SWITCH", "conv_general_dilated", "cpu_speedups_enabled", "jit"]
