"""Balance: prefer the cluster with the largest share of cpu and memory left after placement."""

from __future__ import annotations

import numpy as np

from controller.scheduler.framework import BoolArray, CycleState, FloatArray, JobInfo, Snapshot

NAME = "balance"


class BalanceScore:
    NAME = NAME

    def score_free(self, free: FloatArray, capacity: FloatArray, demand: FloatArray) -> FloatArray:
        # Capacities are positive (the topology model requires it), so the share is well defined.
        # ``demand``: one vector, or one per row of ``free`` (the stored decisions of a cycle)
        share = ((free[:, :2] - demand[..., :2]) / capacity[:, :2]).min(axis=1)
        out: FloatArray = np.minimum(np.maximum(share, 0.0), 1.0) * 100.0
        return out

    def score(self, state: CycleState, job: JobInfo, snap: Snapshot, feasible: BoolArray) -> FloatArray:
        return self.score_free(snap.free(), snap.capacity, job.demand)
