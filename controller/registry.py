"""The live cluster registry: topology specs plus cordon, drain and health state, and the
allocation ledger. In memory for speed, written through to the store."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from controller.domain.phases import Health
from controller.topology.generate import BACKBONE_GBPS, MINISTRY_LINK_GBPS
from controller.topology.model import NATIONAL_BACKUP, NATIONAL_PRIMARY, Cluster, Link, Topology
from controller.topology.network import NetworkModel, great_circle_km, rtt_ms_for_distance


@dataclass
class LedgerEntry:
    cluster: str
    demand: np.ndarray
    tenant: str
    priority: int
    attempt: int = 1


class Ledger:
    """The demand of every Scheduled/Running job, with per-cluster and per-tenant totals kept
    up to date on every change, so a scheduling cycle reads them in O(clusters + tenants)
    rather than summing over all active jobs."""

    def __init__(self) -> None:
        self.entries: dict[str, LedgerEntry] = {}
        self.by_cluster: dict[str, dict[str, LedgerEntry]] = {}
        self._cluster_totals: dict[str, np.ndarray] = {}
        self._tenant_totals: dict[str, np.ndarray] = {}

    def __contains__(self, job_id: object) -> bool:
        return job_id in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def add(
        self, job_id: str, cluster: str, demand: np.ndarray, tenant: str, priority: int, attempt: int = 1
    ) -> None:
        self.pop(job_id)
        entry = LedgerEntry(cluster, demand, tenant, priority, attempt)
        self.entries[job_id] = entry
        self.by_cluster.setdefault(cluster, {})[job_id] = entry
        self._cluster_totals[cluster] = self._cluster_totals.get(cluster, np.zeros(3)) + demand
        self._tenant_totals[tenant] = self._tenant_totals.get(tenant, np.zeros(3)) + demand

    def pop(self, job_id: str) -> LedgerEntry | None:
        entry = self.entries.pop(job_id, None)
        if entry is None:
            return None
        on_cluster = self.by_cluster.get(entry.cluster, {})
        on_cluster.pop(job_id, None)
        self._cluster_totals[entry.cluster] = (
            np.maximum(self._cluster_totals[entry.cluster] - entry.demand, 0.0) if on_cluster else np.zeros(3)
        )
        tenant_left = self._tenant_totals[entry.tenant] - entry.demand
        self._tenant_totals[entry.tenant] = np.maximum(tenant_left, 0.0)
        return entry

    def jobs_on(self, cluster: str) -> dict[str, LedgerEntry]:
        return self.by_cluster.get(cluster, {})

    def cluster_total(self, cluster: str) -> np.ndarray:
        return self._cluster_totals.get(cluster, np.zeros(3)).copy()

    def tenant_totals(self) -> dict[str, np.ndarray]:
        return {t: v.copy() for t, v in self._tenant_totals.items() if v.any()}


@dataclass
class ClusterState:
    spec: Cluster
    cordoned: bool = False
    draining: bool = False
    health: str = Health.Unknown
    last_heartbeat: datetime | None = None
    reported: dict[str, Any] | None = None


@dataclass
class Registry:
    base_links: list[Link]
    clusters: dict[str, ClusterState] = field(default_factory=dict)
    network: NetworkModel | None = None
    ledger: Ledger = field(default_factory=lambda: Ledger())
    # Guards each cluster's contact (health, last_heartbeat, reported) between a contact this
    # process applies without the controller's lock (``AgentProtocol.contact``) and the store
    # follower's sync, which must not put back the older contact it read before that one.
    contacts: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    # The member clusters' tenants as of the last ``rebuild_network`` (which every change of the
    # clusters' specs is followed by): a submission's tenant check reads it, not every cluster.
    tenants: frozenset[str] = field(default_factory=frozenset)

    def advance_contact(self, state: ClusterState, at: datetime | None) -> None:
        """The cluster's last contact moved forward to ``at`` (a contact the store holds that this
        view has not seen), never back past one applied meanwhile."""
        with self.contacts:
            if at is not None and (state.last_heartbeat is None or state.last_heartbeat < at):
                state.last_heartbeat = at

    def rebuild_network(self) -> None:
        specs = [s.spec for s in self.clusters.values()]
        self.tenants = frozenset(c.tenant for c in specs if c.tenant)
        names = {c.name for c in specs}
        links = [lk for lk in self.base_links if lk.a in names and lk.b in names]
        linked = {x for lk in links for x in (lk.a, lk.b)}
        by_name = {c.name: c for c in specs}
        # A cluster registered outside the topology file gets links to the national nodes.
        for c in specs:
            if c.name in linked or c.tier.value == "national":
                continue
            for nat in (NATIONAL_PRIMARY, NATIONAL_BACKUP):
                if nat in by_name:
                    n = by_name[nat]
                    km = great_circle_km(c.location.lng, c.location.lat, n.location.lng, n.location.lat)
                    links.append(
                        Link(
                            a=c.name,
                            b=nat,
                            bandwidth_gbps=MINISTRY_LINK_GBPS,
                            latency_ms=rtt_ms_for_distance(km),
                        )
                    )
        if (
            NATIONAL_PRIMARY in by_name
            and NATIONAL_BACKUP in by_name
            and not any({lk.a, lk.b} == {NATIONAL_PRIMARY, NATIONAL_BACKUP} for lk in links)
        ):
            links.append(
                Link(a=NATIONAL_PRIMARY, b=NATIONAL_BACKUP, bandwidth_gbps=BACKBONE_GBPS, latency_ms=20.0)
            )
        topo = Topology.model_construct(version=1, clusters=specs, links=links)
        self.network = NetworkModel(topo)

    def allocated(self) -> dict[str, np.ndarray]:
        return {name: self.ledger.cluster_total(name) for name in self.clusters}
