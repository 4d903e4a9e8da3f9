"""A controller process's tuning (controller/scheduler/process.py): the allocator keeps the memory
a cycle frees for the next one, and the collector runs at the leader's thresholds.

Each check runs in a fresh interpreter (the tuning is once per process): a cycle-sized block
(24 MiB of numpy rows, as a cycle's listed rows) is filled, freed and filled again. With glibc's
defaults the freed block goes back to the kernel (the process's resident memory falls by about
its size, and the second fill faults every page in again); tuned, the resident memory stays and
the second fill reuses it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CHILD = """
import gc, json, os, sys
import numpy as np
from controller.scheduler import process

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

tuned = process.tune_allocator() if sys.argv[1] == "tuned" else None
process.tune_process() if sys.argv[1] == "process" else None
block = np.ones((1 << 20, 3))  # 24 MiB, touched
held = rss()
del block
kept = rss()
again = np.ones((1 << 20, 3))
print(json.dumps({
    "tuned": tuned, "held": held, "kept": kept, "again": rss(),
    "gc": list(gc.get_threshold()), "frozen": gc.get_freeze_count(),
}))
"""


def child(mode: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


MiB = 1 << 20


def test_a_freed_cycle_block_goes_back_to_the_kernel_untuned_and_stays_tuned() -> None:
    untuned = child("default")
    assert untuned["held"] - untuned["kept"] > 20 * MiB  # glibc unmapped it
    tuned = child("tuned")
    assert tuned["tuned"] is True  # glibc took every value
    assert tuned["held"] - tuned["kept"] < 2 * MiB  # kept for the next cycle
    assert tuned["again"] - tuned["kept"] < 2 * MiB  # and reused: no new memory for the same block


def test_tune_process_tunes_the_allocator_and_the_collector() -> None:
    from controller.scheduler.process import GC_THRESHOLDS

    got = child("process")
    assert got["held"] - got["kept"] < 2 * MiB
    assert tuple(got["gc"]) == GC_THRESHOLDS and got["frozen"] > 0
