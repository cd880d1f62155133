"""Test setup: 8 fake CPU devices, so every test exercises the sharded path (conventions 11)."""
import importlib.util
import os
import shutil
import tempfile

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Many tests compile the same programs (a resumed run re-jits its step, several tests train the same
# teacher stage): a compilation cache shared by this run's xdist workers, and by the subprocesses the
# multi-process tests start, compiles each once. Keyed by the run so no executable outlives it.
# xdist workers inherit the directory the controller chose; the controller removes it at the end.
_OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _OWN_CACHE:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="kdjax-jax-cache-")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

# The optional parity extra: PyTorch loaded after TensorFlow segfaults with some wheel pairs (torch 2.14 + TF 2.20
# on CPU); loaded first, both work. Without the extra nothing is imported.
for _module in ("torch", "torchvision"):
    if importlib.util.find_spec(_module):
        importlib.import_module(_module)

import jax  # noqa: E402

jax.config.update("jax_threefry_partitionable", True)


def pytest_sessionfinish(session):
    if _OWN_CACHE and "PYTEST_XDIST_WORKER" not in os.environ:
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


import pytest  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "parity: compares with a PyTorch reference (optional test extra; skipped "
                                       "without torch)")
    config.addinivalue_line("markers", "trains(*configs): the test trains these configs through the trainer (or "
                                       "configs of the same recipe), so tests/configs/test_configs.py does not train "
                                       "them a second time")


RUNLOCAL_PARAM = "runlocal_config"  # the parameter of test_configs.py's runlocal test


def pytest_collection_modifyitems(config, items):
    """Deselects the runlocal smoke test of every config that a collected test marked `trains` already trains:
    no config is trained twice in one run, and each one at least once."""
    covered = {path for item in items for mark in item.iter_markers("trains") for path in mark.args}
    missing = sorted(p for p in covered if not os.path.exists(os.path.join(os.path.dirname(__file__), "..", p)))
    if missing:
        raise pytest.UsageError(f"@pytest.mark.trains names configs that do not exist: {missing}")
    runlocal = lambda item: getattr(item, "callspec", None) and item.callspec.params.get(RUNLOCAL_PARAM)  # noqa: E731
    dropped = [item for item in items if runlocal(item) in covered]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]


@pytest.fixture(autouse=True)
def _fresh_tfds_splits():
    """Opened splits are cached per process; tests mock TFDS with different data, so each starts uncached."""
    from kdjax.data import sources
    sources.open_split.cache_clear()
    yield
