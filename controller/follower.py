"""Keep a controller process's in-memory views in step with the store.

A controller keeps cluster states, the policies, the data-set catalogue and the allocation
ledger in memory, so a scheduling cycle reads them without a query. When several controller
processes share one database (API replicas in front of the scheduling leader, or an active and
a standby controller), each process's views must also show what the others changed: a job an
API replica cancelled frees capacity in the leader's ledger, a heartbeat one replica received
makes the cluster Ready for the leader, a policy put through one replica is the policy everywhere.

``StoreFollower.sync`` brings them up to date with a few small queries: the clusters table (one
row per cluster), the policy versions, the data-set count, the leader epoch, the job events
appended since the last sync, and the audit rows of token and grant changes since the last sync
(handed to ``security_hooks``: the API's token and grant cache drops what they name). Every change of a job's phase, cluster or attempt writes an event
in the same transaction, carrying the state after the change, and a job's events commit in the
order of its changes (each change locks the job's row), so applying the events in id order leaves
each job's ledger entry at its current state. The demand an entry needs comes from the entry
itself, from the terms this process noted when the job was submitted through it, or else from
the job's row (read state-based: a state newer than the event is harmless, later events agree
with it). Under SQLite writers are serialised, so event ids commit in order; under PostgreSQL a
transaction holding a lower id can commit after a higher one (of another job), so ids seen
missing below the highest one read are asked for again on later syncs (for ``GAP_TTL_S``,
longer than any transaction of ours; an id whose transaction rolled back never appears).

Reads and the in-memory updates happen under the controller's lock, the lock its own write
paths hold while they change the same views after committing, so a sync cannot undo a change
this process made meanwhile. A cluster's contact (health, last heartbeat, report) is the
exception: heartbeats and reports apply it without the controller's lock, under the registry's
``contacts`` lock, so a sync keeps a contact newer than the row it read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from controller.assignments import sanitize_reported
from controller.datasets import DatasetRead
from controller.policies import POLICY_KINDS, PolicySet, validate_kind
from controller.registry import ClusterState, Registry
from controller.security import SECURITY_ACTIONS
from controller.store.records import ClusterRow
from controller.store.store import ACTIVE_PHASES, OUTPUT_EVENT, Store, utc
from controller.topology.model import Cluster

GAP_TTL_S = 60.0
MAX_GAPS = 10_000


@dataclass
class SyncStats:
    events: int = 0
    jobs_refreshed: int = 0
    clusters_changed: int = 0
    policies_reloaded: int = 0
    datasets_added: int = 0


class FollowedViews(Protocol):
    """What the follower keeps in step with the store: the in-memory views of a controller
    process (``controller.service.Controller`` is one). A Protocol, so the follower does not
    import the service that owns it."""

    observed_epoch: int  # the leader epoch in the store, as of the last sync

    @property
    def store(self) -> Store: ...
    @property
    def lock(self) -> AbstractContextManager[Any]: ...
    @property
    def registry(self) -> Registry: ...
    @property
    def policies(self) -> PolicySet: ...
    @property
    def datasets(self) -> dict[str, DatasetRead]: ...
    @property
    def job_terms(self) -> Mapping[str, tuple[str, tuple[float, float, float], int]]: ...
    def apply_job_state(self, row: dict[str, Any]) -> None: ...
    def forget_terms(self, job_id: str, phase: str | None) -> None: ...
    def replace_policies(self, policies: PolicySet) -> None: ...
    def dataset_read(self, row: dict[str, Any]) -> DatasetRead: ...


class StoreFollower:
    def __init__(self, ctl: FollowedViews, *, after_event: int) -> None:
        """``after_event``: the highest job-event id already reflected in the controller's
        ledger (read before the ledger was built from the active jobs)."""
        self.ctl = ctl
        self.after = after_event
        self.gaps: dict[int, float] = {}  # event id missing below ``after`` -> when first missed
        self.cluster_rows: dict[str, ClusterRow] = {}
        self.policy_versions: dict[str, int] = {}
        self.last_sync = time.time()  # wall clock of the last complete sync (start-up counts)
        # When the last complete sync began: every change committed before it is reflected
        # (the security caches trust themselves only while it is recent, controller/security.py).
        self.last_sync_began = self.last_sync
        self.totals = SyncStats()  # since start, for /metrics
        # Token and grant changes (their audit rows) since start-up, for the security caches.
        self.audit_after = ctl.store.max_audit_id()
        self.security_hooks: list[Callable[[list[tuple[str, str, Any]]], None]] = []

    def sync(self) -> SyncStats:
        began = time.time()
        stats = SyncStats()
        self._clusters(stats)
        self._policies(stats)
        self._datasets(stats)
        self._ledger(stats)
        self._security()
        self.ctl.observed_epoch = self.ctl.store.leader_epoch()
        self.last_sync = time.time()
        self.last_sync_began = began
        for name in stats.__dataclass_fields__:
            setattr(self.totals, name, getattr(self.totals, name) + getattr(stats, name))
        return stats

    # ---- token and grant changes ------------------------------------------------------------
    def _security(self) -> None:
        if not self.security_hooks:
            return
        self.audit_after, rows = self.ctl.store.audit_after(self.audit_after, SECURITY_ACTIONS)
        if not rows:
            return
        changes = [(action, target, detail) for _, action, target, detail in rows]
        for hook in self.security_hooks:
            hook(changes)

    # ---- clusters ---------------------------------------------------------------------------
    def remember_cluster_rows(self, rows: list[ClusterRow]) -> None:
        self.cluster_rows = {r["name"]: r for r in rows}

    def _clusters(self, stats: SyncStats) -> None:
        ctl = self.ctl
        with ctl.lock:
            rows = {r["name"]: r for r in ctl.store.list_clusters()}
            registry = ctl.registry
            rebuild = False
            for name in list(registry.clusters):
                if name not in rows:
                    registry.clusters.pop(name)
                    rebuild = True
                    stats.clusters_changed += 1
            for name, row in rows.items():
                state = registry.clusters.get(name)
                if state is None or (
                    name not in self.cluster_rows or self.cluster_rows[name]["spec"] != row["spec"]
                ):
                    spec = Cluster.model_validate(row["spec"])
                    if state is None:
                        state = registry.clusters[name] = ClusterState(spec=spec)
                    else:
                        state.spec = spec
                    rebuild = True
                    stats.clusters_changed += 1
                state.cordoned = bool(row["cordoned"])
                state.draining = bool(row["draining"])
                contact = utc(row["last_heartbeat"])
                with registry.contacts:
                    # A contact this process applied after these rows were read (heartbeats and
                    # reports update the registry without the controller's lock) is newer than
                    # the row: keep it, and its health and report, rather than go back.
                    if state.last_heartbeat is None or (
                        contact is not None and contact >= state.last_heartbeat
                    ):
                        state.health = row["health"]
                        state.last_heartbeat = contact
                        state.reported = sanitize_reported(row["reported"])
            if rebuild:
                registry.rebuild_network()
            self.cluster_rows = rows

    # ---- policies ---------------------------------------------------------------------------
    def _policies(self, stats: SyncStats) -> None:
        ctl = self.ctl
        versions = ctl.store.policy_versions()
        if versions == self.policy_versions:
            return
        stored = ctl.store.get_policies()
        changed = [
            k for k in POLICY_KINDS if k in stored and self.policy_versions.get(k) != stored[k]["version"]
        ]
        models = {k: validate_kind(k, stored[k]["body"]) for k in changed}
        with ctl.lock:
            ctl.replace_policies(PolicySet.model_validate({**ctl.policies.__dict__, **models}))
        self.policy_versions = {k: int(v["version"]) for k, v in stored.items()}
        stats.policies_reloaded += len(changed)

    # ---- data sets (insert-only) ------------------------------------------------------------
    def _datasets(self, stats: SyncStats) -> None:
        ctl = self.ctl
        if ctl.store.count_datasets() == len(ctl.datasets):
            return
        added = [ctl.dataset_read(row) for row in ctl.store.list_datasets() if row["id"] not in ctl.datasets]
        with ctl.lock:
            for read in added:
                ctl.datasets[read.id] = read
        stats.datasets_added += len(added)

    # ---- the allocation ledger --------------------------------------------------------------
    def _ledger(self, stats: SyncStats) -> None:
        """Apply the job events since the last sync, in id order. An event carries the job's
        phase, cluster and attempt after the change, and a job's events commit in the order of
        its changes (every change locks the job's row), so the last event of a job is its
        state. The ledger needs the job's demand too: from its current entry, or from the
        terms this process noted when the job was submitted through it; otherwise the job's
        row is read (state-based, so reading a state newer than the event is harmless)."""
        ctl = self.ctl
        t_now = time.monotonic()
        self.gaps = {i: t for i, t in self.gaps.items() if t_now - t < GAP_TTL_S}
        events = ctl.store.events_after(self.after, sorted(self.gaps))
        stats.events = len(events)
        to_read: dict[str, None] = {}
        expected = self.after + 1
        ledger = ctl.registry.ledger
        with ctl.lock:
            for ev in events:
                self.gaps.pop(ev.id, None)
                if ev.id > self.after:
                    for missing in range(max(expected, ev.id - MAX_GAPS), ev.id):
                        self.gaps.setdefault(missing, t_now)
                    expected = ev.id + 1
                    self.after = ev.id
                if ev.type in ("Submitted", "FencedReport", OUTPUT_EVENT):  # the ledger stays as it is
                    continue
                if ev.to_phase in ACTIVE_PHASES and ev.cluster:
                    entry = ledger.entries.get(ev.job_id)
                    if entry is not None and (entry.cluster, entry.attempt) == (ev.cluster, ev.attempt):
                        continue  # already reflected (this process placed it)
                    terms = ctl.job_terms.get(ev.job_id)
                    if terms is None or entry is not None:  # demand unknown, or a change not seen: read
                        to_read[ev.job_id] = None
                        continue
                    tenant, demand, priority = terms
                    ledger.add(ev.job_id, ev.cluster, np.array(demand), tenant, priority, ev.attempt)
                else:
                    ledger.pop(ev.job_id)
                    ctl.forget_terms(ev.job_id, ev.to_phase)
            if to_read:
                for row in ctl.store.job_states(list(to_read)):
                    ctl.apply_job_state(row)
        if len(self.gaps) > MAX_GAPS:
            for i in sorted(self.gaps)[: len(self.gaps) - MAX_GAPS]:
                del self.gaps[i]
        stats.jobs_refreshed = len(to_read)
