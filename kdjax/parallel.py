"""Data parallelism with one global view: a 1-D device mesh, replicated state, batch sharded on 'data'.

Gradient averaging is implicit: the train step is written for the global batch and XLA inserts the all-reduces.
A consequence worth knowing: BatchNorm computes global-batch statistics, exactly like a single-GPU PyTorch run
of the same global batch size (the setting of every CIFAR reference), independent of the device count.
"""
import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh() -> jax.sharding.Mesh:
    # Auto axes: the partitioner propagates shardings, so model code stays free of sharding annotations.
    return jax.make_mesh((jax.device_count(),), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def batch_sharding(mesh) -> NamedSharding:
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def check_batch_size(global_batch_size: int, name: str = "batch_size") -> None:
    n = jax.device_count()
    if global_batch_size % n:
        raise ValueError(f"{name}={global_batch_size} is not divisible by the device count {n}; choose a multiple "
                         f"of {n} (e.g. {max(n, global_batch_size // n * n)})")


def global_batch(local_batch: dict[str, np.ndarray], mesh) -> dict[str, jax.Array]:
    """Process-local numpy batch -> global jax.Arrays sharded on the data axis."""
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in local_batch.items()}
