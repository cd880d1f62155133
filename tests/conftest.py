"""Test setup: 8 fake CPU devices, so every test exercises the sharded path (conventions 11)."""
import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests are bound by XLA compile time, not run time: with most optimisations off the distillation-step tests
# compile in well under half the time on CPU. The computed values are the same up to float rounding.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

import jax  # noqa: E402

jax.config.update("jax_threefry_partitionable", True)
