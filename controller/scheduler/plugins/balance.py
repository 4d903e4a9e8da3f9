"""Balance: prefer the cluster with the largest share of cpu and memory left after placement."""

from __future__ import annotations

import numpy as np

from controller.scheduler.framework import CPU, MEM, BoolArray, CycleState, FloatArray, JobInfo, Snapshot

NAME = "balance"


class BalanceScore:
    NAME = NAME

    def score(self, state: CycleState, job: JobInfo, snap: Snapshot, feasible: BoolArray) -> FloatArray:
        after = snap.free() - job.demand
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(snap.capacity[:, :2] > 0, after[:, [CPU, MEM]] / snap.capacity[:, :2], 0.0)
        return np.clip(share.min(axis=1), 0.0, 1.0) * 100.0
