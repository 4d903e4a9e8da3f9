"""Balance: prefer the cluster with the largest share of cpu and memory left after placement."""

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
        out: FloatArray = np.minimum(np.maximum(share, 0.0), 1.0) * 100.0
        return out

    def score(self, state: CycleState, job: JobInfo, snap: Snapshot, feasible: BoolArray) -> FloatArray:
        return self.score_free(snap.free(), snap.capacity, job.demand)
