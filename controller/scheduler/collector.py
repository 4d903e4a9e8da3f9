"""The leader's garbage collector around its scheduling cycles.

A cycle keeps most of what it allocates alive until it ends (queue items, shapes, compact
decisions, the stored rows), and CPython's collector walks every container that survives in its
young generation: with the leader's thresholds (``tune_gc``) a cycle of 10,000 distinct
jobs still paid 2 to 5 microseconds a decision (4 to 6 % of the cycle) in collections that
found almost nothing (docs/benchmarks.md). Garbage that only the collector can free (reference
cycles) is rare here; reference counting frees the rest the moment it is dropped.

So in a tuned controller process a cycle with jobs to decide runs with the collector off, and
what survives it is moved to the permanent generation (``gc.freeze``: the young generations are
joined to it, which does not walk them). Objects frozen and later dropped are freed by reference
counting as ever; only reference cycles among them (the cycle's own, or another thread's made
while the cycle ran) wait for the next full collection, which unfreezes, collects everything and
freezes again: after ``full_every`` cycles or ``full_after_s`` seconds, whichever comes first.
That is about as often as the tuned thresholds alone ran a full collection (every 5,000 young
collections); it walks the whole heap: 0.7 to 0.9 s at the benchmark leader's 700,000 objects
(a test run on the other core). It is paid at the end of the cycle that triggers it, so the
benchmarks that time cycles include it. (Counting the frozen objects to trigger it on growth
instead would walk them all: ``gc.get_freeze_count`` walks the list, about 70 ms there.)

Processes that never ran ``tune_gc`` (a test run, the CLI) are left as they are: ``cycle`` is
then a no-op. A controller tunes its process only when it owns it (``Settings.tune_gc``): one
running as a guest in another program's process (the test suite, a drill's threads) would
freeze that program's garbage at every cycle and walk all of it at the next full collection,
holding every thread of the process meanwhile (a drill in CI: its agents' heartbeats and its
lease expiry held back about 10 s)."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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


FULL_EVERY = 1_000  # cycles between full collections, at most
FULL_AFTER_S = 600.0  # seconds between full collections, at most


class CycleCollector:
    """Runs scheduling cycles with the collector off (see the module docstring). One per
    process, since the collector is: ``COLLECTOR``."""

    def __init__(self, full_every: int = FULL_EVERY, full_after_s: float = FULL_AFTER_S) -> None:
        self.full_every = full_every
        self.full_after_s = full_after_s
        self._lock = threading.Lock()
        self._depth = 0  # cycles running now (threads may overlap: the collector is off while any runs)
        self._was_enabled = True
        self.ended = 0  # cycles ended, in all
        self.cycles = 0  # since the last full collection
        self.last_full = time.monotonic()
        self.full_collections = 0
        self.full_seconds = 0.0
        self.collected = 0  # objects the full collections found unreachable

    def active(self) -> bool:
        return _GC_TUNED

    @contextmanager
    def cycle(self) -> Iterator[None]:
        if not self.active():
            yield
            return
        with self._lock:
            if self._depth == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    self._end_cycle()
                    if self._was_enabled:
                        gc.enable()

    def _end_cycle(self) -> None:
        gc.freeze()
        self.ended += 1
        self.cycles += 1
        if self.cycles >= self.full_every or time.monotonic() - self.last_full >= self.full_after_s:
            self.full()

    def full(self) -> int:
        """One full collection of everything, frozen objects included; then freeze again."""
        t0 = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        self.full_seconds += time.perf_counter() - t0
        self.full_collections += 1
        self.collected += found
        self.cycles = 0
        self.last_full = time.monotonic()
        return found

    def stats(self) -> dict[str, Any]:
        return {
            "active": self.active(),
            "cycles": self.ended,
            "full_collections": self.full_collections,
            "full_seconds": round(self.full_seconds, 3),
            "collected": self.collected,
        }


COLLECTOR = CycleCollector()
