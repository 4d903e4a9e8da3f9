"""Monitoring: what the dashboard and the metrics read about clusters and the controller. A
cluster's view (its spec, the capacity the scheduler uses and where it comes from, what is
allocated, its health), its health history (``note_cluster``), the sampled time series of the
controller's metrics (``sample_metrics``, run by the sampler loop) and the signed checkpoints of
the audit chain (``maybe_checkpoint_audit``, run by the leader's loop).

Dependencies: the store, the controller's lock, the cluster registry, the capacity tracker, the
counters, the cluster history and metrics ring (in memory, bounded), the settings and a callable
for the agent protocol's count of fenced reports."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np

from controller import audit
from controller.capacity import CapacityTracker, HeartbeatCapacitySource, PrometheusCapacitySource
from controller.history import ClusterHistory, Counters, MetricsRing, Sample
from controller.policies import FailoverPolicy
from controller.registry import ClusterState, Health, Registry
from controller.settings import Settings
from controller.store.store import Store, now


def capacity_tracker(
    settings: Settings, registry: Registry, failover: Callable[[], FailoverPolicy]
) -> CapacityTracker:
    """Where the scheduler reads a cluster's capacity: Prometheus when configured, else the
    agents' heartbeats (while fresh), else the topology's declared capacity."""
    s = settings
    heartbeats = HeartbeatCapacitySource(
        lambda: registry.clusters,
        lambda: failover().lease_s + failover().heartbeat_grace_s,
    )
    prom = (
        PrometheusCapacitySource(
            s.prometheus_url, timeout_s=s.prometheus_timeout_s, max_age_s=s.capacity_max_age_s
        )
        if s.prometheus_url
        else None
    )
    return CapacityTracker(heartbeats, prom, refresh_s=s.capacity_refresh_s)


class Monitoring:
    def __init__(
        self,
        store: Store,
        lock: threading.RLock,
        registry: Registry,
        capacity: CapacityTracker,
        counters: Counters,
        cluster_history: ClusterHistory,
        metrics_ring: MetricsRing,
        settings: Settings,
        *,
        fenced_reports: Callable[[], int],
    ) -> None:
        self.store = store
        self.lock = lock
        self.registry = registry
        self.capacity = capacity
        self.counters = counters
        self.cluster_history = cluster_history
        self.metrics_ring = metrics_ring
        self.settings = settings
        self.fenced_reports = fenced_reports
        self._last_checkpoint = float("-inf")

    def note_cluster(self, name: str, state: ClusterState, reason: str = "") -> None:
        """Record the cluster's health/cordon/drain in its history when it changed."""
        self.cluster_history.observe(name, state.health, state.cordoned, state.draining, now(), reason)

    def capacity_view(self, state: ClusterState) -> dict[str, Any]:
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
            **self.capacity_view(state),
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
            eff = self.capacity_view(state)["effective_capacity"]
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
            fenced=self.fenced_reports(),
            wan_bytes=c.wan_bytes,
        )
        self.metrics_ring.add(sample)
        return sample

    def maybe_checkpoint_audit(self) -> None:
        """Sign a checkpoint of the audit chain when one is due and a key is configured."""
        s = self.settings
        if not s.audit_sm2_key or time.monotonic() - self._last_checkpoint < s.audit_checkpoint_s:
            return
        self._last_checkpoint = time.monotonic()
        audit.checkpoint(self.store, s.audit_sm2_key, s.audit_checkpoint_file)
