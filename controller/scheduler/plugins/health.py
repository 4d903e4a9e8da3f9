"""Health and cordon: only Ready, uncordoned clusters take new work."""

from __future__ import annotations

import numpy as np

from controller.scheduler.framework import CycleState, FilterResult, JobInfo, Snapshot

NAME = "health"
REASON_CORDONED = "cluster is cordoned"


class HealthFilter:
    NAME = NAME

    def filter(self, state: CycleState, job: JobInfo, snap: Snapshot) -> FilterResult:
        messages: list[str] = [REASON_CORDONED]
        codes = np.zeros(snap.size, dtype=np.int16)
        codes[snap.cordoned] = 1
        for i in np.flatnonzero(~snap.ready & ~snap.cordoned):
            reason = f"cluster is {snap.not_ready_reason[i] or 'not ready'}"
            if reason not in messages:
                messages.append(reason)
            codes[i] = messages.index(reason) + 1
        return FilterResult(codes, messages)
