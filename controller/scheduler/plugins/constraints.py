"""Explicit placement constraints: allow/deny lists, required labels (filter); preferences (score)."""

from __future__ import annotations

import numpy as np

from controller.jobs import Constraints
from controller.scheduler.framework import (
    BoolArray,
    CycleState,
    FilterResult,
    FloatArray,
    JobInfo,
    Snapshot,
)

NAME = "constraints"
REASON_NOT_ALLOWED = "cluster is not in the job's allow list"
REASON_DENIED = "cluster is in the job's deny list"
REASON_LABELS = "cluster does not match the job's required labels"


class ConstraintsPlugin:
    NAME = NAME

    def filter(self, state: CycleState, job: JobInfo, snap: Snapshot) -> FilterResult:
        return self.filter_constraints(job.spec.constraints, snap)

    def filter_constraints(self, c: Constraints, snap: Snapshot) -> FilterResult:
        """``filter`` from the constraints alone (all it reads of a job)."""
        codes = np.zeros(snap.size, dtype=np.int16)
        if c.require_labels:
            for i, labels in enumerate(snap.labels):
                if any(labels.get(k) != v for k, v in c.require_labels.items()):
                    codes[i] = 3
        if c.deny_clusters:
            for name in c.deny_clusters:
                if (d := snap.index.get(name)) is not None:
                    codes[d] = 2
        if c.allow_clusters:
            allowed = np.zeros(snap.size, dtype=bool)
            for name in c.allow_clusters:
                if (a := snap.index.get(name)) is not None:
                    allowed[a] = True
            codes[~allowed] = 1
        return FilterResult(codes, [REASON_NOT_ALLOWED, REASON_DENIED, REASON_LABELS], unresolvable=True)

    def score(self, state: CycleState, job: JobInfo, snap: Snapshot, feasible: BoolArray) -> FloatArray:
        return self.score_constraints(job.spec.constraints, snap)

    def score_constraints(self, c: Constraints, snap: Snapshot) -> FloatArray:
        """``score`` from the constraints alone (all it reads of a job)."""
        out = np.zeros(snap.size)
        for name in c.prefer_clusters:
            i = snap.index.get(name)
            if i is not None:
                out[i] = 100.0
        if c.prefer_labels:
            for i, labels in enumerate(snap.labels):
                if all(labels.get(k) == v for k, v in c.prefer_labels.items()):
                    out[i] = 100.0
        return out
