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
GLIBC_HUGEPAGES = "glibc+hugetlb"
HUGEPAGE_TUNABLE = "glibc.malloc.hugetlb"


def glibc_hugepages(tunables: str | None = None, glibc: str | None = None,
                    thp_path: str = "/sys/kernel/mm/transparent_hugepage/enabled") -> bool:
    """Whether glibc's malloc backs its large buffers with transparent huge pages: GLIBC_TUNABLES (read at process
    start; `tunables` overrides it) sets glibc.malloc.hugetlb to 1 or 2, the glibc is 2.35 or newer (older ones
    ignore the tunable; `glibc` overrides os.confstr's 'glibc 2.36'), and the kernel's THP mode is not 'never'."""
    tunables = os.environ.get("GLIBC_TUNABLES", "") if tunables is None else tunables
    settings = dict(item.split("=", 1) for item in tunables.split(":") if "=" in item)
    if settings.get(HUGEPAGE_TUNABLE) not in ("1", "2"):
        return False
    try:
        version = glibc or os.confstr("CS_GNU_LIBC_VERSION")
        major, minor = (int(part) for part in version.split()[-1].split(".")[:2])
        with open(thp_path, encoding="utf-8") as f:
            thp_never = "[never]" in f.read()
    except (OSError, ValueError, AttributeError):  # no /sys, not glibc (confstr unknown or None)
        return False
    return (major, minor) >= (2, 35) and not thp_never


def allocator(maps_path: str = "/proc/self/maps") -> str:
    """The malloc this process runs on: a preloaded tcmalloc / jemalloc / mimalloc (a library in the process's
    memory map), else glibc's ('glibc+hugetlb' when `glibc_hugepages()`); 'unknown' without a readable map."""
    try:
        with open(maps_path, encoding="utf-8") as f:
            maps = f.read()
    except OSError:
        return "unknown"
    preloaded = next((name for name in ALLOCATORS if f"/lib{name}" in maps), None)
    return preloaded or (GLIBC_HUGEPAGES if glibc_hugepages() else "glibc")


def malloc_hint(backend: str, malloc: str) -> str:
    """A line for the launch log when a CPU run is on glibc's malloc with small pages, which maps every buffer over
    32 MB anew, so that each XLA:CPU step page-faults its whole working set in again (measured in
    benchmarks/README.md); '' else."""
    if backend != "cpu" or malloc != "glibc":
        return ""
    return ("kdjax: this CPU run uses glibc's malloc with 4 KiB pages, which re-maps and page-faults XLA's buffers "
            f"every step; GLIBC_TUNABLES={HUGEPAGE_TUNABLE}=1 (glibc >= 2.35, nothing to install) or "
            "LD_PRELOAD=libtcmalloc_minimal.so.4 (Debian's libtcmalloc-minimal4) ran the benchmarked steps "
            "8-36 % faster with the same results (README, Set up (d))")
