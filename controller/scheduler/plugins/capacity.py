"""Capacity fit: the whole gang (replicas x per-replica resources) must fit in one cluster's free
capacity, which already counts the reservations of this cycle."""

from __future__ import annotations

import numpy as np

from controller.scheduler.framework import CPU, GPU, MEM, CycleState, FilterResult, JobInfo, Snapshot

NAME = "capacity"
REASON_CPU = "insufficient cpu"
REASON_MEMORY = "insufficient memory"
REASON_GPU = "insufficient gpu"
REASON_NEVER = "cluster is too small for the job even when empty"


class CapacityFilter:
    NAME = NAME

    def filter(self, state: CycleState, job: JobInfo, snap: Snapshot) -> FilterResult:
        demand = job.demand
        free = snap.free()
        codes = np.zeros(snap.size, dtype=np.int16)
        codes[free[:, GPU] < demand[GPU]] = 3
        codes[free[:, MEM] < demand[MEM]] = 2
        codes[free[:, CPU] < demand[CPU]] = 1
        too_small = (snap.capacity < demand).any(axis=1)
        codes[too_small] = 4
        unresolvable = bool(too_small.all())
        return FilterResult(codes, [REASON_CPU, REASON_MEMORY, REASON_GPU, REASON_NEVER], unresolvable)
