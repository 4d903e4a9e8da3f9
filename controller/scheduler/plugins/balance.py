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
        if demand[2] > 0:
            cap = np.where(capacity > 0, capacity, 1.0)
            share = ((free - demand) / cap).min(axis=1)
        else:
            share = ((free[:, :2] - demand[:2]) / capacity[:, :2]).min(axis=1)
        out: FloatArray = np.minimum(np.maximum(share, 0.0), 1.0) * 100.0
        return out

    def score(self, state: CycleState, job: JobInfo, snap: Snapshot, feasible: BoolArray) -> FloatArray:
        return self.score_free(snap.free(), snap.capacity, job.demand)
