"""Scheduling: the snapshot of the federation a decision reads, ``plan`` (where would this job go,
nothing reserved) and the batch cycle (``schedule_pending``): the pending queue's heads placed
by ``scheduler/batch.py`` with the same pipeline ``plan`` uses, then written in one transaction
fenced by the leader's epoch (``Store.check_leader``), with a re-registration of a target cluster
during the cycle detected under its row's lock (``fresh_targets``). The ledger changes only
after the commit.

Dependencies: the store, the controller's lock, the cluster registry, the capacity tracker, the
counters, the data-set map, the settings, the read model (pending specs, the ledger's priority),
the leadership (epoch, still leading), the decision-time observers (metrics), and callables for
what is replaced at run time (the policies, the scheduler built from the placement policy), the
submission's input check and the loop's wake-up."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
from pydantic import ValidationError

from controller.capacity import CapacityTracker
from controller.datasets import DatasetRead
from controller.history import Counters
from controller.jobs import JobCreate
from controller.policies import PolicySet
from controller.registry import Health, Ledger, Registry
from controller.scheduler import pipeline
from controller.scheduler.batch import BatchScheduler
from controller.scheduler.collector import COLLECTOR
from controller.scheduler.decision import Decision
from controller.scheduler.framework import Snapshot, demand_vector
from controller.scheduler.queue import PendingQueue, Running
from controller.scheduler.scheduler import Scheduler
from controller.scheduler.stored import cycle_rows
from controller.services.clusters import IDENTITY_FIELDS
from controller.services.leadership import Leadership
from controller.services.read_model import ReadModel
from controller.settings import Settings
from controller.store.security import SecurityStore, withdrawn_message
from controller.store.store import Store, now

log = logging.getLogger("yiwang.controller")
GRANTED_KEPT = 1_000_000  # approved (tenant, data set) pairs kept between cycles (``ungranted``)


class RunningView(dict[int, list[Running]]):
    """The ``running`` map the batch scheduler reads for preemption (cluster index -> placed
    jobs). A cluster's jobs are listed from the ledger only when preemption looks at it; jobs
    the cycle places meanwhile are kept aside and merged then. So a cycle without preemption
    costs nothing per active job."""

    def __init__(self, ledger: Ledger, names: list[str]) -> None:
        super().__init__()
        self.ledger = ledger
        self.names = names
        self.placed: dict[int, list[Running]] = {}

    def _load(self, i: int) -> None:
        if not super().__contains__(i) and 0 <= i < len(self.names):
            listed = [
                Running(job_id, i, e.priority, e.demand, e.tenant, e.attempt)
                for job_id, e in self.ledger.jobs_on(self.names[i]).items()
            ]
            super().__setitem__(i, listed + self.placed.pop(i, []))

    def get(self, i: int, default: Any = None) -> Any:
        self._load(i)
        return super().get(i, default)

    def __getitem__(self, i: int) -> list[Running]:
        self._load(i)
        return super().__getitem__(i)

    def setdefault(self, i: int, default: Any = None) -> Any:
        if super().__contains__(i):
            return super().__getitem__(i)
        return self.placed.setdefault(i, [] if default is None else default)


class SchedulingService:
    def __init__(
        self,
        store: Store,
        lock: threading.RLock,
        registry: Registry,
        capacity: CapacityTracker,
        counters: Counters,
        datasets: dict[str, DatasetRead],
        settings: Settings,
        read_model: ReadModel,
        leadership: Leadership,
        decision_observers: list[Callable[[float], None]],
        *,
        policies: Callable[[], PolicySet],
        scheduler: Callable[[], Scheduler],
        check_inputs: Callable[[JobCreate], None],
        wake: Callable[[], None],
    ) -> None:
        self.store = store
        self.lock = lock
        self.registry = registry
        self.capacity = capacity
        self.counters = counters
        self.datasets = datasets
        self.settings = settings
        self.read_model = read_model
        self.leadership = leadership
        self.decision_observers = decision_observers
        self.policies = policies
        self.scheduler = scheduler
        self.check_inputs = check_inputs
        self.wake = wake
        self._batch: BatchScheduler | None = None  # rebuilt when the scheduler or quota changes
        # (grants marker, the (tenant, data set) pairs known approved since it) (``ungranted``)
        self._granted: tuple[int, set[tuple[str, str]]] | None = None

    def snapshot(self) -> Snapshot:
        with self.lock:
            states = list(self.registry.clusters.values())
            allocated = self.registry.allocated()
            assert self.registry.network is not None
            network = self.registry.network
        clusters = [s.spec for s in states]
        declared = np.array(
            [[c.capacity.cpu, c.capacity.memory_gib, c.capacity.gpu] for c in clusters], dtype=np.float64
        ).reshape(-1, 3)
        reserved = np.array([allocated[c.name] for c in clusters], dtype=np.float64).reshape(-1, 3)
        # observed allocatable when known; used = max(reservations, observed requests)
        cap, alloc = self.capacity.effective([c.name for c in clusters], states, declared, reserved)
        return Snapshot(
            clusters=clusters,
            network=network,
            capacity=cap,
            allocated=alloc,
            ready=np.array([s.health == Health.Ready for s in states], dtype=bool),
            cordoned=np.array([s.cordoned or s.draining for s in states], dtype=bool),
            not_ready_reason=[s.health for s in states],
            datasets=dict(self.datasets),
            residency=self.policies().residency,
        )

    def plan(self, spec: JobCreate) -> Decision:
        """Answer "where would this job go" without creating or reserving anything: the decision
        the next cycle would make for it, by the cycle's own pipeline on the cycle's inputs (the
        snapshot, the tenants' usage, the quota policy, the placed jobs preemption may evict)."""
        self.check_inputs(spec)
        snap = self.snapshot()
        with self.lock:
            running, usage = self.running_view(snap)
            snap.tenant_usage = usage
            return pipeline.decide(
                self.scheduler(),
                spec,
                snap,
                quota=self.policies().quota,
                running=running,
                backups=self.policies().failover.backups,
            )

    def schedule_pending(self, limit: int | None = None) -> int:
        """One batch scheduling cycle over the pending queue (priority, then DRF fair share, then
        FIFO; see scheduler/batch.py). Capacity is reserved in the cycle's snapshot as decisions
        are made, so a burst never overcommits; quota, preemption and gang fit apply. The cycle's
        writes go to the store in one transaction with bulk statements; each stored decision is
        compact and the API expands it into the full explained Decision. A cycle with jobs to
        decide runs with the garbage collector off, what survives it frozen (``collector.py``);
        an idle tick does not touch the collector."""
        if not self.leadership.leading():
            return 0
        rows = self.store.pending_heads(limit or self.settings.schedule_batch, with_spec=False)
        if not rows:
            return 0
        with COLLECTOR.cycle():
            return self._schedule(rows)

    def _schedule(self, rows: list[dict[str, Any]]) -> int:
        """``schedule_pending`` for the pending head ``rows`` it read."""
        specs = self.pending_specs_of(rows)
        rows = [r for r in rows if r["id"] in specs]
        ungranted = self.ungranted(rows, specs)
        if ungranted:
            self.fail_pending(ungranted, "a grant for its input was withdrawn")
            rows = [r for r in rows if r["id"] not in ungranted]
        if not rows:
            return 0
        batch = self.batch_scheduler()
        snap = self.snapshot()
        queue = PendingQueue()
        by_id: dict[str, dict[str, Any]] = {}
        # Re-queued jobs (attempt > 1) are re-placed by their failover backup group first.
        origins = self.store.last_placed_clusters([r["id"] for r in rows if r["attempt"] > 1])
        for row in rows:
            if row["id"] in self.registry.ledger:
                continue
            spec = specs[row["id"]]
            shape = batch.shapes.intern(spec, origins.get(row["id"]))
            queue.push(row["id"], shape, row["attempt"], runtime=spec.expected_runtime_s)
            by_id[row["id"]] = row
        t0 = time.perf_counter()
        with self.lock:
            running, usage = self.running_view(snap)
            snap.tenant_usage = usage
            # Backfilling's ledger of expected ends drops exactly the jobs that ended (the
            # registry's ledger holds every job placed and not yet ended)
            batch.ends.retain(self.registry.ledger)
            result = batch.run(
                queue,
                snap,
                limit=len(by_id),
                running=running,
                epoch=self.leadership.epoch,
                backups=self.policies().failover.backups,
            )
        elapsed = time.perf_counter() - t0
        for observe in self.decision_observers:
            for _ in result.decisions:
                observe(elapsed / max(len(result.decisions), 1))
        lease_until = now() + timedelta(seconds=self.policies().failover.lease_s)
        scheduled, decisions, messages, parts, summaries = cycle_rows(
            result.decisions,
            epoch=self.leadership.epoch,
            lease_until=lease_until,
            previous={job_id: row["message"] for job_id, row in by_id.items()},
        )
        requeued = [
            {"id": v.job_id, "attempt": v.attempt, "cluster": v.cluster, "reason": v.reason}
            for v in result.victims
        ]
        if not self.leadership.leading():  # the lease ran out during the cycle: dispatch nothing
            return 0
        with self.lock:
            with self.store.tx() as conn:
                self.store.check_leader(
                    conn, self.leadership.epoch
                )  # fencing, in the cycle's own transaction
                scheduled, requeued = self.fresh_targets(conn, snap, scheduled, requeued)
                self.store.put_decision_parts(conn, parts)
                changed = self.store.apply_cycle(
                    conn, scheduled=scheduled, requeued=requeued, decisions=decisions, messages=messages
                )
                self.store.audit_placements(conn, decisions, changed, summaries)
            # Committed: only now the ledger. A commit that failed (a failover) must not leave
            # reservations behind for jobs that are still Pending in the store; one whose outcome
            # is unknown reaches the ledger through the follower, from its Scheduled events.
            for v in result.victims:
                if v.job_id in changed:
                    self.registry.ledger.pop(v.job_id)
            for r in scheduled:
                if r["id"] in changed:
                    spec = specs[r["id"]]
                    self.read_model.pending_specs.pop(r["id"], None)
                    self.registry.ledger.add(
                        r["id"],
                        r["cluster"],
                        demand_vector(spec),
                        spec.tenant,
                        self.read_model.priority_of(spec),
                        r["attempt"],
                    )
        placed = sum(1 for r in scheduled if r["id"] in changed)
        self.counters.placements += placed
        self.counters.preemptions += sum(1 for r in requeued if r["id"] in changed)
        for d in result.decisions:
            if d.chosen >= 0 and d.job_id in changed:
                self.counters.wan_bytes += d.moved_bytes()
        if requeued:
            self.wake()
        return placed

    def pending_specs_of(self, rows: list[dict[str, Any]]) -> dict[str, JobCreate]:
        """The specs of the pending ``rows``: this process's cache, else read from the store and
        validated once, then kept like this process's own submissions (specs of jobs submitted
        through another process, an API replica or a previous leader: a job that waits is not
        read again). A job whose stored spec is not valid here fails (``fail_invalid``) and is
        left out."""
        cache = self.read_model.pending_specs
        specs: dict[str, JobCreate] = {}
        missing = []
        for row in rows:
            cached = cache.get(row["id"])
            if cached is None:
                missing.append(row["id"])
            else:
                specs[row["id"]] = cached
        invalid: dict[str, str] = {}
        for job_id, text in self.store.job_specs_json(missing).items():
            try:
                spec = specs[job_id] = JobCreate.model_validate_json(text)
            except ValidationError as exc:  # stored by an older version, or by hand
                invalid[job_id] = str(exc).replace("\n", "; ")[:500]
                continue
            self.read_model.keep_spec(job_id, spec)
        if invalid:
            self.fail_invalid(invalid)
        return specs

    def fail_invalid(self, invalid: dict[str, str]) -> None:
        """Pending jobs whose stored spec this controller cannot read fail with the reason (left
        Pending, each would come back at the head of every cycle and never run)."""
        for job_id, why in invalid.items():
            log.error("failing job %s: its stored spec is not valid: %s", job_id, why)
        self.fail_pending(
            {job_id: f"its stored spec is not valid: {why}" for job_id, why in invalid.items()},
            "its stored spec is not valid",
        )

    def fail_pending(self, messages: dict[str, str], reason: str) -> None:
        """Pending jobs that must not run fail, each with its message (a job that left Pending
        meanwhile, cancelled, is left as it is)."""
        with self.store.tx() as conn:
            self.store.check_leader(conn, self.leadership.epoch)
            for job_id, message in messages.items():
                self.store.transition(
                    conn,
                    job_id,
                    expect_phases=["Pending"],
                    expect_attempt=None,
                    values={"phase": "Failed", "message": message},
                    event_type="Failed",
                    reason=reason,
                )

    def ungranted(self, rows: list[dict[str, Any]], specs: dict[str, JobCreate]) -> dict[str, str]:
        """The pending jobs among ``rows`` that read a data set their tenant neither owns nor
        holds an approved grant for now, each with its message. A submission is checked for its
        grants when it arrives (``Security.check_grants``); an owner may withdraw a grant while
        the job waits, and a withdrawn grant must stop every job that has not started from
        reading the data. So the grants are read again before a job is placed, from the
        database: the (tenant, data set) pairs found approved are kept while no grant has been
        decided since (``grants_marker``, one indexed read a cycle), and only pairs not known
        approved are read (``approved_pairs``); nothing is read when no job of the cycle reads
        another owner's data. Open dev mode checks no grants, here as at submission."""
        if self.settings.open_auth:
            return {}
        datasets = self.datasets
        reads: list[tuple[str, str, list[str]]] = []  # (job, tenant, data sets of other owners)
        for row in rows:
            spec = specs[row["id"]]
            if not spec.inputs:
                continue
            foreign = [
                d for d in spec.inputs if (ds := datasets.get(d)) is not None and ds.owner != spec.tenant
            ]
            if foreign:
                reads.append((row["id"], spec.tenant, foreign))
        if not reads:
            return {}
        grants = SecurityStore(self.store)
        marker = grants.grants_marker()  # read before the pairs: a later decision shows next cycle
        if self._granted is None or self._granted[0] != marker or len(self._granted[1]) > GRANTED_KEPT:
            self._granted = (marker, set())
        approved = self._granted[1]
        unknown = {(r[1], d) for r in reads for d in r[2]} - approved
        if unknown:
            approved |= grants.approved_pairs(unknown)
        out: dict[str, str] = {}
        for job_id, tenant, foreign in reads:
            missing = [d for d in foreign if (tenant, d) not in approved]
            if missing:
                out[job_id] = withdrawn_message(tenant, missing)
        return out

    def fresh_targets(
        self,
        conn: Any,
        snap: Snapshot,
        scheduled: list[dict[str, Any]],
        requeued: list[dict[str, Any]],
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """In the cycle's transaction: drop placements (and the preemptions made for them) on a
        cluster whose tenant, tier or adcode is no longer the one the cycle decided with (it was
        re-registered meanwhile, here or by another controller process). The target rows are
        key-share locked, so a re-registration either committed before (and is seen here) or
        waits for this commit (and then sees the placements as active jobs: refused)."""
        targets = {r["cluster"] for r in scheduled}
        if not targets:
            return scheduled, requeued
        used = {c.name: c for c in snap.clusters if c.name in targets}
        stored = self.store.cluster_specs(conn, targets, lock="key-share")
        stale = {
            n
            for n in targets
            if n not in stored
            or n not in used
            or tuple(stored[n].get(f) for f in IDENTITY_FIELDS)
            != (used[n].tenant, used[n].tier.value, used[n].adcode)
        }
        if not stale:
            return scheduled, requeued
        log.warning("not placing jobs on %s: re-registered or removed during the cycle", sorted(stale))
        return (
            [r for r in scheduled if r["cluster"] not in stale],
            [r for r in requeued if r["cluster"] not in stale],
        )

    def batch_scheduler(self) -> BatchScheduler:
        """The batch wrapper of the current scheduler and quota policy (rebuilt when they change;
        it caches static per-shape results between cycles)."""
        current = self._batch
        if (
            current is None
            or current.scheduler is not self.scheduler()
            or current.quota is not self.policies().quota
        ):
            current = self._batch = BatchScheduler(self.scheduler(), self.policies().quota)
        return current

    def running_view(self, snap: Snapshot) -> tuple[dict[int, list[Running]], dict[str, np.ndarray]]:
        """Placed jobs per cluster index (preemption candidates, listed only for the clusters
        preemption looks at) and usage per tenant (quota), from the ledger's running totals."""
        return RunningView(self.registry.ledger, snap.names), self.registry.ledger.tenant_totals()
