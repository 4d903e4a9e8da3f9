"""Where the scheduler's capacity numbers come from: Prometheus, the agents' heartbeats, or the
topology, in that order, per cluster, and why.

- ``PrometheusCapacitySource`` asks a Prometheus that scrapes every agent's kube-state-metrics-
  style ``/metrics`` (the scrape config adds the ``cluster`` label) with PromQL:
  ``sum by (cluster, resource) (kube_node_status_allocatable{...})`` and the same over
  ``kube_pod_container_resource_requests``. A cluster whose scrape target is down, or whose
  newest sample is older than ``max_age_s``, has no Prometheus observation.
- ``HeartbeatCapacitySource`` reads the ``capacity``/``allocated`` that each agent sends in its
  heartbeat body, while the heartbeat is fresh.
- ``CapacityTracker`` combines them: Prometheus when it answers with fresh data for the cluster,
  else the heartbeat, else the topology's declared capacity, and keeps the reason as a note for
  ``GET /v1/clusters/{name}``. Prometheus is queried by the control loop at a bounded rate in a
  background thread (``maybe_refresh``), never on the request path.

The scheduler's view of a cluster: capacity = observed allocatable when known, else the
topology's; used = max(the controller's reservations, observed requests), so usage the controller
did not place (or has not heard of yet) is respected.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

log = logging.getLogger("yiwang.capacity")

SOURCE_PROMETHEUS = "prometheus"
SOURCE_HEARTBEAT = "heartbeat"
SOURCE_TOPOLOGY = "topology"

# kube-state-metrics resource label -> (index in the capacity vector, factor to our unit)
RESOURCES: dict[str, tuple[int, float]] = {
    "cpu": (0, 1.0),  # cores
    "memory": (1, 1.0 / 2**30),  # bytes -> GiB
    "nvidia_com_gpu": (2, 1.0),
}
_RESOURCE_RE = "|".join(RESOURCES)
QUERY_ALLOCATABLE = f'sum by (cluster, resource) (kube_node_status_allocatable{{resource=~"{_RESOURCE_RE}"}})'
QUERY_REQUESTS = (
    f'sum by (cluster, resource) (kube_pod_container_resource_requests{{resource=~"{_RESOURCE_RE}"}})'
)
QUERY_NEWEST = "max by (cluster) (timestamp(kube_node_status_allocatable))"
QUERY_UP = "min by (cluster) (up)"

NOTE_NOT_CONFIGURED = "Prometheus is not configured (YIWANG_PROMETHEUS_URL)"
NOTE_NO_HEARTBEAT_CAPACITY = "no fresh heartbeat with capacity"


def _vector(values: Mapping[str, float]) -> np.ndarray:
    return np.array(
        [values.get("cpu", 0.0), values.get("memory_gib", 0.0), values.get("gpu", 0.0)], dtype=np.float64
    )


def _as_dict(v: np.ndarray | None) -> dict[str, float] | None:
    if v is None:
        return None
    return {"cpu": float(v[0]), "memory_gib": float(v[1]), "gpu": float(v[2])}


@dataclass(frozen=True)
class Observation:
    """One cluster's observed allocatable and requested resources (cpu, memory GiB, gpu)."""

    allocatable: np.ndarray
    requested: np.ndarray | None
    observed_at: datetime


@dataclass(frozen=True)
class ClusterCapacity:
    """What the scheduler uses for one cluster, where it came from and why."""

    source: str
    note: str
    allocatable: np.ndarray | None = None
    requested: np.ndarray | None = None
    observed_at: datetime | None = None

    def view(self) -> dict[str, Any]:
        return {
            "capacity_source": self.source,
            "capacity_note": self.note,
            "observed": {
                "allocatable": _as_dict(self.allocatable),
                "requested": _as_dict(self.requested),
                "observed_at": self.observed_at.isoformat() if self.observed_at else None,
            },
        }


class SourceUnavailable(Exception):
    """The capacity source cannot answer now (down, erroring, stale); the message says why."""


class PromQuery(Protocol):
    def custom_query(self, query: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]: ...


class PrometheusCapacitySource:
    name = SOURCE_PROMETHEUS

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 2.0,
        max_age_s: float = 30.0,
        connect: Callable[[], PromQuery] | None = None,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.max_age_s = max_age_s
        self._connect = connect or self._default_connect
        self._prom: PromQuery | None = None

    def _default_connect(self) -> PromQuery:
        from prometheus_api_client import PrometheusConnect
        from urllib3.util.retry import Retry

        # No retries with back-off inside the library: the tracker retries on its own schedule.
        prom: PromQuery = PrometheusConnect(
            url=self.url, disable_ssl=True, retry=Retry(total=0), timeout=self.timeout_s
        )
        return prom

    def _query(self, q: str) -> list[dict[str, Any]]:
        if self._prom is None:
            self._prom = self._connect()
        try:
            return self._prom.custom_query(q)
        except Exception as exc:  # requests' and the client's errors alike: the source is down
            raise SourceUnavailable(f"Prometheus at {self.url} did not answer: {type(exc).__name__}") from exc

    def observe(self) -> tuple[dict[str, Observation], dict[str, str]]:
        """Fresh observations per cluster, and for clusters Prometheus knows but cannot vouch for
        (target down, stale samples) the reason. Raises SourceUnavailable when Prometheus is down."""
        up = {r["metric"].get("cluster", ""): float(r["value"][1]) for r in self._query(QUERY_UP)}
        newest = {r["metric"].get("cluster", ""): float(r["value"][1]) for r in self._query(QUERY_NEWEST)}
        alloc = self._by_cluster(self._query(QUERY_ALLOCATABLE))
        requests = self._by_cluster(self._query(QUERY_REQUESTS))
        t_now = time.time()
        out: dict[str, Observation] = {}
        reasons: dict[str, str] = {}
        for cluster, vec in alloc.items():
            if up.get(cluster, 1.0) < 1.0:
                reasons[cluster] = "Prometheus cannot scrape this cluster's agent (up == 0)"
                continue
            age = t_now - newest.get(cluster, 0.0)
            if age > self.max_age_s:
                reasons[cluster] = f"Prometheus samples for this cluster are stale ({age:.0f}s old)"
                continue
            out[cluster] = Observation(
                allocatable=vec,
                requested=requests.get(cluster, np.zeros(3)),
                observed_at=datetime.fromtimestamp(newest[cluster], UTC),
            )
        for cluster, value in up.items():
            if cluster and cluster not in alloc and cluster not in reasons:
                reasons[cluster] = (
                    "Prometheus cannot scrape this cluster's agent (up == 0)"
                    if value < 1.0
                    else "Prometheus has no kube_node_status_allocatable series for this cluster"
                )
        return out, reasons

    @staticmethod
    def _by_cluster(result: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for r in result:
            cluster = r["metric"].get("cluster")
            spec = RESOURCES.get(r["metric"].get("resource", ""))
            if not cluster or spec is None:
                continue
            idx, factor = spec
            out.setdefault(cluster, np.zeros(3))[idx] = float(r["value"][1]) * factor
        return out


class HeartbeatState(Protocol):
    reported: dict[str, Any] | None
    last_heartbeat: datetime | None


class HeartbeatCapacitySource:
    """Capacity from the agents' heartbeat bodies: ``{"capacity": {...}, "allocated": {...}}``."""

    name = SOURCE_HEARTBEAT

    def __init__(
        self, states: Callable[[], Mapping[str, HeartbeatState]], max_age_s: Callable[[], float]
    ) -> None:
        self.states = states
        self.max_age_s = max_age_s

    def observe_one(self, state: HeartbeatState) -> Observation | None:
        body, at = state.reported, state.last_heartbeat
        if not body or at is None or not isinstance(body.get("capacity"), dict):
            return None
        if (datetime.now(UTC) - at).total_seconds() > self.max_age_s():
            return None
        try:
            cap = _vector(body["capacity"])
            used = _vector(body["allocated"]) if isinstance(body.get("allocated"), dict) else None
        except (TypeError, ValueError):
            return None  # a malformed body is no observation
        if not (np.isfinite(cap).all() and (cap >= 0).all()) or (
            used is not None and not (np.isfinite(used).all() and (used >= 0).all())
        ):
            return None  # nor is a negative or non-finite one (the API refuses both)
        return Observation(allocatable=cap, requested=used, observed_at=at)

    def observe(self) -> dict[str, Observation]:
        out = {}
        for name, state in self.states().items():
            obs = self.observe_one(state)
            if obs is not None:
                out[name] = obs
        return out


class CapacityTracker:
    """Prometheus first, heartbeats as the fallback, the topology last; per cluster, with reasons."""

    def __init__(
        self,
        heartbeat: HeartbeatCapacitySource,
        prometheus: PrometheusCapacitySource | None = None,
        *,
        refresh_s: float = 5.0,
    ) -> None:
        self.heartbeat = heartbeat
        self.prometheus = prometheus
        self.refresh_s = refresh_s
        self._lock = threading.Lock()
        self._prom_obs: dict[str, Observation] = {}
        self._prom_reasons: dict[str, str] = {}
        self._prom_at: float | None = None  # monotonic time of the last successful query
        self._prom_error: str | None = None if prometheus else NOTE_NOT_CONFIGURED
        self._last_attempt = float("-inf")
        self._inflight: threading.Thread | None = None

    # ---- refreshing (control loop only) -------------------------------------------------------
    def refresh(self) -> None:
        """Query Prometheus now (blocking, bounded by its timeout)."""
        if self.prometheus is None:
            return
        try:
            obs, reasons = self.prometheus.observe()
        except SourceUnavailable as exc:
            with self._lock:
                if self._prom_error != str(exc):
                    log.warning("capacity: %s; falling back to heartbeats", exc)
                self._prom_error = str(exc)
                self._prom_obs, self._prom_reasons = {}, {}
            return
        with self._lock:
            if self._prom_error is not None:
                log.info("capacity: Prometheus at %s answers again", self.prometheus.url)
            self._prom_obs, self._prom_reasons = obs, reasons
            self._prom_error = None
            self._prom_at = time.monotonic()

    def maybe_refresh(self) -> bool:
        """Start a refresh in a background thread when one is due and none is running."""
        if self.prometheus is None:
            return False
        t = time.monotonic()
        if t - self._last_attempt < self.refresh_s or (self._inflight and self._inflight.is_alive()):
            return False
        self._last_attempt = t
        self._inflight = threading.Thread(target=self.refresh, name="yiwang-capacity-refresh", daemon=True)
        self._inflight.start()
        return True

    # ---- reading --------------------------------------------------------------------------
    def _prometheus_note(self, cluster: str) -> str:
        """Why Prometheus gave nothing usable for the cluster (caller holds the lock)."""
        if self._prom_error is not None:
            return self._prom_error
        assert self.prometheus is not None
        if self._prom_at is None:
            return "Prometheus has not been queried yet"
        age = time.monotonic() - self._prom_at
        if age > self.prometheus.max_age_s:
            return f"the last Prometheus answer is {age:.0f}s old"
        return self._prom_reasons.get(
            cluster, "Prometheus has no kube_node_status_allocatable series for this cluster"
        )

    def capacity_of(self, cluster: str, state: HeartbeatState | None) -> ClusterCapacity:
        with self._lock:
            fresh = (
                self.prometheus is not None
                and self._prom_error is None
                and self._prom_at is not None
                and time.monotonic() - self._prom_at <= self.prometheus.max_age_s
            )
            obs = self._prom_obs.get(cluster) if fresh else None
            note = "" if obs else self._prometheus_note(cluster)
        if obs is not None:
            return ClusterCapacity(
                SOURCE_PROMETHEUS,
                f"from Prometheus at {self.prometheus.url if self.prometheus else ''}",
                obs.allocatable,
                obs.requested,
                obs.observed_at,
            )
        hb = self.heartbeat.observe_one(state) if state is not None else None
        if hb is not None:
            return ClusterCapacity(
                SOURCE_HEARTBEAT,
                f"from the agent's heartbeat; {note}",
                hb.allocatable,
                hb.requested,
                hb.observed_at,
            )
        return ClusterCapacity(
            SOURCE_TOPOLOGY, f"declared in the topology; {NOTE_NO_HEARTBEAT_CAPACITY}; {note}"
        )

    def effective(
        self,
        names: Sequence[str],
        states: Sequence[HeartbeatState],
        declared: np.ndarray,
        reserved: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(capacity, used) rows for the scheduler: observed allocatable when known, else declared;
        used = max(reservations, observed requests)."""
        cap, used = declared.copy(), reserved.copy()
        for i, (name, state) in enumerate(zip(names, states, strict=True)):
            cc = self.capacity_of(name, state)
            if cc.allocatable is not None:
                cap[i] = cc.allocatable
            if cc.requested is not None:
                used[i] = np.maximum(used[i], cc.requested)
        return cap, used
