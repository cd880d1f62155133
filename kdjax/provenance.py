"""Which code produced a result (kdjax's git commit and whether the checkout had uncommitted changes), and the
malloc the process runs on, which sets XLA:CPU's step time.

The commit is read once per process, at the first call (the code a run executes is the code it started with,
whatever happens to the checkout afterwards).
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


ALLOCATORS = ("tcmalloc", "jemalloc", "mimalloc")


def allocator(maps_path: str = "/proc/self/maps") -> str:
    """The malloc this process runs on: a preloaded tcmalloc / jemalloc / mimalloc (a library in the process's
    memory map), else glibc's; 'unknown' without a readable map (not Linux)."""
    try:
        with open(maps_path, encoding="utf-8") as f:
            maps = f.read()
    except OSError:
        return "unknown"
    return next((name for name in ALLOCATORS if f"/lib{name}" in maps), "glibc")


def malloc_hint(backend: str, malloc: str) -> str:
    """A line for the launch log when a CPU run is on glibc's malloc, which maps every buffer over 32 MB anew, so
    that each XLA:CPU step page-faults its whole working set in again (measured in benchmarks/README.md); '' else."""
    if backend != "cpu" or malloc != "glibc":
        return ""
    return ("kdjax: this CPU run uses glibc's malloc, which re-maps XLA's buffers every step; "
            "LD_PRELOAD=libtcmalloc_minimal.so.4 (Debian's libtcmalloc-minimal4) ran the benchmarked steps 8-36 % "
            "faster with the same results (README, Set up (d))")
