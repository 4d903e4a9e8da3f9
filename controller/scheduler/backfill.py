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
entries likeliest to have ended (the earliest expected ends), each only while the ledger holds
more than is allocated of every resource it asks for: many short cpu-only jobs that ended do not
make it drop a GPU job whose GPUs the snapshot shows still allocated (``reconcile``). Every
uncertainty is settled on the side of the held gang, never of the backfill:

- work the ledger does not know (placed by an earlier leader, or reconciled away) is taken to
  end *now*: the shadow time comes out earlier, so fewer jobs backfill;
- work running past its expected end is expected to overrun by as much again as it has so far
  (``overrun``): taken to end now, it stopped every backfill for as long as it overran, and the
  held cluster idled behind one long overrun; this way a backfill delays the held gang by at most
  the blocking work's own overrun;
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
from collections.abc import Container
from operator import itemgetter

import numpy as np

from controller.scheduler.framework import FloatArray
from controller.scheduler.kernels import LEDGER_EPS, ledger_drops

EPS = LEDGER_EPS
MIN_TRIM = 64
SAFETY = 1.0
BY_END = itemgetter(0)  # sort key: entries and (expected end, demand) pairs by their end


# A ledger entry: the expected end, the demand, and whether the work was placed on the cluster
# while it was held for another job (a backfill, or work beside the hold): such work is held to
# its expected end (``overrun``).
Entry = tuple[float, FloatArray, bool]


class EndLedger:
    """Per cluster, the expected end and demand of the work this scheduler placed there."""

    def __init__(self) -> None:
        self.entries: dict[int, list[Entry]] = {}
        self._trim_at: dict[int, int] = {}
        # Once a caller says which jobs run (``retain``): each recorded job's cluster and entry.
        self._jobs: dict[str, tuple[int, Entry]] | None = None

    def add(
        self,
        cluster: int,
        end: float,
        demand: FloatArray,
        allocated: FloatArray,
        under_hold: bool = False,
        job: str | None = None,
    ) -> None:
        """Record a placement; ``allocated``: the cluster's allocated capacity after it;
        ``under_hold``: placed while the cluster was held for another job; ``job``: its id."""
        lst = self.entries.setdefault(cluster, [])
        entry = (end, demand, under_hold)
        lst.append(entry)
        if job is not None and self._jobs is not None:
            self._jobs[job] = (cluster, entry)
        if len(lst) > self._trim_at.get(cluster, MIN_TRIM):
            self.reconcile(cluster, allocated)
            self._trim_at[cluster] = max(MIN_TRIM, 2 * len(self.entries[cluster]))

    def retain(self, running: Container[str]) -> None:
        """The jobs running now (the store's running view; the replay's running set): the entries
        of jobs that are not among them are dropped, exactly those that ended, where the capacity
        rule of ``reconcile`` can only guess (it takes the earliest-due entries to be the ones that
        ended, so an overrunning job's entry went when a later one ended early). From the first
        call on, ``add`` records each job's entry to drop it here."""
        jobs = self._jobs
        if jobs is None:
            self._jobs = {}
            return
        dead: dict[int, set[int]] = {}
        for job in [j for j in jobs if j not in running]:
            cluster, entry = jobs.pop(job)
            dead.setdefault(cluster, set()).add(id(entry))
        for cluster, ids in dead.items():
            self.entries[cluster] = [e for e in self.entries.get(cluster, []) if id(e) not in ids]

    def reconcile(self, cluster: int, allocated: FloatArray) -> list[Entry]:
        """Drop the entries likeliest to have ended; the rest, by expected end.

        Earliest expected end first, an entry is dropped when the ledger holds more than
        ``allocated`` of *every* resource the entry asks for (the surplus, before dropping it);
        one that asks for a resource without a surplus is kept, and the walk goes on. So short
        cpu-only entries that ended do not take a GPU entry with them while the cluster's GPUs
        are still allocated: the GPU part of the ledger stays right, and with it the shadow times.
        With estimates that hold and a ledger that knows all the work, exactly the entries that
        ended are dropped (each ended entry's own demand is part of the surplus before it).

        Afterwards the ledger holds no more than ``allocated`` of a resource, or, where it holds
        more, every entry left that asks for that resource also asks for one without a surplus
        (which of them ended the snapshot cannot tell: dropping any would take a resource that is
        still in use). That weaker form is enough for ``shadow``: it clips the capacity the
        ledger does not know at 0, and with estimates that hold (every entry with an expected end
        after now still runs) a surplus only brings the shadow time earlier, the held gang's side.
        """
        lst = sorted(self.entries.get(cluster, []), key=BY_END)
        if not lst:
            return lst
        demands = np.concatenate([e[1] for e in lst], dtype=np.float64).reshape(len(lst), -1)
        kept = [e for e, drop in zip(lst, ledger_drops(demands, allocated).tolist(), strict=True) if not drop]
        self.entries[cluster] = kept
        return kept

    def shadow(
        self, cluster: int, free: FloatArray, allocated: FloatArray, demand: FloatArray, now: float
    ) -> float:
        """When ``demand`` is expected to fit on ``cluster``: the free capacity now, plus what
        the ledger expects to end, in order of expected end (work it does not know taken to end
        now; work past its expected end as ``overrun`` says). ``now`` when it fits already or
        cannot be told."""
        kept = self.reconcile(cluster, allocated)
        known = np.sum([e[1] for e in kept], axis=0) if kept else np.zeros_like(free)
        avail = free + np.maximum(allocated - known, 0.0)
        if (avail + EPS >= demand).all():
            return now
        expected = sorted(((overrun(end, now, held), d) for end, d, held in kept), key=BY_END)
        for end, d in expected:
            avail = avail + d
            if (avail + EPS >= demand).all():
                return end
        return now


def overrun(end: float, now: float, under_hold: bool = False) -> float:
    """The expected end, at ``now``, of work expected to end at ``end``: ``end`` while it is
    ahead; past it, the work is expected to overrun its estimate by as much again as it has so
    far (``now + (now - end)``: the doubling rule of online algorithms, no constant to tune),
    unless it was placed while the cluster was held (``under_hold``): a backfill was let in on
    its estimate, and past it counts as ending now (EASY). Otherwise backfills that overrun
    (the spec's 5 s default estimate on a 100 s job) would push the shadow on, let in more of
    their kind, and the held gang would never start (tests/scheduler/test_holds.py, the flood:
    with every overdue entry extended the gang had not started after 3,000 s).

    Taking overdue work to end *now* instead stopped every backfill into the hold for as long as
    the overrun lasted, with the rest of the held cluster idle: on the replay's GPU trace at 90 %
    load (sjf) a 55-GPU job whose estimate was 18,411 s ran 61,169 s on national-primary, the
    hold for a 90-GPU gang there waited 50,375 s behind it, and for the 42,800 s past its
    expected end the other 62 GPUs took no GPU job while 129 to 273 gangs that only the national
    nodes can hold waited (up to 62 of them small enough for those 62 GPUs). The bound it
    keeps: a job that backfills at ``now`` ends, if its estimate holds, by ``now + (now - end)``,
    so the held gang starts at the latest when the overrunning work has ended plus its overrun
    (``actual_end + (actual_end - end)``), the overrun at most doubled, plus the overruns of the
    backfills (they get no more room once past their estimates)."""
    if end >= now:
        return end
    return now if under_hold else 2.0 * now - end


def may_backfill(now: float, estimate: float | None, shadow: float) -> bool:
    """A job expected to end by the hold's shadow time may use the held capacity."""
    if estimate is None or not math.isfinite(estimate) or estimate <= 0:
        return False
    return now + SAFETY * estimate <= shadow
