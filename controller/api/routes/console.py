"""Read-only views for the operator console (docs/dashboard.md): the federation map, tenants and
quotas, the time series and the drill reports. Thin shells over controller/overview.py,
controller/series.py and controller/services/drill_reports.py; a tenant token sees its own tenant only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool

from controller import overview, series
from controller.api.deps import DEFAULT_WINDOW, Authenticated, ControllerDep, OpsP, ReaderP, WindowS
from controller.overview import FederationMap, TenantList
from controller.security import sees_tenant
from controller.series import SeriesList
from controller.services.drill_reports import (
    REPORT_NAME,
    DrillList,
    DrillReportRead,
    list_reports,
    read_report,
)

router = APIRouter(prefix="/v1", tags=["console"], dependencies=[Authenticated])


@router.get("/federation/map", response_model=FederationMap)
def federation_map(ctl: ControllerDep, who: ReaderP, window_s: WindowS = DEFAULT_WINDOW) -> FederationMap:
    """The 32 provinces on a tile grid placed by their capitals' coordinates, the national nodes
    and the ministries; per cluster its Scheduled and Running jobs and its tenant's queue; and the
    failovers and drains in the window as (from, to, jobs), from the job events. Combine with
    GET /v1/clusters for health, capacity and allocation."""
    return overview.federation_map(ctl, lambda t: sees_tenant(who, t), float(window_s))


@router.get("/tenants", response_model=TenantList)
def tenants(ctl: ControllerDep, who: ReaderP, window_s: WindowS = DEFAULT_WINDOW) -> TenantList:
    """Per tenant: nominal quota, borrowing limit, used and borrowed (cpu, memory, gpu), its
    Pending/Scheduled/Running jobs, its dominant share and place in the fair-share order, and its
    jobs preempted in the window. A tenant token sees its own row."""
    return overview.tenants(ctl, lambda t: sees_tenant(who, t), float(window_s))


@router.get("/metrics/series", response_model=SeriesList)
async def metrics_series(
    ctl: ControllerDep,
    _: ReaderP,
    window_s: Annotated[int, Query(ge=60, le=7 * 86400, description="seconds of history")] = 900,
) -> SeriesList:
    """Federation-wide time series for the dashboard's charts: queue, running jobs, placements
    per second, CPU and GPU allocated, jobs failed over, fenced executions, estimated WAN bytes
    per second and unreachable clusters. From the controller's own samples (every
    YIWANG_METRICS_SAMPLE_S, in memory since it started) or from YIWANG_SERIES_PROMETHEUS_URL."""
    return await run_in_threadpool(series.series, ctl, float(window_s))


@router.get("/drills", response_model=DrillList)
def drills(ctl: ControllerDep, _: OpsP) -> DrillList:
    """The drill reports in YIWANG_DRILL_REPORTS_DIR (``yiwang drill run --out``), newest first,
    each with its budgets met and missed and per fault its detection time and RTO."""
    return list_reports(ctl.settings.drill_reports_dir)


@router.get("/drills/{name}", response_model=DrillReportRead)
def drill(
    ctl: ControllerDep, _: OpsP, name: str = Path(pattern=REPORT_NAME, max_length=128)
) -> DrillReportRead:
    """One drill report in full (``name``: its file name without .json)."""
    return read_report(ctl.settings.drill_reports_dir, name)
