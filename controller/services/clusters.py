"""Clusters: registration (a cluster's identity kept while it holds data or jobs), cordon,
drain, deregistration, and failover: a silent cluster is marked Unreachable after the grace and
its jobs re-placed once its lease has passed (``expire_leases``, run by the leader).

Dependencies, all explicit: the store, the lock guarding the in-memory views, the cluster
registry (states, the allocation ledger, the network), the counters, the failover policy, this
process's leader epoch and takeover time (writes on the leader's behalf are fenced by the
epoch), and the controller's callbacks to note a cluster's health change and wake the loop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from controller.domain.phases import Reason
from controller.errors import Conflict, InvalidInput, NotFound
from controller.history import Counters
from controller.policies import FailoverPolicy
from controller.registry import ClusterState, Health, Registry
from controller.store import audit_chain
from controller.store.records import JobRow
from controller.store.store import Store, now
from controller.topology.model import Cluster

log = logging.getLogger("yiwang.controller")

# A cluster's identity for residency and placement rules: fixed while it holds data or jobs.
IDENTITY_FIELDS = ("tenant", "tier", "adcode")


class ClusterService:
    def __init__(
        self,
        store: Store,
        lock: threading.RLock,
        registry: Registry,
        counters: Counters,
        *,
        failover: Callable[[], FailoverPolicy],
        epoch: Callable[[], int],
        lead_since: Callable[[], datetime | None],
        note_cluster: Callable[[str, ClusterState, str], None],
        wake: Callable[[], None],
    ) -> None:
        """``epoch``: the leader epoch this process holds (0 when it does not lead);
        ``lead_since``: when it took it (a cluster's silence counts from then)."""
        self.store = store
        self.lock = lock
        self.registry = registry
        self.counters = counters
        self.failover = failover
        self.epoch = epoch
        self.lead_since = lead_since
        self.note_cluster = note_cluster
        self.wake = wake

    def cluster_state(self, name: str) -> ClusterState:
        state = self.registry.clusters.get(name)
        if state is None:
            raise NotFound(f"cluster {name!r} not found")
        return state

    def register_cluster(
        self, spec: Cluster, audit: dict[str, Any] | None = None
    ) -> tuple[ClusterState, bool]:
        """Create or replace a cluster's spec; ``audit`` is appended in the same transaction with
        ``created`` in its detail. The identity of a cluster that holds something (its tenant,
        tier and adcode, which residency and placement rules read) cannot change under it: a
        re-registration changing them while the cluster holds catalogued data sets or active jobs
        is a 422 naming each field (drain it and register its data elsewhere, or register a new
        cluster). The check runs in the transaction, the cluster's row locked, so a concurrent
        placement or data-set registration either commits first (and is seen) or sees the new
        spec (and is refused: ``SchedulingService.fresh_targets``, ``DatasetCatalogue.add``)."""
        body = spec.model_dump(mode="json")
        for attempt in range(2):
            try:
                with self.store.tx() as conn:
                    stored = self.store.cluster_specs(conn, [spec.name], lock="update").get(spec.name)
                    if stored is not None:
                        self._check_identity_kept(conn, spec.name, stored, body)
                    self.store.upsert_cluster(conn, spec.name, body, exists=stored is not None)
                    audit_chain.record(conn, audit, created=stored is None)
                break
            except IntegrityError:  # created concurrently by another process: now an update
                if attempt:
                    raise
        with self.lock:
            state = self.registry.clusters.get(spec.name)
            if state is None:
                state = ClusterState(spec=spec)
                self.registry.clusters[spec.name] = state
            else:
                state.spec = spec
            self.registry.rebuild_network()
        return state, stored is None

    def _check_identity_kept(
        self, conn: Any, name: str, stored: dict[str, Any], body: dict[str, Any]
    ) -> None:
        changed = [f for f in IDENTITY_FIELDS if stored.get(f) != body.get(f)]
        if not changed:
            return
        active = self.store.count_active_on(name, conn)
        datasets = self.store.datasets_on(conn, name)
        if not active and not datasets:
            return
        holds = " and ".join(
            part
            for part in (
                f"{active} active job(s)" if active else "",
                f"data sets {', '.join(datasets[:10])}{' ...' if len(datasets) > 10 else ''}"
                if datasets
                else "",
            )
            if part
        )
        raise InvalidInput(
            f"cluster {name} holds {holds}: its {', '.join(changed)} cannot change under them",
            errors=[
                {
                    "path": f,
                    "message": f"{name} is registered with {f} {stored.get(f)!r} and holds {holds}; "
                    f"changing it to {body.get(f)!r} is refused (drain its jobs and register its data "
                    "elsewhere first, or register a new cluster)",
                }
                for f in changed
            ],
        )

    def deregister_cluster(self, name: str, audit: dict[str, Any] | None = None) -> None:
        """Delete a cluster that runs no jobs and holds no catalogued data sets (a data set's
        copies must stay on registered clusters, so a later registration of the name cannot
        inherit them under another identity); ``audit`` in the same transaction."""
        self.cluster_state(name)
        if self.registry.ledger.jobs_on(name):
            raise Conflict(f"cluster {name} still runs jobs; drain it first")
        with self.store.tx() as conn:
            if not self.store.cluster_specs(conn, [name], lock="update"):
                raise NotFound(f"cluster {name!r} not found")
            if self.store.count_active_on(name, conn):
                raise Conflict(f"cluster {name} still runs jobs; drain it first")
            datasets = self.store.datasets_on(conn, name)
            if datasets:
                raise Conflict(
                    f"cluster {name} holds copies of data sets {', '.join(datasets[:10])}"
                    f"{' ...' if len(datasets) > 10 else ''}; a cluster holding catalogued data cannot "
                    "be deregistered"
                )
            self.store.delete_cluster(conn, name)
            audit_chain.record(conn, audit)
        with self.lock:
            self.registry.clusters.pop(name, None)
            self.registry.rebuild_network()

    def set_cordon(self, name: str, cordoned: bool, audit: dict[str, Any] | None = None) -> ClusterState:
        state = self.cluster_state(name)
        values: dict[str, Any] = {"cordoned": cordoned}
        if not cordoned:
            values["draining"] = False
        if not self.store.update_cluster(name, audit=audit, **values):
            raise NotFound(f"cluster {name!r} not found")
        with self.lock:
            state.cordoned = cordoned
            if not cordoned:
                state.draining = False
        self.note_cluster(name, state, "cordoned" if cordoned else "uncordoned")
        self.wake()
        return state

    def drain(self, name: str, audit: dict[str, Any] | None = None) -> tuple[ClusterState, int]:
        """Cordon the cluster and send its jobs back to Pending (attempt raised) for re-placement,
        in one transaction with ``audit`` (``requeued_jobs`` in its detail). The jobs are read in
        that transaction after the cordon is written, so none placed before it is missed."""
        state = self.cluster_state(name)
        reason = f"cluster {name} is being drained"
        with self.lock:
            with self.store.tx() as conn:
                if not self.store.set_cluster(conn, name, cordoned=True, draining=True):
                    raise NotFound(f"cluster {name!r} not found")
                moved = self.store.requeue_many(
                    conn, self.store.active_on_cluster_locked(conn, name), Reason.Drained, reason
                )
                audit_chain.record(conn, audit, requeued_jobs=len(moved))
            state.cordoned = state.draining = True
            for job_id in moved:
                self.registry.ledger.pop(job_id)
        self.note_cluster(name, state, "drained")
        if moved:
            self.wake()
        return state, len(moved)

    def requeue_cluster_jobs(
        self,
        name: str,
        event: str,
        reason: str,
        *,
        as_leader: bool = False,
        silent_since: datetime | None = None,
    ) -> int:
        """Send every Scheduled/Running job on the cluster back to Pending with its attempt
        raised. ``as_leader``: a write on the leader's behalf (lease expiry), fenced by its epoch
        in the same transaction. ``silent_since``: only if the cluster's last contact in the store
        is still older than this, read under the cluster row's lock in the same transaction: a
        renewal that reached another controller process (the other national site, an API
        replica) after this one's view was taken wins, and the agent keeps its attempts."""
        rows: list[JobRow] = []
        after: str | None = None
        while True:
            page = self.store.active_on_cluster(name, after=after, limit=1000, with_spec=False)
            rows += page
            if len(page) < 1000:
                break
            after = page[-1]["id"]
        if not rows:
            return 0
        with self.lock:
            with self.store.tx() as conn:
                if as_leader:
                    self.store.check_leader(conn, self.epoch())
                if silent_since is not None:
                    contact = self.store.cluster_contact_for_update(conn, name)
                    if contact is not None and contact > silent_since:
                        state = self.registry.clusters.get(name)
                        if state is not None:
                            self.registry.advance_contact(state, contact)
                        return 0
                moved = self.store.requeue_many(conn, rows, event, reason)
            for job_id in moved:  # committed: only now the ledger
                self.registry.ledger.pop(job_id)
        if event == Reason.LeaseExpired:
            self.counters.failovers += len(moved)
        if moved:
            self.wake()
        return len(moved)

    def lease_hold_s(self) -> float:
        """How long after a cluster's last contact its attempts may still be running: the
        agent stops them itself at ``AGENT_LEASE_MARGIN`` x lease after it sent its last
        renewal; the controller waits the whole lease plus the grace, from when it received it."""
        pol = self.failover()
        return pol.lease_s + pol.heartbeat_grace_s

    def _mark_unreachable(self, name: str, seen: datetime | None) -> tuple[bool, datetime | None]:
        """Write the cluster's Unreachable health as the leader: fenced by this process's epoch in
        the same transaction, so a deposed leader's late verdict is refused (StaleLeader) and
        cannot overwrite what the current leader sees; and only while its last committed contact
        is still ``seen``, the one judged too old (a heartbeat can commit between the judgement
        and this write: received by another controller process, or by this one, whose heartbeats
        do not take the controller's lock). Whether it was marked, and if not, the contact the
        store holds (None when the cluster's row is gone)."""
        with self.store.tx() as conn:
            self.store.check_leader(conn, self.epoch())
            if self.store.mark_unreachable(conn, name, seen):
                return True, None
            return False, self.store.cluster_contact_for_update(conn, name)

    def expire_leases(self) -> int:
        """Mark silent clusters Unreachable after the grace (detection); once lease + grace
        have passed since the cluster's last contact, re-place its jobs. Decided per cluster
        from its last contact, never from per-job rows: the agent's own deadline is measured
        from the same renewals, and it has stopped every attempt by then, so nothing runs twice.
        Both writes are the leader's, fenced by its epoch (StaleLeader when it was deposed)."""
        grace = timedelta(seconds=self.failover().heartbeat_grace_s)
        hold = timedelta(seconds=self.lease_hold_s())
        t_now = now()
        moved = 0
        since = self.lead_since()
        for name, state in list(self.registry.clusters.items()):
            hb = seen = state.last_heartbeat  # the contact judged (read once: contacts move)
            if hb is not None and since is not None and since > hb:
                # Silent since before this leader took over: count from the takeover. Re-placing
                # later than the agent's own deadline is always safe; re-placing work that
                # finished while no leader could hear of it would run it twice.
                hb = since
            if state.health == Health.Ready and hb and t_now - hb > grace:
                marked, later = self._mark_unreachable(name, seen)
                if not marked:  # the cluster renewed after all: catch the view up
                    self.registry.advance_contact(state, later)
                    continue
                with self.registry.contacts:
                    if state.last_heartbeat == seen:  # unless a contact reached it since
                        state.health = Health.Unreachable
                if state.health != Health.Unreachable:
                    continue
                self.note_cluster(
                    name, state, f"no heartbeat for more than the grace of {grace.total_seconds():g}s"
                )
                log.warning("cluster %s is unreachable (last heartbeat %s)", name, hb)
            if state.health == Health.Unreachable and (hb is None or t_now - hb > hold):
                moved += self.requeue_cluster_jobs(
                    name,
                    Reason.LeaseExpired,
                    f"cluster {name} unreachable; its lease ended {self.lease_hold_s():.0f}s after its last contact",
                    as_leader=True,
                    silent_since=t_now - hold,
                )
        return moved
