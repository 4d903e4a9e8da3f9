"""Data residency, a hard rule: core data never moves; important data stays with its owner or the
national nodes; general data may move anywhere. Holds during failover too."""

from __future__ import annotations

import numpy as np

from controller.policies import Movement
from controller.scheduler.framework import CycleState, FilterResult, JobInfo, Snapshot

NAME = "residency"
REASON_CORE = "core data {id} has no copy here and never moves"
REASON_IMPORTANT = "important data {id} of {owner} cannot leave its owner or the national nodes"
REASON_MISSING = "input data set {id} is not in the catalogue"


class ResidencyFilter:
    NAME = NAME

    def filter(self, state: CycleState, job: JobInfo, snap: Snapshot) -> FilterResult:
        codes = np.zeros(snap.size, dtype=np.int16)
        messages: list[str] = []
        if job.missing_inputs:
            messages.append(REASON_MISSING.format(id=job.missing_inputs[0]))
            codes[:] = 1
            return FilterResult(codes, messages, unresolvable=True)
        for ds in job.inputs:
            rule = snap.residency.rule(ds.classification)
            if rule is Movement.anywhere:
                continue
            allowed = snap.locations_mask(ds)
            if rule is Movement.owner_or_national:
                allowed |= (snap.tenants == ds.owner) | snap.national
                message = REASON_IMPORTANT.format(id=ds.id, owner=ds.owner)
            else:
                message = REASON_CORE.format(id=ds.id)
            newly = ~allowed & (codes == 0)
            if newly.any():
                messages.append(message)
                codes[newly] = len(messages)
        return FilterResult(codes, messages, unresolvable=True)
