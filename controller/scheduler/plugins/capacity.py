"""Capacity fit: the whole gang (replicas x per-replica resources) must fit in one cluster's free
capacity, which already counts the reservations of this cycle. This is the all-or-nothing half of
gang placement: a decision reserves the whole gang on one cluster or nothing at all (the `gang`
plugin adds the static half: the gang must fit the cluster when empty, a replica must fit a node).

``fits``/``classify`` are the kernels; ``filter`` runs them on the whole snapshot, the batch loop
runs them on the statically feasible rows only."""

from __future__ import annotations

import numpy as np

from controller.scheduler.framework import (
    CPU,
    GPU,
    MEM,
    BoolArray,
    CodeArray,
    CycleState,
    FilterResult,
    FloatArray,
    JobInfo,
    Snapshot,
)

NAME = "capacity"
REASON_CPU = "insufficient cpu"
REASON_MEMORY = "insufficient memory"
REASON_GPU = "insufficient gpu"
REASON_NEVER = "cluster is too small for the job even when empty"
MESSAGES = [REASON_CPU, REASON_MEMORY, REASON_GPU, REASON_NEVER]


class CapacityFilter:
    NAME = NAME

    def fits(self, free: FloatArray, capacity: FloatArray, demand: FloatArray) -> BoolArray:
        # every resource, element by element (``demand``: one vector or one per row)
        ok: BoolArray = (
            (free[:, CPU] >= demand[..., CPU])
            & (free[:, MEM] >= demand[..., MEM])
            & (free[:, GPU] >= demand[..., GPU])
        )
        return ok

    def classify(
        self, free: FloatArray, capacity: FloatArray, demand: FloatArray
    ) -> tuple[CodeArray, list[str], bool]:
        codes = np.zeros(len(free), dtype=np.int16)
        # ``demand``: one vector, or one per row of ``free`` (the stored decisions of a cycle)
        codes[free[:, GPU] < demand[..., GPU]] = 3
        codes[free[:, MEM] < demand[..., MEM]] = 2
        codes[free[:, CPU] < demand[..., CPU]] = 1
        too_small = (
            (capacity[:, CPU] < demand[..., CPU])
            | (capacity[:, MEM] < demand[..., MEM])
            | (capacity[:, GPU] < demand[..., GPU])
        )
        codes[too_small] = 4
        return codes, MESSAGES, bool(too_small.all())

    def filter(self, state: CycleState, job: JobInfo, snap: Snapshot) -> FilterResult:
        codes, messages, unresolvable = self.classify(snap.free(), snap.capacity, job.demand)
        return FilterResult(codes, messages, unresolvable)
