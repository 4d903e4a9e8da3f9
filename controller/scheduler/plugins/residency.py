"""Data residency, a hard rule: core data never moves; important data stays with its owner or the
national nodes; general data may move anywhere. Holds during failover too."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from controller.datasets import DatasetRead
from controller.policies import Movement
from controller.scheduler.framework import BoolArray, CodeArray, CycleState, FilterResult, JobInfo, Snapshot

NAME = "residency"
REASON_CORE = "core data {id} has no copy here and never moves"
REASON_IMPORTANT = "important data {id} of {owner} cannot leave its owner or the national nodes"
REASON_MISSING = "input data set {id} is not in the catalogue"


def dataset_rule(ds: DatasetRead, snap: Snapshot) -> tuple[BoolArray | None, str]:
    """Where a job reading ``ds`` may run (None: anywhere) and the reason it may not elsewhere."""
    rule = snap.residency.rule(ds.classification)
    if rule is Movement.anywhere:
        return None, ""
    allowed = snap.locations_mask(ds)
    if rule is Movement.owner_or_national:
        allowed |= (snap.tenants == ds.owner) | snap.national
        return allowed, REASON_IMPORTANT.format(id=ds.id, owner=ds.owner)
    return allowed, REASON_CORE.format(id=ds.id)


def first_forbidding(forbidden: npt.NDArray[np.bool_]) -> tuple[CodeArray, npt.NDArray[np.bool_]]:
    """``filter`` for many jobs at once. ``forbidden``: jobs x inputs x clusters, where each
    input (in input order) forbids each cluster (``~dataset_rule``; all False for data that may
    go anywhere and for padding). Returns the codes (jobs x clusters: the first input that
    forbids the cluster, numbered among the inputs that forbid a cluster no earlier input
    forbade, as ``filter`` numbers its messages) and, per job and input, whether the input has
    a message (it forbids a cluster no earlier input forbade)."""
    J, K, n = forbidden.shape
    codes = np.zeros((J, n), dtype=np.int16)
    if K == 0:
        return codes, np.zeros((J, 0), dtype=bool)
    newly = np.zeros((J, K), dtype=bool)
    before = np.zeros((J, n), dtype=bool)  # forbidden by an earlier input
    rank = np.zeros(J, dtype=np.int16)
    for k in range(K):
        first = forbidden[:, k] & ~before
        has = first.any(axis=1)
        newly[:, k] = has
        rank += has
        codes[first] = np.broadcast_to(rank[:, None], first.shape)[first]
        before |= forbidden[:, k]
    return codes, newly


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
            allowed, message = dataset_rule(ds, snap)
            if allowed is None:
                continue
            newly = ~allowed & (codes == 0)
            if newly.any():
                messages.append(message)
                codes[newly] = len(messages)
        return FilterResult(codes, messages, unresolvable=True)
