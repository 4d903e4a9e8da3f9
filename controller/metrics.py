"""Prometheus metrics of the controller, computed at scrape time from its live state."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from controller.jobs import JobPhase

if TYPE_CHECKING:
    from controller.service import Controller


class ControllerCollector(Collector):
    def __init__(self, ctl: Controller) -> None:
        self.ctl = ctl

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        # The shared (national) database: when it does not answer, say so and serve what this
        # process knows without it, rather than failing the scrape (which reads as "controller down").
        store_up = GaugeMetricFamily(
            "yiwang_store_up", "1 if this process's last query to the shared database succeeded"
        )
        try:
            counts: dict[str, int] | None = self.ctl.store.count_jobs_by_phase()
        except Exception:  # any database error: the store is degraded for this process
            counts = None
        store_up.add_metric([], 0.0 if counts is None else 1.0)
        yield store_up
        if counts is not None:
            jobs = GaugeMetricFamily("yiwang_jobs", "Jobs by phase", labels=["phase"])
            for phase in JobPhase:
                jobs.add_metric([phase.value], counts.get(phase.value, 0))
            yield jobs
        up = GaugeMetricFamily("yiwang_cluster_up", "1 if the cluster is Ready", labels=["cluster"])
        age = GaugeMetricFamily(
            "yiwang_cluster_heartbeat_age_seconds", "Seconds since the last heartbeat", labels=["cluster"]
        )
        cap = GaugeMetricFamily(
            "yiwang_cluster_capacity", "Schedulable capacity", labels=["cluster", "resource"]
        )
        alloc = GaugeMetricFamily(
            "yiwang_cluster_allocated",
            "Capacity reserved by Scheduled/Running jobs",
            labels=["cluster", "resource"],
        )
        allocated = self.ctl.registry.allocated()
        t_now = datetime.now(UTC)
        for name, state in list(self.ctl.registry.clusters.items()):
            up.add_metric([name], 1.0 if state.health == "Ready" else 0.0)
            if state.last_heartbeat:
                age.add_metric([name], (t_now - state.last_heartbeat).total_seconds())
            c = state.spec.capacity
            a = allocated.get(name)
            for i, (res, total) in enumerate((("cpu", c.cpu), ("memory_gib", c.memory_gib), ("gpu", c.gpu))):
                cap.add_metric([name, res], float(total))
                alloc.add_metric([name, res], float(a[i]) if a is not None else 0.0)
        yield from (up, age, cap, alloc)
        leader = GaugeMetricFamily("yiwang_leader_epoch", "Fencing epoch held, 0 when not leader")
        leader.add_metric([], float(self.ctl.epoch))
        yield leader
        fenced = CounterMetricFamily(
            "yiwang_fenced_executions",
            "Reports of attempts that went on after they were re-placed (refused; see the job's FencedReport events)",
        )
        fenced.add_metric([], float(self.ctl.fenced_reports))
        yield fenced
        done = self.ctl.counters
        for name, help_text, value in (
            ("yiwang_placements", "Jobs this controller placed on a cluster", done.placements),
            (
                "yiwang_failovers",
                "Jobs sent back to Pending because their cluster's lease ended or its agent released them",
                done.failovers,
            ),
            (
                "yiwang_preemptions",
                "Jobs preempted to make room for higher-priority or in-quota work",
                done.preemptions,
            ),
            (
                "yiwang_wan_bytes_estimated",
                "Bytes the placements move over the WAN, as the locality model estimates them",
                done.wan_bytes,
            ),
        ):
            counter = CounterMetricFamily(name, help_text)
            counter.add_metric([], float(value))
            yield counter
        follower = self.ctl.follower
        if follower is not None:
            age = GaugeMetricFamily(
                "yiwang_store_sync_age_seconds",
                "Seconds since this process last brought its views in step with the database",
            )
            age.add_metric([], max(0.0, datetime.now(UTC).timestamp() - follower.last_sync))
            yield age
            events = CounterMetricFamily(
                "yiwang_store_sync_events", "Job events this process read from the database"
            )
            events.add_metric([], float(follower.totals.events))
            yield events


def make_registry(ctl: Controller) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(ControllerCollector(ctl))
    decision = Histogram(
        "yiwang_scheduler_decision_seconds",
        "Time to decide one job's placement",
        registry=registry,
        buckets=(1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1),
    )
    ctl.decision_observers.append(decision.observe)
    return registry
