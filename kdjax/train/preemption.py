"""SIGTERM (preemptible VMs send it before shutdown) as a request honoured at the next safe point.

`handler()` installs the handler for a whole run (every stage, start-up and compilation included); the trainer asks
`should_stop()` at its safe points (between stages, before the first step, after every step) and then checkpoints
what it has not saved yet and returns 'preempted', so the process exits 0 after its last completed save.

Multi-host: a preemption usually signals every process, but not necessarily before the same step, and the save is
collective; so with several processes the flags are combined (any process signalled) at every check.
"""
import contextlib
import signal

import jax
import numpy as np

_state = {"requested": False, "depth": 0}


def _handle(signum, frame):
    del signum, frame
    _state["requested"] = True


@contextlib.contextmanager
def handler():
    """Installs the SIGTERM handler (nested uses share the outermost one) and clears the flag when the outermost
    scope ends."""
    outermost = _state["depth"] == 0
    previous = signal.signal(signal.SIGTERM, _handle) if outermost else None
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        if outermost:
            signal.signal(signal.SIGTERM, previous)
            _state["requested"] = False


def requested() -> bool:
    """This process has received SIGTERM."""
    return _state["requested"]


def should_stop() -> bool:
    """Any process has received SIGTERM (a collective with several processes: call it at the same points on
    every process)."""
    if jax.process_count() == 1:
        return requested()
    from jax.experimental import multihost_utils
    return bool(np.any(multihost_utils.process_allgather(np.asarray(requested()))))
