"""kdjax.provenance: the malloc a process runs on, read from its memory map (a preloaded tcmalloc or jemalloc, else
glibc's, with or without huge pages), named in every launch record and benchmark header, and the launch hint for
CPU runs on glibc's with small pages."""
import ctypes.util
import sys

import pytest

from kdjax.provenance import GLIBC_HUGEPAGES, allocator, glibc_hugepages, malloc_hint
from tests import helpers

LIBC = "7f5e2a000000-7f5e2a028000 r--p 00000000 fe:01 1234 /usr/lib/x86_64-linux-gnu/libc.so.6\n"


@pytest.mark.parametrize("library,name", [("libtcmalloc_minimal.so.4", "tcmalloc"), ("libjemalloc.so.2", "jemalloc"),
                                          ("libtcmalloc.so.4.5.9", "tcmalloc")])
def test_a_preloaded_malloc_in_the_map_is_named(tmp_path, library, name):
    maps = tmp_path / "maps"
    maps.write_text(LIBC + f"7f5e2b000000-7f5e2b010000 r-xp 00000000 fe:01 99 /usr/lib/x86_64-linux-gnu/{library}\n")
    assert allocator(str(maps)) == name


def test_glibc_without_one_and_unknown_without_a_map(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text(LIBC + "7f5e2c000000-7f5e2c001000 rw-p 00000000 00:00 0 [heap]\n")
    assert allocator(str(maps)) == "glibc"
    assert allocator(str(tmp_path / "absent")) == "unknown"


def _in_a_fresh_process(preload=None, tunables=None):
    proc = helpers.run_python("from kdjax.provenance import allocator; print(allocator())",
                              env_changes={"LD_PRELOAD": preload, "GLIBC_TUNABLES": tunables})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/maps is Linux's")
def test_a_real_process_reads_its_own_map():
    assert _in_a_fresh_process() == "glibc"
    tcmalloc = ctypes.util.find_library("tcmalloc_minimal") or ctypes.util.find_library("tcmalloc")
    if tcmalloc:  # Debian's libtcmalloc-minimal4, where installed
        assert _in_a_fresh_process(tcmalloc) == "tcmalloc"
    if glibc_hugepages("glibc.malloc.hugetlb=1"):  # this machine's glibc and kernel can give malloc huge pages
        assert _in_a_fresh_process(tunables="glibc.malloc.hugetlb=1") == GLIBC_HUGEPAGES


@pytest.mark.parametrize("tunables,glibc,thp,expected", [
    ("glibc.malloc.hugetlb=1", "glibc 2.36", "always [madvise] never", True),
    ("glibc.malloc.tcache_count=0:glibc.malloc.hugetlb=2", "glibc 2.39", "[always] madvise never", True),
    ("glibc.malloc.hugetlb=0", "glibc 2.36", "always [madvise] never", False),
    ("", "glibc 2.36", "always [madvise] never", False),
    ("glibc.malloc.hugetlb=1", "glibc 2.31", "always [madvise] never", False),  # before 2.35 the tunable is ignored
    ("glibc.malloc.hugetlb=1", "glibc 2.36", "always madvise [never]", False),  # the kernel gives no huge pages
])
def test_huge_pages_need_the_tunable_a_glibc_that_knows_it_and_the_kernels_thp(tmp_path, tunables, glibc, thp,
                                                                                expected):
    (tmp_path / "enabled").write_text(thp + "\n")
    assert glibc_hugepages(tunables, glibc=glibc, thp_path=str(tmp_path / "enabled")) is expected
    assert glibc_hugepages(tunables, glibc=glibc, thp_path=str(tmp_path / "absent")) is False


def test_the_hint_is_for_cpu_runs_on_glibc_only():
    hint = malloc_hint("cpu", "glibc")
    assert "LD_PRELOAD=libtcmalloc_minimal.so.4" in hint and "GLIBC_TUNABLES=glibc.malloc.hugetlb=1" in hint
    assert (malloc_hint("cpu", "tcmalloc") == malloc_hint("cpu", GLIBC_HUGEPAGES) == malloc_hint("gpu", "glibc")
            == malloc_hint("tpu", "unknown") == "")
