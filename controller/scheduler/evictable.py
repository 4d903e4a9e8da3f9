"""Where preemption could make room, for one job, over every cluster at once.

Preemption (``BatchScheduler._preempt``) lists, on each cluster a job may run on, the placed jobs
it may evict (a lower priority, or another tenant's borrowed work when the job is within its
nominal quota) and asks whether evicting them makes room. In a saturated federation most jobs
find room nowhere, and listing the candidates of every cluster for each of them was the whole
cycle: 17,000 placed jobs, 2,000 pending, 4.4–5.4 s a cycle where the same cycle without
candidates took 62–81 ms (docs/benchmarks.md). ``Evictable`` keeps the placed jobs' demand summed
by (cluster, tenant, priority) in flat arrays, so one job's question, "on which clusters do the
free capacity and everything it may evict reach its demand", is a few numpy passes; only those
clusters are searched as before, each in one compiled pass over arrays kept per cluster
(``victims``: the candidates and the victims reprieved from them). A cluster it leaves out is one
where even evicting every candidate leaves too little room, which the search would have found
too (``victims`` returns None): the decisions are the same (tests/scheduler/test_preemption.py).

The sums and arrays follow the ``running`` lists the cycle reads: what a list gained since it was
read (the loop appends each placement and ``touch``-es the cluster) is added; a preemption
replaces a list through ``evict``, which takes the victims out of the sums and arrays too; a list
replaced any other way is read again."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from controller.scheduler.framework import FloatArray
from controller.scheduler.kernels import victims

TOLERANCE = 1e-6  # a cluster this close to enough room is searched (the sums' order differs)


class Ask(NamedTuple):
    """What one job may evict (``Evictable.ask``)."""

    priority: float  # jobs below it
    own: int  # the job's tenant (its index; -1: none placed)
    lends: npt.NDArray[np.bool_] | None  # per tenant index, borrowing (None: no reclaim)


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
        # cluster -> (its list, its length, the candidates' arrays in list order: ``_view``)
        self.views: dict[int, tuple[Any, int, _View]] = {}
        self._lends: tuple[Any, npt.NDArray[np.bool_]] | None = None  # ``ask``: (version, who borrows)
        # per cluster: its sums follow its list until the list changes (``touch``)
        self.fresh = np.zeros(n, dtype=np.bool_)
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
        t = self._tenant(tenant)
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

    def _tenant(self, tenant: str) -> int:
        t = self.tenants.get(tenant)
        if t is None:
            t = self.tenants[tenant] = len(self.names)
            self.names.append(tenant)
        return t

    def touch(self, c: int) -> None:
        """Cluster ``c``'s list changed (a job appended, the list replaced): ``sync`` reads it."""
        self.fresh[c] = False

    def sync(self, running: Any, clusters: Sequence[int]) -> None:
        """Bring the sums of ``clusters`` up to their ``running`` lists (what each gained since it
        was read, added in one pass at the end; a list replaced, read again). Only the clusters
        touched since they were read are looked at: the cycle calls ``touch`` on every change."""
        seen = self.seen
        rows: list[int] = []
        demands: list[FloatArray] = []
        at_ = np.asarray(clusters, dtype=np.intp)
        stale = at_[~self.fresh[at_]]
        self.fresh[stale] = True
        for c in stale.tolist():
            jobs = running.get(c)
            got = seen.get(c)
            if got is not None and got[0] is jobs and jobs is not None and got[1] <= len(jobs):
                start = got[1]
            else:
                start = 0
                for row in self.rows_of.get(c, ()):
                    self.demand[row] = 0.0
            if jobs and start < len(jobs):
                row_of = self._row
                new = jobs[start:] if start else jobs
                rows.extend([row_of(c, r.tenant, r.priority) for r in new])  # may grow the arrays
                demands.append(self._demands(new))
            seen[c] = (jobs, len(jobs) if jobs else 0)
        if rows:
            at = np.asarray(rows, dtype=np.intp)
            added = np.concatenate(demands)
            width = len(self.demand)
            for k in range(added.shape[1]):
                self.demand[:, k] += np.bincount(at, weights=added[:, k], minlength=width)

    def evict(self, c: int, running: Any, chosen: Sequence[Any]) -> None:
        """Preemption took ``chosen`` off cluster ``c``: its list is replaced by one without them
        (others may hold the old one), and what follows the old list follows the new one: the
        sums less their demand, the arrays without their rows (the try order kept); instead of
        reading the list again."""
        jobs = running[c]
        gone = {id(r) for r in chosen}
        kept_jobs = [r for r in jobs if id(r) not in gone]
        running[c] = kept_jobs
        got = self.seen.get(c)
        if self.fresh[c] and got is not None and got[0] is jobs and got[1] == len(jobs):
            for r in chosen:
                self.demand[self.row_of[(c, r.tenant, r.priority)]] -= r.demand
            self.seen[c] = (kept_jobs, len(kept_jobs))
        else:
            self.fresh[c] = False
        view = self.views.get(c)
        if view is not None and view[0] is jobs and view[1] == len(jobs):
            objs, pri, ten, dem, perm, ids = view[2]
            keep = np.fromiter((id(r) not in gone for r in objs), dtype=np.bool_, count=len(objs))
            at = np.cumsum(keep) - 1  # each kept job's new position
            perm = at[perm[keep[perm]]].astype(np.intp)
            self.views[c] = (
                kept_jobs,
                len(kept_jobs),
                (list(kept_jobs), pri[keep], ten[keep], dem[keep], perm, ids[keep]),
            )

    def ask(
        self, priority: float, tenant: str, borrowing: Callable[[str], bool] | None, version: Any = None
    ) -> Ask:
        """What a job of ``tenant`` at ``priority`` may evict: jobs of a lower priority and, with
        ``borrowing`` (it is within its nominal quota and quotas reclaim), other tenants' jobs
        while that tenant borrows. Call after ``sync``: every tenant placed is known then. Who
        borrows is asked of every tenant again only when ``version`` (the quota book's count of
        changes) is None or differs from the last ask's, or a tenant was added since."""
        lends = None
        if borrowing is not None:
            kept = self._lends
            if (
                version is not None
                and kept is not None
                and kept[0] == version
                and len(kept[1]) == len(self.names)
            ):
                lends = kept[1]
            else:
                names = self.names
                lends = np.fromiter((borrowing(t) for t in names), dtype=np.bool_, count=len(names))
                self._lends = (version, lends) if version is not None else None
        return Ask(priority, self.tenants.get(tenant, -1), lends)

    def _may(self, ask: Ask, priority: FloatArray, tenant: npt.NDArray[np.intp]) -> npt.NDArray[np.bool_]:
        may: npt.NDArray[np.bool_] = priority < ask.priority
        if ask.lends is not None:
            may |= ask.lends[tenant] & (tenant != ask.own)
        return may

    def room(
        self, ask: Ask, clusters: Sequence[int], free: FloatArray, need: FloatArray
    ) -> npt.NDArray[np.bool_]:
        """Per cluster of ``clusters``: whether its free capacity and the demand of every job
        ``ask`` may evict there reach ``need``."""
        m = self.m
        may = self._may(ask, self.priority[:m], self.tenant[:m])
        where = self.cluster[:m][may]
        taken = self.demand[:m][may]
        idx = np.asarray(clusters, dtype=np.intp)
        room = free[idx].copy()
        for r in range(3):
            room[:, r] += np.bincount(where, weights=taken[:, r], minlength=self.n)[idx]
        enough = room >= need - TOLERANCE * np.maximum(1.0, np.abs(need))
        return np.asarray(enough.all(axis=1), dtype=np.bool_)

    def victims(
        self, ask: Ask, c: int, running: Any, free: FloatArray, need: FloatArray
    ) -> tuple[list[Any], npt.NDArray[np.intp]] | None:
        """Preemption on cluster ``c`` (``kernels.victims``, over the cluster's arrays): its
        placed jobs and the victims' positions among them, in the order tried (highest priority
        first, then job id); None when ``ask`` may evict nothing there, or not enough."""
        jobs = running.get(c)
        if not jobs:
            return None
        objs, pri, ten, dem, perm, _ = self._view(c, jobs)
        got = victims((pri, ten, dem, perm), ask.priority, ask.own, ask.lends, free, need)
        return None if got is None else (objs, got)

    def _view(self, c: int, jobs: Any) -> _View:
        """Cluster ``c``'s placed jobs as arrays in the list's order (priority, tenant, demand
        rows as ``_preempt`` concatenated them) and the order of trying them (highest priority,
        then job id). A list that only grew (the loop appends each placement) is extended; one
        replaced (a preemption took its victims out) is read again."""
        got = self.views.get(c)
        k = len(jobs)
        if got is not None and got[0] is jobs and got[1] == k:
            return got[2]
        if got is not None and got[0] is jobs and got[1] < k:
            old = got[2]
            new = jobs[got[1] :]
            objs = old[0] + list(new)
            pri = np.concatenate([old[1], self._priorities(new)])
            ten = np.concatenate([old[2], self._tenants_of(new)])
            dem = np.concatenate([old[3], self._demands(new)])
            ids = np.concatenate([old[5], np.array([r.job_id for r in new])])
        else:
            objs = list(jobs)
            pri, ten, dem = self._priorities(objs), self._tenants_of(objs), self._demands(objs)
            ids = np.array([r.job_id for r in objs])
        # highest priority first, then job id (``lexsort``: its last key is the primary one)
        perm = np.lexsort((ids, -pri)).astype(np.intp)
        view = (objs, pri, ten, dem, perm, ids)
        self.views[c] = (jobs, k, view)
        return view

    @staticmethod
    def _priorities(jobs: Sequence[Any]) -> FloatArray:
        return np.fromiter((r.priority for r in jobs), dtype=np.float64, count=len(jobs))

    def _tenants_of(self, jobs: Sequence[Any]) -> npt.NDArray[np.intp]:
        return np.fromiter((self._tenant(r.tenant) for r in jobs), dtype=np.intp, count=len(jobs))

    @staticmethod
    def _demands(jobs: Sequence[Any]) -> FloatArray:
        return np.concatenate([r.demand for r in jobs], dtype=np.float64).reshape(len(jobs), -1)


# the jobs, their priorities, tenants, demand rows, the try order, the job ids
_View = tuple[
    list[Any], FloatArray, npt.NDArray[np.intp], FloatArray, npt.NDArray[np.intp], npt.NDArray[np.str_]
]
