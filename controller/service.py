"""The controller process's composition root: ``Controller.__init__`` builds the services of
``controller/services/`` and wires them, each with its dependencies explicit (the store, the
lock guarding the in-memory views, the cluster registry, and callables for what changes at run
time: the policies, the leader epoch, the loop's wake-up):

- ``policies``: the current policy set and scheduler; ``read_model``: the ledger's job terms and
  the pending specs; ``monitoring``: cluster views, health history, metrics samples;
- ``submission`` and ``jobs``: submit, queries, cancel; ``scheduling``: plan and the cycle;
- ``clusters``, ``agents``, ``catalogue``: clusters and failover, the agent protocol, data sets;
- ``leadership`` and ``loops``: the scheduling lease and the background threads.

Start-up (``_bootstrap``) loads the stored clusters, data sets and active jobs into the views and
starts the follower. The public methods below only delegate, so callers that hold a
``Controller`` (tests, drills, the CLI, the fast path) keep one entry point; the routes call the
services. Every state change is committed to the store before it is acknowledged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ValidationError

from controller.assignments import Assignment, StatusReport, sanitize_reported
from controller.datasets import DatasetCreate, DatasetRead
from controller.errors import YiwangError
from controller.follower import StoreFollower
from controller.history import ClusterHistory, Counters, MetricsRing, Sample
from controller.jobs import JobCreate, JobRead
from controller.policies import PolicySet
from controller.registry import ClusterState, Registry
from controller.scheduler.decision import Decision
from controller.scheduler.framework import Snapshot
from controller.scheduler.scheduler import Scheduler
from controller.services.agents import AgentProtocol
from controller.services.clusters import ClusterService
from controller.services.datasets import DatasetCatalogue, dataset_read
from controller.services.jobs import JobQueries
from controller.services.leadership import ControlLoops, Leadership
from controller.services.monitoring import Monitoring, capacity_tracker
from controller.services.policies import PolicyService
from controller.services.read_model import ReadModel
from controller.services.retention import Retention
from controller.services.scheduling import SchedulingService
from controller.services.submission import Accepted, Submission
from controller.settings import Settings
from controller.store.store import Store, utc
from controller.topology.model import Cluster

log = logging.getLogger("yiwang.controller")


class Controller:
    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or Store(settings.database_url)
        self.lock = threading.RLock()
        self.leadership = Leadership(self.store, self.lock, settings)
        self.policy = PolicyService(
            self.store, self.lock, settings, follower=lambda: self.follower, wake=lambda: self.wake()
        )
        self.registry = Registry(base_links=list(self.policies.topology.links))
        self.read_model = ReadModel(self.registry, lambda: self.policies.quota)
        self.datasets: dict[str, DatasetRead] = {}
        self.catalogue = DatasetCatalogue(
            self.store, self.lock, self.registry, lambda: self.policies.residency, self.datasets
        )
        self.decision_observers: list[Callable[[float], None]] = []
        self.metrics_registry: CollectorRegistry | None = None
        self.capacity = capacity_tracker(settings, self.registry, lambda: self.policies.failover)
        self.follower: StoreFollower | None = None
        # What the dashboard draws over time (controller/history.py): in memory, bounded.
        self.cluster_history = ClusterHistory()
        self.metrics_ring = MetricsRing(settings.metrics_history)
        self.counters = Counters()
        self.monitoring = Monitoring(
            self.store,
            self.lock,
            self.registry,
            self.capacity,
            self.counters,
            self.cluster_history,
            self.metrics_ring,
            settings,
            fenced_reports=lambda: self.fenced_reports,
        )
        self.retention = Retention(self.store, settings)
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
        self.jobs = JobQueries(self.store, self.lock, self.registry, self.read_model)
        self.submission = Submission(
            self.store,
            self.registry,
            self.datasets,
            settings,
            self.read_model,
            self.jobs,
            policies=lambda: self.policies,
            wake=lambda: self.wake(),
        )
        self.scheduling = SchedulingService(
            self.store,
            self.lock,
            self.registry,
            self.capacity,
            self.counters,
            self.datasets,
            settings,
            self.read_model,
            self.leadership,
            self.decision_observers,
            policies=lambda: self.policies,
            scheduler=lambda: self.scheduler,
            check_inputs=lambda spec: self.submission.check_inputs(spec),
            wake=lambda: self.wake(),
        )
        self.loops = ControlLoops(
            settings,
            self.leadership,
            refresh_capacity=lambda: self.capacity.maybe_refresh(),
            sync=lambda: self.sync_from_store(),
            checkpoint_audit=lambda: self.maybe_checkpoint_audit(),
            prune=lambda: self.retention.maybe_prune(),
            expire_leases=lambda: self.expire_leases(),
            schedule_pending=lambda: self.schedule_pending(),
            sample_metrics=lambda: self.sample_metrics(),
        )
        self._bootstrap()

    # ---- start-up ---------------------------------------------------------------------------
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
        for ds_row in self.store.list_datasets():
            try:
                self.datasets[ds_row["id"]] = self.dataset_read(ds_row)
            except ValidationError as exc:
                log.error("skipping stored data set %r: it is invalid: %s", ds_row["id"], exc)
        for job_row in self.store.active_jobs():
            try:
                self.apply_job_state(job_row)
            except (ValidationError, ValueError, TypeError, KeyError) as exc:
                log.error(
                    "not counting stored job %r in the ledger: its spec is invalid: %s", job_row["id"], exc
                )
        self.follower = StoreFollower(self, after_event=after_event)
        self.follower.remember_cluster_rows(cluster_rows)
        self.follower.policy_versions = self.store.policy_versions()
        if self.settings.mode == "active" and self.settings.role == "all":
            self.renew_leadership()
        self.observed_epoch = self.store.leader_epoch()

    # ---- the read model (controller/services/read_model.py) ---------------------------------
    @property
    def job_terms(self) -> dict[str, tuple[str, tuple[float, float, float], int]]:
        return self.read_model.job_terms

    def apply_job_state(self, row: dict[str, Any]) -> None:
        self.read_model.apply_job_state(row)

    def forget_terms(self, job_id: str, phase: str | None) -> None:
        self.read_model.forget_terms(job_id, phase)

    def sync_from_store(self) -> None:
        """Bring the in-memory views up to date with what other controller processes changed
        (controller/follower.py)."""
        if self.follower is not None:
            self.follower.sync()

    # ---- leadership and the loops (controller/services/leadership.py) ------------------------
    @property
    def epoch(self) -> int:
        return self.leadership.epoch

    @property
    def lead_since(self) -> datetime | None:
        return self.leadership.lead_since

    @lead_since.setter
    def lead_since(self, value: datetime | None) -> None:
        self.leadership.lead_since = value

    @property
    def observed_epoch(self) -> int:
        return self.leadership.observed_epoch

    @observed_epoch.setter
    def observed_epoch(self, value: int) -> None:
        self.leadership.observed_epoch = value

    @property
    def current_epoch(self) -> int:
        return self.leadership.current_epoch

    @property
    def leader_margin_s(self) -> float:
        return self.leadership.leader_margin_s

    @property
    def is_leader(self) -> bool:
        return self.leadership.is_leader

    def renew_leadership(self) -> bool:
        return self.leadership.renew()

    def leading(self) -> bool:
        return self.leadership.leading()

    def start(self) -> None:
        self.loops.start()

    def stop(self) -> None:
        self.loops.stop()

    def wake(self) -> None:
        self.loops.wake()

    # ---- monitoring (controller/services/monitoring.py) --------------------------------------
    def sample_metrics(self) -> Sample:
        return self.monitoring.sample_metrics()

    def note_cluster(self, name: str, state: ClusterState, reason: str = "") -> None:
        self.monitoring.note_cluster(name, state, reason)

    def maybe_checkpoint_audit(self) -> None:
        self.monitoring.maybe_checkpoint_audit()

    def cluster_view(self, state: ClusterState) -> dict[str, Any]:
        return self.monitoring.cluster_view(state)

    # ---- submission and job queries (services/submission.py, services/jobs.py) -------------
    def known_tenants(self) -> set[str]:
        return self.submission.known_tenants()

    def submit(self, spec: JobCreate, idempotency_key: str | None = None) -> tuple[JobRead, bool]:
        return self.submission.submit(spec, idempotency_key)

    def submit_many(self, items: list[tuple[JobCreate, str | None]]) -> list[tuple[JobRead, bool]]:
        return self.submission.submit_many(items)

    async def submit_async(
        self, spec: JobCreate, idempotency_key: str | None = None, audit: dict[str, Any] | None = None
    ) -> tuple[Accepted, bool]:
        return await self.submission.submit_async(spec, idempotency_key, audit)

    def get_job(self, job_id: str) -> JobRead:
        return self.jobs.get_job(job_id)

    def job_logs(self, job_id: str) -> dict[str, Any]:
        return self.jobs.job_logs(job_id)

    def list_jobs(self, **filters: Any) -> list[JobRead]:
        return self.jobs.list_jobs(**filters)

    def cancel(
        self, job_id: str, reason: str = "cancelled by request", audit: dict[str, Any] | None = None
    ) -> JobRead:
        return self.jobs.cancel(job_id, reason, audit)

    def forget_stopped(self, phases: Mapping[str, str]) -> None:
        self.jobs.forget_stopped(phases)

    def get_decision(self, job_id: str) -> Decision:
        return self.jobs.get_decision(job_id)

    # ---- scheduling (controller/services/scheduling.py) --------------------------------------
    def snapshot(self) -> Snapshot:
        return self.scheduling.snapshot()

    def plan(self, spec: JobCreate) -> Decision:
        return self.scheduling.plan(spec)

    def schedule_pending(self, limit: int | None = None) -> int:
        return self.scheduling.schedule_pending(limit)

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

    # ---- policies (controller/services/policies.py) ------------------------------------------
    @property
    def policies(self) -> PolicySet:
        return self.policy.policies

    @property
    def scheduler(self) -> Scheduler:
        return self.policy.scheduler

    @scheduler.setter
    def scheduler(self, value: Scheduler) -> None:
        self.policy.scheduler = value

    def replace_policies(self, policies: PolicySet) -> None:
        self.policy.replace(policies)

    def put_policy(self, kind: str, body: Any, audit: dict[str, Any] | None = None) -> tuple[BaseModel, int]:
        return self.policy.put(kind, body, audit)

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
