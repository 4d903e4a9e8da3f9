"""The controller process: its composition root (``Controller.__init__`` wires the services of
``controller/services/``), the in-memory views, the leader/follow/sample loops, and the use cases
not yet split out: submission, cancel, plan and the scheduling cycle.

The API layer is a thin shell over this class; so are the CLI and the embedded federation.
Clusters (services/clusters.py), the agent protocol (services/agents.py) and the data-set
catalogue (services/datasets.py) are services of their own; their methods here only delegate,
so callers (routes, tests, drills) keep one entry point. Every state change is committed to the
store before it is acknowledged.

Over 400 lines, for now: the scheduling cycle (``schedule_pending`` and its helpers) is being
unified with ``/v1/plan`` into one pipeline in a parallel change (issue 11), and moves to a
service of its own with it; submission and the loops are the next to go (docs/architecture.md).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ValidationError

from controller import audit
from controller.assignments import Assignment, StatusReport, sanitize_reported
from controller.capacity import CapacityTracker, HeartbeatCapacitySource, PrometheusCapacitySource
from controller.datasets import DatasetCreate, DatasetRead
from controller.domain.phases import TERMINAL, JobPhase, Reason, check_transition
from controller.errors import (
    Conflict,
    InvalidInput,
    InvalidPolicy,
    NotFound,
    StaleLeader,
    StoreUnavailable,
    YiwangError,
)
from controller.follower import StoreFollower
from controller.history import ClusterHistory, Counters, MetricsRing, Sample
from controller.jobs import JobCreate, JobEvent, JobRead
from controller.policies import (
    POLICY_KINDS,
    PolicySet,
    cross_check,
    validate_kind,
)
from controller.registry import ClusterState, Health, Ledger, Registry
from controller.scheduler import pipeline
from controller.scheduler.batch import BatchScheduler, PendingQueue, Running, tune_gc
from controller.scheduler.decision import Decision
from controller.scheduler.framework import Snapshot, demand_vector
from controller.scheduler.plugins import FILTER_PLUGINS, SCORE_PLUGINS
from controller.scheduler.quota import class_priority
from controller.scheduler.scheduler import Scheduler
from controller.scheduler.stored import cycle_rows
from controller.services.agents import AgentProtocol
from controller.services.clusters import IDENTITY_FIELDS, ClusterService
from controller.services.datasets import DatasetCatalogue, dataset_read
from controller.services.policy_files import load_policy_set
from controller.settings import Settings
from controller.store import audit_chain
from controller.store.store import ACTIVE_PHASES, AUDIT_KEY, Store, new_job_id, now, utc
from controller.topology.model import Cluster

log = logging.getLogger("yiwang.controller")


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


PENDING_SPEC_CACHE = 100_000  # about 4 KB a spec: 400 MB at most (a cycle takes schedule_batch)
CANCEL_TRIES = 8
JOB_TERMS_CACHE = 200_000
TERMINAL_PHASES = frozenset(p.value for p in TERMINAL)


def spec_hash(spec: JobCreate) -> str:
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()


class Controller:
    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or Store(settings.database_url)
        self.lock = threading.RLock()
        self.epoch = 0  # the leader epoch this process holds; 0 when it does not lead
        # Local monotonic time until which this process may act as leader: the send time of the
        # last successful renewal plus the TTL, less a margin for clock-rate differences, so it
        # stops leading before a successor can take the lease (the store's expiry).
        self._lead_until = 0.0
        # When this process took its current epoch: a cluster's silence counts only from then
        # (expire_leases), since before it no contact could reach a leader (a store failover, a
        # controller outage) and agents that finished work meanwhile must get to report it.
        self.lead_since: datetime | None = None
        self.observed_epoch = 0  # the leader epoch in the store, as of the last sync
        self.policies = self._load_policies()
        self.registry = Registry(base_links=list(self.policies.topology.links))
        self.scheduler = Scheduler.from_policy(self.policies.placement)
        self.datasets: dict[str, DatasetRead] = {}
        self.catalogue = DatasetCatalogue(
            self.store, self.lock, self.registry, lambda: self.policies.residency, self.datasets
        )
        self.decision_observers: list[Callable[[float], None]] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lease_thread: threading.Thread | None = None
        self._last_checkpoint = float("-inf")
        self._store_down_logged: dict[str, float] = {}
        self.metrics_registry: CollectorRegistry | None = None
        # Specs of jobs submitted through this controller and not yet placed, so a scheduling
        # cycle does not re-read and re-validate them from the store (bounded; misses are read).
        self._pending_specs: dict[str, JobCreate] = {}
        # (tenant, demand, priority) of jobs submitted through this process and not finished:
        # a follower adds a placement of one of them to the ledger without reading its row.
        self.job_terms: dict[str, tuple[str, tuple[float, float, float], int]] = {}
        self._batch: BatchScheduler | None = None  # rebuilt when the scheduler or quota changes
        self.capacity = self._capacity_tracker()
        self.follower: StoreFollower | None = None
        # What the dashboard draws over time (controller/history.py): in memory, bounded.
        self.cluster_history = ClusterHistory()
        self.metrics_ring = MetricsRing(settings.metrics_history)
        self.counters = Counters()
        self.clusters = ClusterService(
            self.store,
            self.lock,
            self.registry,
            self.counters,
            failover=lambda: self.policies.failover,
            epoch=lambda: self.epoch,
            lead_since=lambda: self.lead_since,
            note_cluster=lambda name, state, reason: self.note_cluster(name, state, reason),
            wake=lambda: self.wake(),
        )
        self.agents = AgentProtocol(
            self.store,
            self.lock,
            self.registry,
            self.counters,
            failover=lambda: self.policies.failover,
            epoch=lambda: self.current_epoch,
            # late-bound, so a replaced callback (a test's, a subclass's) is the one called
            note_cluster=lambda name, state, reason: self.note_cluster(name, state, reason),
            forget_terms=lambda job_id, phase: self.forget_terms(job_id, phase),
            get_job=lambda job_id: self.get_job(job_id),
            wake=lambda: self.wake(),
        )
        self._sampler_thread: threading.Thread | None = None
        self._bootstrap()

    # ---- start-up ---------------------------------------------------------------------------
    def _load_policies(self) -> PolicySet:
        files = load_policy_set(self.settings.policies_dir)
        stored = self.store.get_policies()
        merged: dict[str, Any] = {"topology": files.topology}
        for kind in POLICY_KINDS:
            if kind in stored:
                try:
                    merged[kind] = validate_kind(kind, stored[kind]["body"])
                except InvalidPolicy as exc:
                    # A stored policy the API would refuse (written by hand, or before a bound
                    # existed): start on the file's policy and say so; the row stays for review.
                    log.error(
                        "stored %s policy (version %s) is invalid, using %s/%s.yaml: %s",
                        kind,
                        stored[kind]["version"],
                        self.settings.policies_dir,
                        kind,
                        exc.errors[:3],
                    )
                    merged[kind] = getattr(files, kind)
            else:
                # Seed it, unless another process starting at the same moment just did: then
                # theirs stands (same files, and the version stays 1).
                seeded = self.store.seed_policy(kind, getattr(files, kind).model_dump(mode="json"))
                merged[kind] = validate_kind(kind, seeded)
        return PolicySet.model_validate(merged)

    def _bootstrap(self) -> None:
        self.store.insert_missing_clusters(
            {c.name: c.model_dump(mode="json") for c in self.policies.topology.clusters}
        )
        # Events up to here are reflected in the ledger read below; the follower applies the
        # later ones (again, harmlessly, for events that commit between these two reads).
        after_event = self.store.max_event_id()
        cluster_rows = self.store.list_clusters()
        declared = self.policies.topology.by_name()
        for row in cluster_rows:
            try:
                spec = Cluster.model_validate(row["spec"])
            except ValidationError as exc:
                if row["name"] not in declared:
                    log.error("skipping stored cluster %r: its spec is invalid: %s", row["name"], exc)
                    continue
                log.error("stored cluster %r has an invalid spec; using the topology's: %s", row["name"], exc)
                spec = declared[row["name"]]
            self.registry.clusters[row["name"]] = ClusterState(
                spec=spec,
                cordoned=row["cordoned"],
                draining=row["draining"],
                health=row["health"],
                last_heartbeat=utc(row["last_heartbeat"]),
                reported=sanitize_reported(row["reported"]),
            )
        self.registry.rebuild_network()
        for name, state in self.registry.clusters.items():
            self.note_cluster(name, state, "as stored when this controller started")
        for row in self.store.list_datasets():
            try:
                self.datasets[row["id"]] = self.dataset_read(row)
            except ValidationError as exc:
                log.error("skipping stored data set %r: it is invalid: %s", row["id"], exc)
        for row in self.store.active_jobs():
            try:
                self.apply_job_state(row)
            except (ValidationError, ValueError, TypeError, KeyError) as exc:
                log.error("not counting stored job %r in the ledger: its spec is invalid: %s", row["id"], exc)
        self.follower = StoreFollower(self, after_event=after_event)
        self.follower.remember_cluster_rows(cluster_rows)
        self.follower.policy_versions = self.store.policy_versions()
        if self.settings.mode == "active" and self.settings.role == "all":
            self.renew_leadership()
        self.observed_epoch = self.store.leader_epoch()

    def apply_job_state(self, row: dict[str, Any]) -> None:
        """Set the job's ledger entry from its stored row (id, tenant, phase, cluster, attempt,
        spec): present while an attempt is placed, absent otherwise. Callers hold the lock
        (or own the controller, at start-up)."""
        job_id = row["id"]
        if row["phase"] != "Pending":
            self._pending_specs.pop(job_id, None)
        if row["phase"] not in ACTIVE_PHASES or not row["cluster"]:
            self.registry.ledger.pop(job_id)
            return
        entry = self.registry.ledger.entries.get(job_id)
        if entry is not None and (entry.cluster, entry.attempt) == (row["cluster"], row["attempt"]):
            return
        demand, priority = self._ledger_terms(row["spec"])
        self.registry.ledger.add(job_id, row["cluster"], demand, row["tenant"], priority, row["attempt"])

    def _ledger_terms(self, spec: dict[str, Any]) -> tuple[np.ndarray, int]:
        """(demand, effective priority) of a stored spec. Stored specs are complete
        (``model_dump`` of a validated JobCreate), so this reads the few fields it needs instead
        of validating the whole spec again: a follower does it for every placement it learns of."""
        try:
            r, replicas = spec["resources"], spec["replicas"]
            gpu = r["gpu_milli"] / 1000.0 if r.get("gpu_milli") else r["gpu"]
            demand = np.array([r["cpu"], r["memory_gib"], gpu], dtype=np.float64) * replicas
            priority = self._priority(int(spec["priority"]), spec["priority_class"])
            if not (np.isfinite(demand).all() and (demand >= 0).all()):
                raise TypeError("demand out of bounds")
        except (KeyError, TypeError):  # not our own complete form: validate it (raises if bad)
            full = JobCreate.model_validate(spec)
            return demand_vector(full), self._priority_of(full)
        return demand, priority

    def _note_terms(self, job_id: str, spec: JobCreate) -> None:
        if len(self.job_terms) < JOB_TERMS_CACHE:
            d = demand_vector(spec)
            self.job_terms[job_id] = (
                spec.tenant,
                (float(d[0]), float(d[1]), float(d[2])),
                self._priority_of(spec),
            )

    def forget_terms(self, job_id: str, phase: str | None) -> None:
        """A job left Scheduled/Running (callers hold the lock): its pending spec goes unless
        it is Pending again; its noted terms go once it is finished."""
        if phase != "Pending":
            self._pending_specs.pop(job_id, None)
        if phase in TERMINAL_PHASES:
            self.job_terms.pop(job_id, None)

    def sync_from_store(self) -> None:
        """Bring the in-memory views up to date with what other controller processes changed
        (controller/follower.py)."""
        if self.follower is not None:
            self.follower.sync()

    def replace_policies(self, policies: PolicySet) -> None:
        """Swap in a validated policy set (callers hold the lock)."""
        placement_changed = policies.placement != self.policies.placement
        self.policies = policies
        if placement_changed:
            self.scheduler = Scheduler.from_policy(policies.placement)

    @property
    def current_epoch(self) -> int:
        """The epoch agents are told: this process's own while it leads, else the store's."""
        return self.epoch or self.observed_epoch

    def _capacity_tracker(self) -> CapacityTracker:
        s = self.settings
        heartbeats = HeartbeatCapacitySource(
            lambda: self.registry.clusters,
            lambda: self.policies.failover.lease_s + self.policies.failover.heartbeat_grace_s,
        )
        prom = (
            PrometheusCapacitySource(
                s.prometheus_url, timeout_s=s.prometheus_timeout_s, max_age_s=s.capacity_max_age_s
            )
            if s.prometheus_url
            else None
        )
        return CapacityTracker(heartbeats, prom, refresh_s=s.capacity_refresh_s)

    @property
    def leader_margin_s(self) -> float:
        """How long before the store's lease expiry this process stops leading."""
        return min(2.0, self.settings.leader_ttl_s * 0.2)

    def renew_leadership(self) -> bool:
        sent = time.monotonic()
        epoch = self.store.acquire_leadership(self.settings.holder, self.settings.leader_ttl_s)
        with self.lock:
            if epoch is None:
                if self.epoch:
                    log.warning("lost the scheduling lease (epoch %d): no longer leading", self.epoch)
                self.epoch, self._lead_until = 0, 0.0
            else:
                if epoch != self.epoch:
                    log.info("leading with epoch %d", epoch)
                    self.lead_since = now()
                self.epoch = epoch
                self._lead_until = sent + self.settings.leader_ttl_s - self.leader_margin_s
        return epoch is not None

    @property
    def is_leader(self) -> bool:
        """Holds the scheduling lease now. Without background loops (tests, tools) the lease
        is renewed by ``leading()`` on use instead."""
        return self.epoch > 0 and (time.monotonic() < self._lead_until or not self.settings.background)

    def leading(self) -> bool:
        """Checked before every cycle and every dispatch: still the leader, with time to spare?
        Without a lease thread (background=False) the lease is renewed here when it is due."""
        if self.epoch > 0 and time.monotonic() < self._lead_until:
            return True
        if not self.settings.background and self.epoch > 0:
            return self.renew_leadership()
        return False

    def _lost_lead(self, exc: StaleLeader) -> None:
        log.warning("a write as leader epoch %d was refused (%s): no longer leading", self.epoch, exc.detail)
        with self.lock:
            self.epoch, self._lead_until = 0, 0.0

    # ---- background loop --------------------------------------------------------------------
    def start(self) -> None:
        tune_gc()
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="yiwang-control-loop", daemon=True)
            self._thread.start()
        if self._sampler_thread is None:
            self._sampler_thread = threading.Thread(
                target=self._sample_loop, name="yiwang-metrics-sampler", daemon=True
            )
            self._sampler_thread.start()
        if self._lease_thread is None and self.settings.role == "all":
            self._lease_thread = threading.Thread(
                target=self._lease_loop, name="yiwang-leader-lease", daemon=True
            )
            self._lease_thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._lease_thread is not None:
            self._lease_thread.join(timeout=10)
            self._lease_thread = None
        if self._sampler_thread is not None:
            self._sampler_thread.join(timeout=10)
            self._sampler_thread = None

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        if self.settings.role == "api":
            self._follow_loop()
            return
        last_cycle = 0.0
        while not self._stop.is_set():
            self._wake.wait(self.settings.loop_interval_s)
            # Coalesce wake-ups: under a stream of submissions a cycle runs at most every
            # min_cycle_gap_s and takes everything queued meanwhile, instead of one cycle (and
            # one fsync under SQLite's single write lock) per submission.
            gap = self.settings.min_cycle_gap_s - (time.monotonic() - last_cycle)
            if gap > 0 and self._stop.wait(gap):
                break
            self._wake.clear()
            last_cycle = time.monotonic()
            try:
                self.capacity.maybe_refresh()  # Prometheus, in its own thread, at a bounded rate
                self.sync_from_store()
                if self.leading():
                    self.maybe_checkpoint_audit()
                    self.expire_leases()
                    while self.schedule_pending() >= self.settings.schedule_batch:
                        pass
            except StaleLeader as exc:  # deposed mid-cycle: the cycle's writes were rolled back
                self._lost_lead(exc)
            except StoreUnavailable as exc:  # a failover: nothing of the cycle was committed
                self._store_down(exc, "control loop")
                self._stop.wait(min(1.0, exc.retry_after))
            except Exception:  # the loop must survive a failed cycle; the error is logged in full
                log.exception("control loop cycle failed")

    def _lease_loop(self) -> None:
        """Renew the scheduling lease in its own thread, so that no cycle, however long, starves
        it: a leader renews five times per TTL; a follower tries to take the lease every second
        (or faster with a short TTL), so a successor leads within TTL + about a second."""
        ttl = self.settings.leader_ttl_s
        while True:
            try:
                was = self.epoch
                if self.renew_leadership() and not was:
                    self.wake()
            except StoreUnavailable as exc:  # our lease runs out by itself (leading() says so)
                self._store_down(exc, "leader lease")
            except Exception:
                log.exception("renewing the scheduling lease failed")
            if self._stop.wait(ttl / 5 if self.epoch else min(1.0, ttl / 5)):
                return

    def _store_down(self, exc: StoreUnavailable, what: str) -> None:
        """One warning per 5 s while the store is away (a failover lasts tens of seconds and the
        loops retry many times a second)."""
        t = time.monotonic()
        if t - self._store_down_logged.get(what, float("-inf")) >= 5.0:
            self._store_down_logged[what] = t
            log.warning("%s: %s", what, exc.detail)

    def _sample_loop(self) -> None:
        while not self._stop.wait(self.settings.metrics_sample_s):
            try:
                self.sample_metrics()
            except StoreUnavailable as exc:  # a failover: a gap in the charts, nothing more
                self._store_down(exc, "metrics sampling")
            except Exception:
                log.exception("sampling the controller's metrics failed")

    def sample_metrics(self) -> Sample:
        """Read the controller's metrics into the ring buffer (and note cluster state changes
        another controller process made); the dashboard's time series are differences of these."""
        counts = self.store.count_jobs_by_phase()
        t = time.time()
        with self.lock:
            states = list(self.registry.clusters.items())
            allocated = self.registry.allocated()
        cpu_cap = gpu_cap = cpu_alloc = gpu_alloc = 0.0
        unreachable = 0
        for name, state in states:
            self.note_cluster(name, state, "changed by another controller process")
            eff = self._capacity_view(state)["effective_capacity"]
            a = allocated.get(name)
            cpu_cap += eff["cpu"]
            gpu_cap += eff["gpu"]
            if a is not None:
                cpu_alloc += float(a[0])
                gpu_alloc += float(a[2])
            unreachable += state.health == Health.Unreachable
        c = self.counters
        sample = Sample(
            t=t,
            pending=counts.get("Pending", 0),
            scheduled=counts.get("Scheduled", 0),
            running=counts.get("Running", 0),
            unreachable=unreachable,
            cpu_allocated=cpu_alloc,
            cpu_capacity=cpu_cap,
            gpu_allocated=gpu_alloc,
            gpu_capacity=gpu_cap,
            placements=c.placements,
            failovers=c.failovers,
            preemptions=c.preemptions,
            fenced=self.fenced_reports,
            wan_bytes=c.wan_bytes,
        )
        self.metrics_ring.add(sample)
        return sample

    def note_cluster(self, name: str, state: ClusterState, reason: str = "") -> None:
        """Record the cluster's health/cordon/drain in its history when it changed."""
        self.cluster_history.observe(name, state.health, state.cordoned, state.draining, now(), reason)

    def maybe_checkpoint_audit(self) -> None:
        """Sign a checkpoint of the audit chain when one is due and a key is configured."""
        s = self.settings
        if not s.audit_sm2_key or time.monotonic() - self._last_checkpoint < s.audit_checkpoint_s:
            return
        self._last_checkpoint = time.monotonic()
        audit.checkpoint(self.store, s.audit_sm2_key, s.audit_checkpoint_file)

    def _follow_loop(self) -> None:
        """role=api: serve, never lead; follow the store so every view matches the leader's."""
        while not self._stop.wait(self.settings.follow_interval_s):
            try:
                self.capacity.maybe_refresh()
                self.sync_from_store()
            except StoreUnavailable as exc:  # a failover: the views catch up once it is over
                self._store_down(exc, "follower")
            except Exception:
                log.exception("sync from the store failed")

    # ---- jobs -------------------------------------------------------------------------------
    def known_tenants(self) -> set[str]:
        """The federation's tenants: the member clusters' tenants and those of the quota policy."""
        tenants = {s.spec.tenant for s in self.registry.clusters.values() if s.spec.tenant}
        return tenants | set(self.policies.quota.tenants)

    def _check_inputs(self, spec: JobCreate) -> None:
        """Names must exist in the federation, or the job would wait forever for them."""
        errors = [
            {"path": f"inputs[{i}]", "message": f"unknown data set {ds!r}"}
            for i, ds in enumerate(spec.inputs)
            if ds not in self.datasets
        ]
        if spec.tenant not in self.known_tenants():
            errors.append(
                {
                    "path": "tenant",
                    "message": f"unknown tenant {spec.tenant!r} (tenants: the member clusters' and "
                    "policies/quota.yaml's)",
                }
            )
        clusters = self.registry.clusters
        for field in ("allow_clusters", "deny_clusters", "prefer_clusters"):
            errors += [
                {"path": f"constraints.{field}[{i}]", "message": f"unknown cluster {name!r}"}
                for i, name in enumerate(getattr(spec.constraints, field))
                if name not in clusters
            ]
        if errors:
            raise InvalidInput(
                "the job names "
                + ", ".join(sorted({e["path"].split("[")[0] for e in errors}))
                + " that the federation does not have",
                errors=errors,
            )

    @staticmethod
    def _new_job_row(spec: JobCreate, idempotency_key: str | None) -> dict[str, Any]:
        at = now()
        return {
            "id": new_job_id(),
            "tenant": spec.tenant,
            "name": spec.name,
            "phase": "Pending",
            "cluster": None,
            "attempt": 1,
            "epoch": 0,
            "priority": spec.priority,
            "spec": spec.model_dump(mode="json"),
            "message": "waiting to be scheduled",
            "created_at": at,
            "updated_at": at,
            "lease_expires_at": None,
            "idempotency_key": idempotency_key,
            "request_hash": spec_hash(spec) if idempotency_key else None,
        }

    def submit(self, spec: JobCreate, idempotency_key: str | None = None) -> tuple[JobRead, bool]:
        return self.submit_many([(spec, idempotency_key)])[0]

    def submit_many(self, items: list[tuple[JobCreate, str | None]]) -> list[tuple[JobRead, bool]]:
        """Commit jobs as Pending; returns (job, created). A replayed Idempotency-Key returns the
        job it created first; the same key with a different body is a conflict."""
        rows = []
        for spec, key in items:
            self._check_inputs(spec)
            rows.append(self._new_job_row(spec, key))
        out = []
        for (spec, key), (row, created) in zip(items, self.store.insert_jobs(rows), strict=True):
            if not created and row["request_hash"] != spec_hash(spec):
                raise Conflict(f"Idempotency-Key {key!r} was used for a different job ({row['id']})")
            if created:
                self._note_terms(str(row["id"]), spec)
            out.append((self._job_read(row, with_events=False), created))
        self.wake()
        return out

    async def submit_async(
        self, spec: JobCreate, idempotency_key: str | None = None, audit: dict[str, Any] | None = None
    ) -> tuple[JobRead, bool]:
        """``submit`` for the API's hot path: the row joins the store's group commit (many
        concurrent submissions share one transaction and fsync); answers after the commit.
        ``audit``: the submitter's audit_log row, written in the job's transaction if created."""
        self._check_inputs(spec)
        row = self._new_job_row(spec, idempotency_key)
        if audit is not None:
            row[AUDIT_KEY] = {**audit, "target": f"job/{row['id']}"}
        stored, created = await self.store.group_commit().submit(row)
        if created:
            self._note_terms(str(row["id"]), spec)
        if created and self.settings.role == "all" and len(self._pending_specs) < PENDING_SPEC_CACHE:
            self._pending_specs[str(row["id"])] = spec
        self.wake()
        if not created:
            if stored["request_hash"] != spec_hash(spec):
                raise Conflict(
                    f"Idempotency-Key {idempotency_key!r} was used for a different job ({stored['id']})"
                )
            return self._job_read(stored, with_events=False), False
        read = JobRead(
            id=row["id"],
            spec=spec,
            phase=JobPhase.Pending,
            cluster=None,
            attempt=1,
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            message=row["message"],
        )
        return read, True

    def get_job(self, job_id: str) -> JobRead:
        row = self.store.get_job(job_id)
        if row is None:
            raise NotFound(f"job {job_id!r} not found")
        return self._job_read(row, with_events=True)

    def job_logs(self, job_id: str) -> dict[str, Any]:
        """The output the executor last reported for the job (the local executor: the tail of the
        attempt's stdout and stderr, sent when it ends)."""
        row = self.store.get_job(job_id)
        if row is None:
            raise NotFound(f"job {job_id!r} not found")
        out = self.store.job_output(job_id)
        return {
            "job_id": job_id,
            "phase": row["phase"],
            "cluster": out["cluster"] if out else row["cluster"],
            "attempt": out["attempt"] if out else row["attempt"],
            "output": out["reason"] if out else "",
        }

    def list_jobs(self, **filters: Any) -> list[JobRead]:
        return [self._job_read(r, with_events=False) for r in self.store.list_jobs(**filters)]

    def cancel(
        self, job_id: str, reason: str = "cancelled by request", audit: dict[str, Any] | None = None
    ) -> JobRead:
        """Cancel from whatever phase the job is in now. The compare-and-set fails when the job
        changed between the read and the write (placed by a scheduling cycle right after its
        submission, say): that is retried here with the fresh row, a bounded number of times,
        rather than handed to the caller. ``audit``: the caller's audit row, appended in the
        cancel's transaction (both commit or neither)."""
        for _ in range(CANCEL_TRIES):
            row = self.store.get_job(job_id)
            if row is None:
                raise NotFound(f"job {job_id!r} not found")
            phase = JobPhase(row["phase"])
            check_transition(job_id, phase, JobPhase.Cancelled)
            with self.lock:
                with self.store.tx() as conn:
                    ok = self.store.transition(
                        conn,
                        job_id,
                        expect_phases=[phase.value],
                        expect_attempt=row["attempt"],
                        values={"phase": "Cancelled", "message": reason, "lease_expires_at": None},
                        event_type=Reason.Cancelled,
                        reason=reason,
                    )
                    if ok:
                        audit_chain.record(conn, audit)
                if ok:  # committed: now the in-memory views
                    self.registry.ledger.pop(job_id)
                    self.forget_terms(job_id, JobPhase.Cancelled.value)
                    break
        else:
            raise Conflict(f"job {job_id} kept changing while being cancelled; retry")
        return self.get_job(job_id)

    def get_decision(self, job_id: str) -> Decision:
        if self.store.get_job(job_id) is None:
            raise NotFound(f"job {job_id!r} not found")
        body = self.store.latest_decision(job_id)
        if body is None:
            raise NotFound(f"job {job_id} has no scheduling decision yet")
        return Decision.model_validate(body)

    # ---- scheduling -------------------------------------------------------------------------
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
            residency=self.policies.residency,
        )

    def plan(self, spec: JobCreate) -> Decision:
        """Answer "where would this job go" without creating or reserving anything: the decision
        the next cycle would make for it, by the cycle's own pipeline on the cycle's inputs (the
        snapshot, the tenants' usage, the quota policy, the placed jobs preemption may evict)."""
        self._check_inputs(spec)
        snap = self.snapshot()
        with self.lock:
            running, usage = self._running_view(snap)
            snap.tenant_usage = usage
            return pipeline.decide(
                self.scheduler,
                spec,
                snap,
                quota=self.policies.quota,
                running=running,
                backups=self.policies.failover.backups,
            )

    def schedule_pending(self, limit: int | None = None) -> int:
        """One batch scheduling cycle over the pending queue (priority, then DRF fair share, then
        FIFO; see scheduler/batch.py). Capacity is reserved in the cycle's snapshot as decisions
        are made, so a burst never overcommits; quota, preemption and gang fit apply. The cycle's
        writes go to the store in one transaction with bulk statements; each stored decision is
        compact and the API expands it into the full explained Decision."""
        if not self.leading():
            return 0
        rows = self.store.pending_heads(limit or self.settings.schedule_batch, with_spec=False)
        if not rows:
            return 0
        specs: dict[str, JobCreate] = {}
        missing = []
        for row in rows:
            cached = self._pending_specs.get(row["id"])
            if cached is None:
                missing.append(row["id"])
            else:
                specs[row["id"]] = cached
        for job_id, text in self.store.job_specs_json(missing).items():
            specs[job_id] = JobCreate.model_validate_json(text)
        batch = self._batch_scheduler()
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
            running, usage = self._running_view(snap)
            snap.tenant_usage = usage
            result = batch.run(
                queue,
                snap,
                limit=len(by_id),
                running=running,
                epoch=self.epoch,
                backups=self.policies.failover.backups,
            )
        elapsed = time.perf_counter() - t0
        for observe in self.decision_observers:
            for _ in result.decisions:
                observe(elapsed / max(len(result.decisions), 1))
        lease_until = now() + timedelta(seconds=self.policies.failover.lease_s)
        scheduled, decisions, messages, parts = cycle_rows(
            result.decisions,
            epoch=self.epoch,
            lease_until=lease_until,
            previous={job_id: row["message"] for job_id, row in by_id.items()},
        )
        requeued = [
            {"id": v.job_id, "attempt": v.attempt, "cluster": v.cluster, "reason": v.reason}
            for v in result.victims
        ]
        if not self.leading():  # the lease ran out during the cycle: dispatch nothing
            return 0
        with self.lock:
            with self.store.tx() as conn:
                self.store.check_leader(conn, self.epoch)  # fencing, in the cycle's own transaction
                scheduled, requeued = self._fresh_targets(conn, snap, scheduled, requeued)
                self.store.put_decision_parts(conn, parts)
                changed = self.store.apply_cycle(
                    conn, scheduled=scheduled, requeued=requeued, decisions=decisions, messages=messages
                )
                self.store.audit_placements(conn, decisions, changed)
            # Committed: only now the ledger. A commit that failed (a failover) must not leave
            # reservations behind for jobs that are still Pending in the store; one whose outcome
            # is unknown reaches the ledger through the follower, from its Scheduled events.
            for v in result.victims:
                if v.job_id in changed:
                    self.registry.ledger.pop(v.job_id)
            for r in scheduled:
                if r["id"] in changed:
                    spec = specs[r["id"]]
                    self._pending_specs.pop(r["id"], None)
                    self.registry.ledger.add(
                        r["id"],
                        r["cluster"],
                        demand_vector(spec),
                        spec.tenant,
                        self._priority_of(spec),
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

    def _fresh_targets(
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

    # ---- batch scheduling helpers -------------------------------------------------------------
    def _batch_scheduler(self) -> BatchScheduler:
        """The batch wrapper of the current scheduler and quota policy (rebuilt when they change;
        it caches static per-shape results between cycles)."""
        current = self._batch
        if (
            current is None
            or current.scheduler is not self.scheduler
            or current.quota is not self.policies.quota
        ):
            current = self._batch = BatchScheduler(self.scheduler, self.policies.quota)
        return current

    def _priority_of(self, spec: JobCreate) -> int:
        return self._priority(spec.priority, spec.priority_class)

    def _priority(self, priority: int, priority_class: str | None) -> int:
        """The priority the ledger keeps: the class's value when the class is known, else the
        job's own."""
        p = class_priority(priority, priority_class, self.policies.quota)
        return p if p is not None else priority

    def _running_view(self, snap: Snapshot) -> tuple[dict[int, list[Running]], dict[str, np.ndarray]]:
        """Placed jobs per cluster index (preemption candidates, listed only for the clusters
        preemption looks at) and usage per tenant (quota), from the ledger's running totals."""
        return RunningView(self.registry.ledger, snap.names), self.registry.ledger.tenant_totals()

    # ---- clusters (controller/services/clusters.py) ------------------------------------------
    def cluster_state(self, name: str) -> ClusterState:
        return self.clusters.cluster_state(name)

    def register_cluster(
        self, spec: Cluster, audit: dict[str, Any] | None = None
    ) -> tuple[ClusterState, bool]:
        return self.clusters.register_cluster(spec, audit)

    def deregister_cluster(self, name: str, audit: dict[str, Any] | None = None) -> None:
        self.clusters.deregister_cluster(name, audit)

    def set_cordon(self, name: str, cordoned: bool, audit: dict[str, Any] | None = None) -> ClusterState:
        return self.clusters.set_cordon(name, cordoned, audit)

    def drain(self, name: str, audit: dict[str, Any] | None = None) -> tuple[ClusterState, int]:
        return self.clusters.drain(name, audit)

    def requeue_cluster_jobs(
        self,
        name: str,
        event: str,
        reason: str,
        *,
        as_leader: bool = False,
        silent_since: datetime | None = None,
    ) -> int:
        return self.clusters.requeue_cluster_jobs(
            name, event, reason, as_leader=as_leader, silent_since=silent_since
        )

    def lease_hold_s(self) -> float:
        return self.clusters.lease_hold_s()

    def expire_leases(self) -> int:
        return self.clusters.expire_leases()

    # ---- data sets (controller/services/datasets.py) ------------------------------------------
    dataset_read = staticmethod(dataset_read)

    def add_dataset(self, ds: DatasetCreate, audit: dict[str, Any] | None = None) -> tuple[DatasetRead, bool]:
        return self.catalogue.add(ds, audit)

    def get_dataset(self, ds_id: str) -> DatasetRead:
        return self.catalogue.get(ds_id)

    # ---- policies ---------------------------------------------------------------------------
    def put_policy(self, kind: str, body: Any, audit: dict[str, Any] | None = None) -> tuple[BaseModel, int]:
        """Validate, cross-check against the rest, then swap; an invalid policy changes nothing.
        ``audit`` is appended in the policy's transaction, with the new version in its detail."""
        model = validate_kind(kind, body)
        candidate = PolicySet.model_validate({**self.policies.__dict__, kind: model})
        errors = cross_check(candidate, set(FILTER_PLUGINS), set(SCORE_PLUGINS))
        if errors:
            raise InvalidPolicy(f"{kind} policy is invalid", errors=errors)
        version = self.store.put_policy(kind, model.model_dump(mode="json"), audit=audit)
        with self.lock:
            self.replace_policies(candidate)
            if self.follower is not None:  # already applied here: the next sync need not reload it
                self.follower.policy_versions[kind] = version
        self.wake()
        return model, version

    # ---- agent protocol (controller/services/agents.py) --------------------------------------
    @property
    def fenced_reports(self) -> int:
        return self.agents.fenced_reports

    def heartbeat_interval_s(self) -> float:
        return self.agents.heartbeat_interval_s()

    def heartbeat_answer(self, t_now: datetime | None = None) -> dict[str, Any]:
        return self.agents.heartbeat_answer(t_now)

    def heartbeat(self, cluster: str, reported: dict[str, Any] | None) -> dict[str, Any]:
        return self.agents.heartbeat(cluster, reported)

    def assignments(self, cluster: str, *, after: str | None = None, limit: int = 500) -> list[Assignment]:
        return self.agents.assignments(cluster, after=after, limit=limit)

    def release(self, cluster: str, job_id: str, attempt: int, epoch: int, reason: str) -> JobRead:
        return self.agents.release(cluster, job_id, attempt, epoch, reason)

    def report(self, cluster: str, rep: StatusReport) -> JobRead:
        return self.agents.report(cluster, rep)

    def apply_reports(
        self, cluster: str, reports: list[StatusReport], *, renew: bool = True
    ) -> list[YiwangError | None]:
        return self.agents.apply_reports(cluster, reports, renew=renew)

    # ---- views ------------------------------------------------------------------------------
    def _job_read(self, row: dict[str, Any], *, with_events: bool) -> JobRead:
        events = (
            [JobEvent.model_validate({**e, "at": utc(e["at"])}) for e in self.store.job_events(row["id"])]
            if with_events
            else []
        )
        return JobRead(
            id=row["id"],
            spec=JobCreate.model_validate(row["spec"]),
            phase=JobPhase(row["phase"]),
            cluster=row["cluster"],
            attempt=row["attempt"],
            epoch=row["epoch"] or 0,
            created_at=utc(row["created_at"]),
            updated_at=utc(row["updated_at"]),
            message=row["message"] or "",
            events=events,
        )

    def _capacity_view(self, state: ClusterState) -> dict[str, Any]:
        """Which capacity the scheduler uses for the cluster (prometheus | heartbeat | topology)."""
        cc = self.capacity.capacity_of(state.spec.name, state)
        view = cc.view()
        c = state.spec.capacity
        eff = cc.allocatable if cc.allocatable is not None else np.array([c.cpu, c.memory_gib, c.gpu])
        view["effective_capacity"] = {"cpu": float(eff[0]), "memory_gib": float(eff[1]), "gpu": float(eff[2])}
        return view

    def cluster_view(self, state: ClusterState) -> dict[str, Any]:
        allocated = self.registry.allocated().get(state.spec.name, np.zeros(3))
        hb = state.last_heartbeat
        return {
            "name": state.spec.name,
            "tier": state.spec.tier.value,
            "tenant": state.spec.tenant,
            "display_name": state.spec.display_name,
            "display_name_zh": state.spec.display_name_zh,
            "adcode": state.spec.adcode,
            "region": state.spec.region,
            "hub": state.spec.hub,
            "labels": state.spec.all_labels(),
            "capacity": state.spec.capacity.model_dump(),
            **self._capacity_view(state),
            "allocated": {
                "cpu": float(allocated[0]),
                "memory_gib": float(allocated[1]),
                "gpu": float(allocated[2]),
            },
            "health": state.health,
            "cordoned": state.cordoned,
            "draining": state.draining,
            "last_heartbeat": hb.isoformat() if hb else None,
            "heartbeat_age_s": (datetime.now(UTC) - hb).total_seconds() if hb else None,
            "reported": state.reported,
        }
