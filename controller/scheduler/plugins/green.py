"""Green, hub-aware placement ("East Data, West Computing", 东数西算, approved February 2022).

The western hubs (Inner Mongolia, Guizhou, Gansu, Ningxia) take offline analysis, back-office
processing and backup; the eastern hubs serve latency-sensitive work. A delay-tolerant job whose
inputs are all general data (free to move) scores 100 on western-hub clusters, 50 elsewhere
outside the hubs and 0 on eastern-hub clusters; a latency-sensitive job the other way round. A
delay-tolerant job reading important or core data is neutral (50): residency decides. It is a
score, never a filter, so it cannot break residency: filters run first."""

from __future__ import annotations

import numpy as np

from controller.datasets import Classification
from controller.scheduler.framework import BoolArray, CycleState, FloatArray, JobInfo, Snapshot

NAME = "green"


class GreenScore:
    NAME = NAME

    def score(self, state: CycleState, job: JobInfo, snap: Snapshot, feasible: BoolArray) -> FloatArray:
        out = np.full(snap.size, 50.0)
        if job.spec.delay_tolerant:
            if any(d.classification is not Classification.general for d in job.inputs):
                return out
            out[snap.hub_west] = 100.0
            out[snap.hub_east] = 0.0
        else:
            out[snap.hub_east] = 100.0
            out[snap.hub_west] = 0.0
        return out
