"""Balance: prefer the cluster with the largest share left after placement of every resource the
job asks for (cpu and memory always, GPUs when it asks for them: a GPU job goes where the most
GPU share stays free, as Karmada's available-replicas weight does; a cpu-only job is not pushed
away from clusters whose GPUs are busy)."""

from __future__ import annotations

import numpy as np

from controller.scheduler.framework import BoolArray, CycleState, FloatArray, JobInfo, Snapshot

NAME = "balance"


class BalanceScore:
    NAME = NAME

    def score_free(self, free: FloatArray, capacity: FloatArray, demand: FloatArray) -> FloatArray:
        # Capacities are positive (the topology model requires it), so the share is well defined.
        # ``demand``: one vector, or one per row of ``free`` (the stored decisions of a cycle);
        # the smaller of the cpu and memory shares, element by element (a reduction over an
        # axis of two costs more than the arithmetic)
        share = np.minimum(
            (free[:, 0] - demand[..., 0]) / capacity[:, 0], (free[:, 1] - demand[..., 1]) / capacity[:, 1]
        )
        gpu = demand[..., 2]
        if np.any(gpu > 0):  # a GPU job: the GPU share counts too (clusters without GPUs: 0 of 1)
            cap_gpu = np.where(capacity[:, 2] > 0, capacity[:, 2], 1.0)
            share = np.where(gpu > 0, np.minimum(share, (free[:, 2] - gpu) / cap_gpu), share)
        out: FloatArray = np.minimum(np.maximum(share, 0.0), 1.0) * 100.0
        return out

    def score(self, state: CycleState, job: JobInfo, snap: Snapshot, feasible: BoolArray) -> FloatArray:
        return self.score_free(snap.free(), snap.capacity, job.demand)
