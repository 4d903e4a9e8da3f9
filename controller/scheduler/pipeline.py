"""One scheduling pipeline for every decision: the leader's cycle and ``POST /v1/plan``.

A decision is made by ``BatchScheduler.run`` and nothing else: shapes (static filters and scores
once per shape), the dynamic filters and scores on free capacity, quota admission, preemption,
failover backups and the locality wait, in that order (see ``batch.py``). A single decision (a
plan, a test) is a one-job batch against the same inputs the cycle reads — the snapshot, the
tenants' usage (``Snapshot.tenant_usage``), the quota policy, the placed jobs preemption may
evict and the failover backups — on a throwaway ``BatchScheduler``: nothing it remembers between
cycles (locality waits, holds, failure counts) is carried in or out, so a plan is the decision the
next cycle would make for the job submitted now. Without ``reserve`` the snapshot is left as it
was; with it, the snapshot's allocation takes the placed job (as the cycle's does).
"""

from __future__ import annotations

from controller.jobs import JobCreate
from controller.policies import QuotaPolicy
from controller.scheduler.batch import BatchScheduler
from controller.scheduler.decision import Decision
from controller.scheduler.framework import Snapshot
from controller.scheduler.queue import PendingQueue, Running
from controller.scheduler.scheduler import Scheduler

# The id a single decision runs under inside the batch (a plan has no job yet); the Decision
# handed back carries ``job_id`` (None for a plan).
SINGLE = "(single decision)"


def decide(
    scheduler: Scheduler,
    spec: JobCreate,
    snap: Snapshot,
    *,
    quota: QuotaPolicy | None = None,
    running: dict[int, list[Running]] | None = None,
    backups: dict[str, list[str]] | None = None,
    origin: str | None = None,
    job_id: str | None = None,
    attempt: int = 1,
    reserve: bool = False,
    now: float | None = None,
) -> Decision:
    """The cycle's decision for one job. ``quota``: the quota policy (else ``snap.quota``);
    ``running``: placed jobs per cluster index (preemption; it is updated as a cycle's would be,
    so pass a copy you may lose); ``origin``: the failed cluster a re-placed job comes from."""
    batch = BatchScheduler(scheduler, quota if quota is not None else snap.quota)
    queue = PendingQueue()
    queue.push(job_id or SINGLE, batch.shapes.intern(spec, origin), attempt)
    kept = snap.allocated
    if not reserve:
        snap.allocated = kept.copy()
    try:
        result = batch.run(queue, snap, limit=1, running=running, backups=backups, now=now)
    finally:
        snap.allocated = kept
    compact = result.decisions[0]
    compact.job_id = job_id
    return compact.to_decision()
