"""The live cluster registry: topology specs plus cordon, drain and health state, and the
allocation ledger. In memory for speed, written through to the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from controller.topology.generate import BACKBONE_GBPS, MINISTRY_LINK_GBPS
from controller.topology.model import NATIONAL_BACKUP, NATIONAL_PRIMARY, Cluster, Link, Topology
from controller.topology.network import NetworkModel, great_circle_km, rtt_ms_for_distance


class Health:
    Unknown = "Unknown"  # registered, no heartbeat yet
    Ready = "Ready"
    Unreachable = "Unreachable"  # missed heartbeats for longer than the grace period


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
    # job id -> (cluster name, demand vector) for every Scheduled/Running job
    ledger: dict[str, tuple[str, np.ndarray]] = field(default_factory=dict)

    def rebuild_network(self) -> None:
        specs = [s.spec for s in self.clusters.values()]
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
        out: dict[str, np.ndarray] = {name: np.zeros(3) for name in self.clusters}
        for cluster, demand in self.ledger.values():
            if cluster in out:
                out[cluster] = out[cluster] + demand
        return out
