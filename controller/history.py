"""What the dashboard draws over time, kept in memory by the controller itself (no Prometheus
needed): each cluster's health and cordon/drain changes, and a ring buffer of the controller's
own metrics sampled every few seconds. Both start empty when the process starts and are bounded
(old entries fall off the end)."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

HEALTH_CHANGES_KEPT = 200  # per cluster


@dataclass(frozen=True, slots=True)
class HealthChange:
    at: datetime
    health: str
    cordoned: bool
    draining: bool
    reason: str


class ClusterHistory:
    """Per cluster, the changes of (health, cordoned, draining), newest last. ``observe`` is
    called wherever the controller changes them and by the sampler (which also catches changes
    another controller process made, read by the store follower)."""

    def __init__(self, per_cluster: int = HEALTH_CHANGES_KEPT) -> None:
        self.per_cluster = per_cluster
        self._by: dict[str, deque[HealthChange]] = {}
        self._lock = threading.Lock()

    def observe(
        self, name: str, health: str, cordoned: bool, draining: bool, at: datetime, reason: str = ""
    ) -> bool:
        """Record the state if it differs from the last one recorded; True when it did."""
        with self._lock:
            changes = self._by.get(name)
            if changes is None:
                changes = self._by[name] = deque(maxlen=self.per_cluster)
            if changes:
                last = changes[-1]
                if (last.health, last.cordoned, last.draining) == (health, cordoned, draining):
                    return False
            changes.append(HealthChange(at, health, cordoned, draining, reason))
            return True

    def of(self, name: str) -> list[HealthChange]:
        with self._lock:
            return list(self._by.get(name, ()))


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of the controller's metrics; counters are cumulative since the process started."""

    t: float  # Unix seconds
    pending: int
    scheduled: int
    running: int
    unreachable: int
    cpu_allocated: float
    cpu_capacity: float
    gpu_allocated: float
    gpu_capacity: float
    placements: int
    failovers: int
    preemptions: int
    fenced: int
    wan_bytes: float


@dataclass(frozen=True)
class SeriesSpec:
    name: str
    title: str
    title_zh: str
    unit: str


# The series the dashboard draws, in order. Rates and per-interval counts come from differences of
# consecutive samples of the cumulative counters.
SERIES = (
    SeriesSpec("queue", "Queue (pending jobs)", "排队作业", "jobs"),
    SeriesSpec("running", "Running jobs", "运行中作业", "jobs"),
    SeriesSpec("placements_per_s", "Placements per second", "每秒调度", "1/s"),
    SeriesSpec("utilisation_cpu", "CPU allocated", "CPU 利用率", "%"),
    SeriesSpec("utilisation_gpu", "GPU allocated", "GPU 利用率", "%"),
    SeriesSpec("failovers", "Jobs failed over", "故障转移作业", "jobs"),
    SeriesSpec("fenced", "Fenced executions", "被隔离的执行", "reports"),
    SeriesSpec("wan_bytes_per_s", "WAN data moved (estimated)", "广域网数据迁移", "B/s"),
    SeriesSpec("unreachable", "Unreachable clusters", "不可达集群", "clusters"),
)


def derive(samples: list[Sample]) -> dict[str, list[tuple[float, float]]]:
    """The dashboard's series from consecutive samples: gauges as they are, counters as a rate
    (per second) or as the count added in each interval. A counter that went down (the process
    restarted) contributes nothing for that interval."""
    out: dict[str, list[tuple[float, float]]] = {s.name: [] for s in SERIES}
    prev: Sample | None = None
    for s in samples:
        out["queue"].append((s.t, float(s.pending)))
        out["running"].append((s.t, float(s.running)))
        out["unreachable"].append((s.t, float(s.unreachable)))
        cpu = 100.0 * s.cpu_allocated / s.cpu_capacity if s.cpu_capacity > 0 else 0.0
        gpu = 100.0 * s.gpu_allocated / s.gpu_capacity if s.gpu_capacity > 0 else 0.0
        out["utilisation_cpu"].append((s.t, round(cpu, 2)))
        out["utilisation_gpu"].append((s.t, round(gpu, 2)))
        if prev is not None and s.t > prev.t:
            dt = s.t - prev.t
            out["placements_per_s"].append((s.t, round(max(0, s.placements - prev.placements) / dt, 3)))
            out["failovers"].append((s.t, float(max(0, s.failovers - prev.failovers))))
            out["fenced"].append((s.t, float(max(0, s.fenced - prev.fenced))))
            out["wan_bytes_per_s"].append((s.t, round(max(0.0, s.wan_bytes - prev.wan_bytes) / dt, 1)))
        prev = s
    return out


class MetricsRing:
    """The last ``size`` samples, oldest first."""

    def __init__(self, size: int) -> None:
        self._samples: deque[Sample] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, sample: Sample) -> None:
        with self._lock:
            self._samples.append(sample)

    def latest(self) -> Sample | None:
        with self._lock:
            return self._samples[-1] if self._samples else None

    def since(self, t: float) -> list[Sample]:
        with self._lock:
            return [s for s in self._samples if s.t >= t]

    def __len__(self) -> int:
        return len(self._samples)


@dataclass
class Counters:
    """Cumulative counts of what this controller process did (also exported on /metrics)."""

    placements: int = 0
    failovers: int = 0  # jobs sent back to Pending because their cluster's lease ended or was released
    preemptions: int = 0
    wan_bytes: float = 0.0  # estimated bytes the placements move over the WAN (the locality model)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
