"""The dashboard's time series (GET /v1/metrics/series): from the controller's own ring buffer
of samples (controller/history.py), or, when ``series_prometheus_url`` is set, from that
Prometheus (which scrapes this controller's /metrics), falling back to the ring buffer with a note
when it does not answer."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Literal

import httpx
from pydantic import BaseModel, Field

from controller.history import SERIES, derive

if TYPE_CHECKING:
    from controller.service import Controller

MAX_POINTS = 600  # per series and answer (Prometheus's step is chosen to stay under it)

# PromQL for each series, over the controller's own metrics (controller/metrics.py). ``{rate}`` is
# the window a rate or increase looks back over (a few scrape intervals).
PROMQL = {
    "queue": 'sum(yiwang_jobs{phase="Pending"})',
    "running": 'sum(yiwang_jobs{phase="Running"})',
    "placements_per_s": "sum(rate(yiwang_placements_total[{rate}]))",
    "utilisation_cpu": '100 * sum(yiwang_cluster_allocated{resource="cpu"}) / sum(yiwang_cluster_capacity{resource="cpu"})',
    "utilisation_gpu": '100 * sum(yiwang_cluster_allocated{resource="gpu"}) / sum(yiwang_cluster_capacity{resource="gpu"})',
    "failovers": "sum(increase(yiwang_failovers_total[{rate}]))",
    "fenced": "sum(increase(yiwang_fenced_executions_total[{rate}]))",
    "wan_bytes_per_s": "sum(rate(yiwang_wan_bytes_estimated_total[{rate}]))",
    "unreachable": "count(yiwang_cluster_up == 0) or vector(0)",
}


class SeriesRead(BaseModel):
    name: str
    title: str
    title_zh: str
    unit: str
    points: list[tuple[float, float]] = Field(description="[Unix seconds, value], oldest first")


class SeriesList(BaseModel):
    source: Literal["memory", "prometheus"]
    note: str
    interval_s: float = Field(description="seconds between points")
    window_s: float
    series: list[SeriesRead]


def _thin(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(points) <= MAX_POINTS:
        return points
    step = len(points) / MAX_POINTS
    return [points[int(i * step)] for i in range(MAX_POINTS - 1)] + [points[-1]]


def from_memory(ctl: Controller, window_s: float, note: str = "") -> SeriesList:
    latest = ctl.metrics_ring.latest()
    interval = ctl.settings.metrics_sample_s
    if latest is None or time.time() - latest.t >= interval:
        ctl.sample_metrics()  # nobody sampled yet (no background loop) or the loop is behind
    samples = ctl.metrics_ring.since(time.time() - window_s)
    series = derive(samples)
    return SeriesList(
        source="memory",
        note=note
        or f"sampled by this controller every {interval:g}s since it started ({len(samples)} samples in the window)",
        interval_s=interval,
        window_s=window_s,
        series=[
            SeriesRead(
                name=s.name, title=s.title, title_zh=s.title_zh, unit=s.unit, points=_thin(series[s.name])
            )
            for s in SERIES
        ],
    )


def from_prometheus(url: str, window_s: float, timeout_s: float) -> SeriesList:
    """Each series as a range query; raises httpx.HTTPError or ValueError when Prometheus cannot
    answer (the caller falls back to the ring buffer)."""
    end = time.time()
    step = max(5.0, window_s / MAX_POINTS)
    rate = f"{max(60, int(step * 4))}s"
    out = []
    with httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s) as client:
        for s in SERIES:
            r = client.get(
                "/api/v1/query_range",
                params={
                    "query": PROMQL[s.name].replace("{rate}", rate),
                    "start": end - window_s,
                    "end": end,
                    "step": step,
                },
            )
            r.raise_for_status()
            body = r.json()
            if body.get("status") != "success":
                raise ValueError(f"Prometheus answered {body.get('status')}: {body.get('error', '')}")
            result = body["data"]["result"]
            values = result[0]["values"] if result else []
            points = [(float(t), round(float(v), 3)) for t, v in values if v not in ("NaN", "+Inf", "-Inf")]
            out.append(
                SeriesRead(name=s.name, title=s.title, title_zh=s.title_zh, unit=s.unit, points=points)
            )
    return SeriesList(
        source="prometheus",
        note=f"from Prometheus at {url}, a point every {step:g}s",
        interval_s=step,
        window_s=window_s,
        series=out,
    )


def series(ctl: Controller, window_s: float) -> SeriesList:
    url = ctl.settings.series_prometheus_url
    if url:
        try:
            return from_prometheus(url, window_s, ctl.settings.prometheus_timeout_s)
        except (httpx.HTTPError, ValueError, KeyError, IndexError) as exc:
            return from_memory(
                ctl,
                window_s,
                note=f"Prometheus at {url} did not answer ({type(exc).__name__}); showing this "
                "controller's own samples instead",
            )
    return from_memory(ctl, window_s)
