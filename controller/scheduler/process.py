"""What a controller process tunes once, when its loops start (``tune_process``): the cyclic
garbage collector and the C allocator. ``make bench`` calls it as the leader does."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

# The cyclic garbage collector's thresholds for a controller process (``tune_gc``).
GC_THRESHOLDS = (100_000, 50, 100)


def tune_gc() -> None:
    """A scheduling cycle allocates a few hundred thousand short-lived containers (queue items,
    decisions, rows); with CPython's default thresholds (700, 10, 10) the collector runs
    hundreds of times per cycle and its older generations walk every long-lived object (the
    shapes, the caches, the ledger): a fifth of a cycle's time on the mixed queue. Freeze
    what exists at start-up (modules, policies, topology: never garbage) and collect the
    young generation every 100,000 allocations instead (cycles of garbage are rare here;
    reference counting frees the rest at once). The service calls this when its loops start;
    ``make bench`` calls it as the leader would. Once per process."""
    global _GC_TUNED
    if _GC_TUNED:
        return
    _GC_TUNED = True
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


_GC_TUNED = False


# glibc's mallopt parameters (malloc.h) and the values ``tune_allocator`` sets.
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
ALLOCATOR = {
    M_TRIM_THRESHOLD: 1 << 30,  # keep up to 1 GiB free at the heap's top instead of 128 KiB
    M_TOP_PAD: 64 << 20,  # grow the heap 64 MiB at a time
    M_MMAP_THRESHOLD: 32 << 20,  # blocks below 32 MiB (glibc's largest) from the heap, not mmap
}


def tune_allocator() -> bool:
    """Keep the memory a cycle frees for the next cycle instead of giving it back to the kernel.

    A cycle allocates its arrays (shapes x clusters, the listed rows, the packed decisions: tens
    of MiB) and frees them at its end. With glibc's defaults, blocks from 128 KiB up (raised as
    it sees them freed) are mmap-ed and unmapped, and the heap's top is trimmed past 128 KiB, so
    the next cycle faults the same memory in again, page by page. On this VM a first touch costs
    about 20 µs a 4 KiB page (14 MiB of fresh rows: 8.5 µs a job to fill, 1.0 with the memory
    kept; docs/benchmarks.md). With the values in ``ALLOCATOR`` a leader's heap stays at its
    peak (one cycle's working set, measured by ``bench_memory_decisions``) and is reused.

    glibc only (``mallopt``); elsewhere (musl) nothing is changed and False is returned."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in ALLOCATOR.items())


_ALLOCATOR_TUNED = False


def tune_process() -> None:
    """The collector (``tune_gc``) and the allocator (``tune_allocator``), once per process."""
    global _ALLOCATOR_TUNED
    tune_gc()
    if not _ALLOCATOR_TUNED:
        _ALLOCATOR_TUNED = True
        tune_allocator()
