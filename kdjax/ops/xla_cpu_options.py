"""XLA:CPU compiler options for kdjax's jitted programs, chosen by measurement (benchmarks/README.md).

jaxlib 0.10 hands convolutions, reductions and what surrounds them to YNNPACK ("ynn fusions") by default. On the
benchmark machine YNNPACK's convolutions are 2-3x slower than XLA's own (Eigen) ones, forward and both gradients
(3x3, 64 -> 128 channels, 32x32, batch 64: 667 vs 213 ms for forward + backward), while its reductions are ~30x
faster than XLA's own (per-channel sums of a 64x32x32x64 activation, i.e. BatchNorm statistics: 0.7 vs 20 ms).
`OPTIONS` keeps YNNPACK for reductions only: a KD train step (batch 64) runs 1.63x faster for resnet32x4 ->
resnet8x4 and 1.27x for VGG-9 -> VGG-4. Results are unchanged up to float32 summation order.

Programs that run once (a train state's initialisation) also get `RUN_ONCE_OPTIONS`: without LLVM's optimisations
they compile 2-6x faster (resnet32x4 16.7 -> 4.7 s, wrn_40_2 19.5 -> 4.9 s at width 1/8; the time goes to
optimising the unrolled threefry hashes of the parameter initialisers). They run slower, which matters little once:
the full resnet32x4 -> resnet8x4 state with every zoo method's modules and CRD's 50,000-row banks takes 7.1 + 1.5 s
against 14.5 + 0.3 s. Values move by float32 rounding only (largest parameter difference 6e-8).

`kdjax.ops.jit` applies them on CPU; pass `compiler_options()` to your own `jax.jit` on CPU for the same effect.
A jaxlib that does not know the YNNPACK option keeps its defaults for it.
"""
import functools

import jax
import numpy as np

OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_REDUCE"}
RUN_ONCE_OPTIONS = {"xla_backend_optimization_level": 0}


@functools.cache
def supported() -> bool:
    try:
        jax.jit(lambda x: x.sum(), compiler_options=OPTIONS).lower(np.zeros(2, np.float32)).compile()
    except Exception:  # an unknown option name or enum value: another jaxlib; its defaults are kept
        return False
    return True


def compiler_options(*, run_once: bool = False) -> dict | None:
    """kdjax's XLA:CPU options (for a CPU program only; other backends reject them).

    run_once: the program runs once (initialisation), so compile time counts and run time does not.
    """
    options = dict(OPTIONS) if supported() else {}
    if run_once:
        options.update(RUN_ONCE_OPTIONS)
    return options or None
