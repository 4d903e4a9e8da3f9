"""Agent side (pull mode): heartbeat, take assignments, report status."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from controller.api.deps import Agent, ControllerDep
from controller.assignments import Assignment, HeartbeatReport, StatusReport
from controller.jobs import JobRead
from controller.schemas import Attempt, Epoch
from controller.topology.model import CLUSTER_NAME

router = APIRouter(prefix="/v1/agents/{cluster}", tags=["agents"], dependencies=[Agent])
Cluster = Path(pattern=CLUSTER_NAME, max_length=63)


@router.post("/heartbeat")
def heartbeat(
    ctl: ControllerDep, cluster: str = Cluster, reported: HeartbeatReport | None = Body(default=None)
) -> dict[str, Any]:
    """Marks the cluster Ready and renews the leases of its attempts."""
    return ctl.agents.heartbeat(cluster, reported.stored() if reported is not None else None)


@router.get(
    "/assignments",
    response_model=list[Assignment],
    responses={304: {"description": "the page lists what the tag in If-None-Match named"}},
)
def assignments(
    ctl: ControllerDep,
    cluster: str = Cluster,
    after: Annotated[
        str | None, Query(max_length=128, description="last job id of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    if_none_match: Annotated[
        str | None, Header(max_length=1024, description="the ETag of the page the agent holds")
    ] = None,
) -> Response:
    """The Scheduled and Running attempts on the cluster, by job id; a page shorter than
    ``limit`` is the last. Each page carries a weak ``ETag`` over the attempts it lists (not
    their lease, which heartbeats renew); with that tag in ``If-None-Match`` the answer is a 304
    without a body while the page lists the same attempts. (Answered as the JSON
    ``assignments_page`` joins from each attempt's entry kept serialised; the schema is
    ``response_model``'s.)"""
    tag, body = ctl.agents.assignments_page(cluster, after=after, limit=limit, if_none_match=if_none_match)
    if body is None:
        return Response(status_code=304, headers={"ETag": tag})
    return Response(body, media_type="application/json", headers={"ETag": tag})


class ReportBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reports: Annotated[list[StatusReport], Field(max_length=1000)]


class ReportOutcome(BaseModel):
    job_id: str
    attempt: int
    status: int = Field(description="200 taken; 404 unknown job; 409 stale attempt: stop it")
    detail: str = ""


class ReportBatchResult(BaseModel):
    outcomes: list[ReportOutcome]
    epoch: int
    lease_s: float
    heartbeat_interval_s: float


@router.post("/reports", response_model=ReportBatchResult)
def reports(batch: ReportBatch, ctl: ControllerDep, cluster: str = Cluster) -> ReportBatchResult:
    """Many status reports in one transaction; the call renews the cluster's lease like a
    heartbeat. Each report's outcome is given in order (409: stop that attempt)."""
    results = ctl.agents.apply_reports(cluster, batch.reports)
    renewal = ctl.agents.heartbeat_answer()
    return ReportBatchResult(
        outcomes=[
            ReportOutcome(
                job_id=r.job_id,
                attempt=r.attempt,
                status=200 if e is None else e.status,
                detail="" if e is None else e.detail,
            )
            for r, e in zip(batch.reports, results, strict=True)
        ],
        epoch=renewal["epoch"],
        lease_s=renewal["lease_s"],
        heartbeat_interval_s=renewal["heartbeat_interval_s"],
    )


@router.post("/status", response_model=JobRead)
def report(rep: StatusReport, ctl: ControllerDep, cluster: str = Cluster) -> JobRead:
    """409 (stale attempt) tells the agent to stop that attempt."""
    return ctl.agents.report(cluster, rep)


class AttemptRelease(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_id: Annotated[str, Field(max_length=128)]
    attempt: Attempt
    epoch: Epoch
    reason: Annotated[str, Field(max_length=1024)] = ""


@router.post("/release", response_model=JobRead)
def release(rel: AttemptRelease, ctl: ControllerDep, cluster: str = Cluster) -> JobRead:
    """The agent stopped this attempt (it lost its lease): re-queue the job (attempt + 1) now.
    409 when the attempt is no longer current (already re-placed, cancelled or finished)."""
    return ctl.agents.release(cluster, rel.job_id, rel.attempt, rel.epoch, rel.reason or "released")
