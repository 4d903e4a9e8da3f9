"""Backfilling into anti-starvation holds (EASY backfilling, Lifka 1995; Slurm's backfill
scheduler): a hold keeps a long-waiting gang's demand free on one cluster while the work running
there drains, and without backfilling that held part idles until the gang starts. Here a job may
use the held part when it is expected to end before the held gang is expected to be able to start
(the hold's *shadow time*), so, if the estimates are right, it is gone before the gang needs the
room. It is a last resort (``BatchScheduler._rows_with_holds``): a job that fits on another of
its clusters goes there, unless the held cluster moves fewer of its input bytes; the held
cluster is the one place the starved gang can run, and work there that overruns delays it.

The scheduler does not see when running work will end, so it keeps its own ledger of what it
placed: ``EndLedger`` records, per cluster, each placement's expected end (``now`` plus the job's
``expected_runtime_s``) and demand. It needs no word when a job ends: the ledger of a cluster is
reconciled against the cluster's allocated capacity (the truth, from the snapshot), dropping the
entries likeliest to have ended (the earliest expected ends) until it holds no more than is
allocated. Every uncertainty is settled on the side of the held gang, never of the backfill:

- work the ledger does not know (placed by an earlier leader, or reconciled away) and work
  running past its expected end are taken to end *now*: the shadow time comes out earlier, so
  fewer jobs backfill;
- a job without an estimate of its own cannot backfill (``PendingQueue`` passes the shape's
  estimate; the job spec's default is 5 s, so submitters who leave it out get short backfills).

The bound (``tests/scheduler/test_holds.py``): with estimates that hold, the gang starts no later
than it would without backfilling, at the latest when the work running on the held cluster at the
time of the hold has finished; a backfilled job whose estimate was too short delays the gang by
at most its overrun. The ledger costs one list append per placement and is trimmed whenever it
doubles, so its size stays proportional to the work allocated on each cluster.
"""

from __future__ import annotations

import math

import numpy as np

from controller.scheduler.framework import FloatArray

EPS = 1e-9
MIN_TRIM = 64
SAFETY = 1.0


class EndLedger:
    """Per cluster, the expected end and demand of the work this scheduler placed there."""

    def __init__(self) -> None:
        self.entries: dict[int, list[tuple[float, FloatArray]]] = {}
        self._trim_at: dict[int, int] = {}

    def add(self, cluster: int, end: float, demand: FloatArray, allocated: FloatArray) -> None:
        """Record a placement; ``allocated``: the cluster's allocated capacity after it."""
        lst = self.entries.setdefault(cluster, [])
        lst.append((end, demand))
        if len(lst) > self._trim_at.get(cluster, MIN_TRIM):
            self.reconcile(cluster, allocated)
            self._trim_at[cluster] = max(MIN_TRIM, 2 * len(self.entries[cluster]))

    def reconcile(self, cluster: int, allocated: FloatArray) -> list[tuple[float, FloatArray]]:
        """Drop the entries likeliest to have ended (earliest expected end first) until the ledger
        holds no more than ``allocated`` of any resource; the rest, by expected end."""
        lst = sorted(self.entries.get(cluster, []), key=_end)
        if not lst:
            return lst
        # left[k]: what the ledger holds after dropping its first k entries (sums from the last
        # entry back); demands are not negative, so it only falls as k grows, and the first k
        # at which it fits within ``allocated`` is the number to drop (all of them if none).
        demands = np.array([d for _, d in lst], dtype=np.float64)
        left = np.cumsum(demands[::-1], axis=0)[::-1]
        over = (left > allocated + EPS).any(axis=1)
        drop = len(lst) if over.all() else int(over.argmin())
        kept = lst[drop:]
        self.entries[cluster] = kept
        return kept

    def shadow(
        self, cluster: int, free: FloatArray, allocated: FloatArray, demand: FloatArray, now: float
    ) -> float:
        """When ``demand`` is expected to fit on ``cluster``: the free capacity now, plus what
        the ledger expects to end, in order of expected end (work it does not know, and work past
        its expected end, taken to end now). ``now`` when it fits already or cannot be told."""
        kept = self.reconcile(cluster, allocated)
        known = np.sum([d for _, d in kept], axis=0) if kept else np.zeros_like(free)
        avail = free + np.maximum(allocated - known, 0.0)
        if (avail + EPS >= demand).all():
            return now
        for end, d in kept:
            avail = avail + d
            if (avail + EPS >= demand).all():
                return max(end, now)
        return now


def _end(entry: tuple[float, FloatArray]) -> float:
    return entry[0]


def may_backfill(now: float, estimate: float | None, shadow: float) -> bool:
    """A job expected to end by the hold's shadow time may use the held capacity."""
    if estimate is None or not math.isfinite(estimate) or estimate <= 0:
        return False
    return now + SAFETY * estimate <= shadow
