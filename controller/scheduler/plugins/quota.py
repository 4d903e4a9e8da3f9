"""Tenant quota as a filter: a job whose tenant would exceed its quota fits no cluster now.

Every decision (a cycle's and a plan's) is made by the batch pipeline, which skips job-level
filters and applies the same rule itself as its quota admission step, with live usage as it
reserves (``BatchScheduler._admission``); so naming ``quota`` in placement.yaml changes nothing
and ``filter`` here serves direct callers only."""

from __future__ import annotations

import numpy as np

from controller.scheduler.framework import CycleState, FilterResult, JobInfo, Snapshot
from controller.scheduler.quota import REASON_UNKNOWN_CLASS, QuotaBook, effective_priority

NAME = "quota"


class QuotaFilter:
    NAME = NAME
    JOB_LEVEL = True  # one answer for every cluster; the batch loop applies it with live usage

    def filter(self, state: CycleState, job: JobInfo, snap: Snapshot) -> FilterResult:
        codes = np.zeros(snap.size, dtype=np.int16)
        if snap.quota is None:
            return FilterResult(codes, [])
        if effective_priority(job.spec, snap.quota) is None:
            codes[:] = 1
            return FilterResult(codes, [REASON_UNKNOWN_CLASS.format(name=job.spec.priority_class)], True)
        book = QuotaBook(snap.quota, snap.capacity.sum(axis=0), list(snap.tenants), snap.tenant_usage)
        reason, never = book.check(job.spec.tenant, [float(x) for x in job.demand])
        if reason is None:
            return FilterResult(codes, [])
        codes[:] = 1
        return FilterResult(codes, [reason], unresolvable=never)
