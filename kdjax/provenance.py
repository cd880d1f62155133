"""Which code produced a result: kdjax's git commit and whether the checkout had uncommitted changes.

Read once per process, at the first call (the code a run executes is the code it started with, whatever happens
to the checkout afterwards).
"""
import functools
import os
import subprocess

import kdjax

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(kdjax.__file__)))


def _git(*args) -> str:
    return subprocess.run(["git", *args], cwd=_ROOT, capture_output=True, text=True, check=True).stdout.strip()


@functools.cache
def code_version() -> dict:
    """{'commit': 40-hex or 'unknown', 'dirty': bool or None, 'kdjax': package version}."""
    try:
        commit = _git("rev-parse", "HEAD")
        dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", None
    return {"commit": commit, "dirty": dirty, "kdjax": kdjax.__version__}
