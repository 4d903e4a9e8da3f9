"""The controller's in-memory history for the dashboard: health changes recorded once per change,
bounded; the ring buffer's samples turned into gauges, rates and per-interval counts."""

from __future__ import annotations

from datetime import UTC, datetime

from controller.history import SERIES, ClusterHistory, MetricsRing, Sample, derive


def sample(t: float, **over: float) -> Sample:
    base = dict(
        pending=0, scheduled=0, running=0, unreachable=0, cpu_allocated=0.0, cpu_capacity=100.0,
        gpu_allocated=0.0, gpu_capacity=0.0, placements=0, failovers=0, preemptions=0, fenced=0, wan_bytes=0.0,
    )  # fmt: skip
    return Sample(t=t, **{**base, **over})  # type: ignore[arg-type]


def test_a_change_is_recorded_once_and_the_history_is_bounded() -> None:
    h = ClusterHistory(per_cluster=3)
    at = datetime(2027, 1, 10, tzinfo=UTC)
    assert h.observe("a", "Unknown", False, False, at, "start")
    assert not h.observe("a", "Unknown", False, False, at, "again")
    assert h.observe("a", "Ready", False, False, at, "heartbeat")
    assert h.observe("a", "Ready", True, False, at, "cordoned")
    assert h.observe("a", "Ready", True, True, at, "drained")
    assert [c.reason for c in h.of("a")] == ["heartbeat", "cordoned", "drained"]
    assert h.of("b") == []


def test_series_are_gauges_rates_and_counts_per_interval() -> None:
    samples = [
        sample(100, pending=4, running=1, cpu_allocated=25, placements=10, failovers=0, wan_bytes=0),
        sample(
            105, pending=2, running=3, cpu_allocated=50, placements=20, failovers=3, wan_bytes=5e9, fenced=1
        ),
        sample(
            110, pending=2, running=3, cpu_allocated=50, placements=0, failovers=0, wan_bytes=0
        ),  # restarted
    ]
    s = derive(samples)
    assert set(s) == {x.name for x in SERIES}
    assert s["queue"] == [(100, 4.0), (105, 2.0), (110, 2.0)]
    assert s["utilisation_cpu"] == [(100, 25.0), (105, 50.0), (110, 50.0)]
    assert s["utilisation_gpu"][0] == (100, 0.0)  # no GPU anywhere: 0 %, not a division by zero
    assert s["placements_per_s"] == [(105, 2.0), (110, 0.0)]
    assert s["failovers"] == [(105, 3.0), (110, 0.0)]
    assert s["fenced"] == [(105, 1.0), (110, 0.0)]
    assert s["wan_bytes_per_s"] == [(105, 1e9), (110, 0.0)]


def test_the_ring_keeps_the_newest_samples() -> None:
    ring = MetricsRing(3)
    for t in range(5):
        ring.add(sample(float(t)))
    assert len(ring) == 3 and [s.t for s in ring.since(0)] == [2.0, 3.0, 4.0]
    assert [s.t for s in ring.since(3.5)] == [4.0]
    latest = ring.latest()
    assert latest is not None and latest.t == 4.0
