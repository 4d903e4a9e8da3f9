"""Where preemption could make room, for one job, over every cluster at once.

Preemption (``BatchScheduler._preempt``) lists, on each cluster a job may run on, the placed jobs
it may evict (a lower priority, or another tenant's borrowed work when the job is within its
nominal quota) and asks whether evicting them makes room. In a saturated federation most jobs
find room nowhere, and listing the candidates of every cluster for each of them was the whole
cycle: 17,000 placed jobs, 2,000 pending, 4.4–5.4 s a cycle where the same cycle without
candidates took 62–81 ms (docs/benchmarks.md). ``Evictable`` keeps the placed jobs' demand summed
by (cluster, tenant, priority) in flat arrays, so one job's question, "on which clusters do the
free capacity and everything it may evict reach its demand", is a few numpy passes; only those
clusters are listed and searched as before. A cluster it leaves out is one where even evicting
every candidate leaves too little room, which the search would have found too (``reprieve``
returns None): the decisions are the same.

The sums follow the ``running`` lists the cycle reads: what a list gained since it was read (the
loop appends each placement) is added; a list replaced (a preemption took its victims out) is
read again."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from controller.scheduler.framework import FloatArray

TOLERANCE = 1e-6  # a cluster this close to enough room is searched (the sums' order differs)


class Evictable:
    """The placed jobs' demand by (cluster, tenant, priority) for one cycle (see the module)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen: dict[int, tuple[Any, int]] = {}  # cluster -> (its list, entries read)
        self.row_of: dict[tuple[int, str, float], int] = {}
        self.rows_of: dict[int, list[int]] = {}  # cluster -> its rows
        self.tenants: dict[str, int] = {}
        self.names: list[str] = []
        self.m = 0
        size = 256
        self.demand = np.zeros((size, 3))
        self.cluster = np.zeros(size, dtype=np.intp)
        self.tenant = np.zeros(size, dtype=np.intp)
        self.priority = np.zeros(size)

    def _row(self, c: int, tenant: str, priority: float) -> int:
        key = (c, tenant, priority)
        row = self.row_of.get(key)
        if row is not None:
            return row
        t = self.tenants.get(tenant)
        if t is None:
            t = self.tenants[tenant] = len(self.names)
            self.names.append(tenant)
        row = self.m
        if row == len(self.cluster):  # grown by doubling
            self.demand = np.concatenate([self.demand, np.zeros_like(self.demand)])
            self.cluster = np.concatenate([self.cluster, np.zeros_like(self.cluster)])
            self.tenant = np.concatenate([self.tenant, np.zeros_like(self.tenant)])
            self.priority = np.concatenate([self.priority, np.zeros_like(self.priority)])
        self.cluster[row], self.tenant[row], self.priority[row] = c, t, priority
        self.m += 1
        self.row_of[key] = row
        self.rows_of.setdefault(c, []).append(row)
        return row

    def sync(self, running: Any, clusters: Iterable[int]) -> None:
        """Bring the sums of ``clusters`` up to their ``running`` lists."""
        seen = self.seen
        for c in clusters:
            jobs = running.get(c)
            got = seen.get(c)
            if got is not None and got[0] is jobs and jobs is not None and got[1] <= len(jobs):
                start = got[1]
            else:
                start = 0
                for row in self.rows_of.get(c, ()):
                    self.demand[row] = 0.0
            if jobs:
                for r in jobs[start:] if start else jobs:
                    row = self._row(c, r.tenant, r.priority)  # may grow the arrays
                    self.demand[row] += r.demand
            seen[c] = (jobs, len(jobs) if jobs else 0)

    def room(
        self,
        clusters: Sequence[int],
        free: FloatArray,
        need: FloatArray,
        priority: float,
        tenant: str,
        borrowing: Callable[[str], bool] | None,
    ) -> npt.NDArray[np.bool_]:
        """Per cluster of ``clusters``: whether its free capacity and the demand of every job a
        job of ``tenant`` at ``priority`` may evict there (a lower priority; with ``borrowing``,
        also other tenants' jobs while that tenant borrows) reach ``need``."""
        m = self.m
        may = self.priority[:m] < priority
        if borrowing is not None and m:
            lends = np.fromiter((borrowing(t) for t in self.names), dtype=np.bool_, count=len(self.names))
            own = self.tenants.get(tenant, -1)
            owners = self.tenant[:m]
            may |= lends[owners] & (owners != own)
        where = self.cluster[:m][may]
        taken = self.demand[:m][may]
        idx = np.asarray(clusters, dtype=np.intp)
        room = free[idx].copy()
        for r in range(3):
            room[:, r] += np.bincount(where, weights=taken[:, r], minlength=self.n)[idx]
        enough = room >= need - TOLERANCE * np.maximum(1.0, np.abs(need))
        return np.asarray(enough.all(axis=1), dtype=np.bool_)
