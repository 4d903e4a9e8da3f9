"""/v1/jobs, /v1/plan."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response, status

from controller.api.deps import Authenticated, ControllerDep, ReaderP, SecurityDep, SubmitterP
from controller.api.submission import submit_job
from controller.errors import InvalidInput, NotFound
from controller.jobs import JobCreate, JobList, JobPhase, JobRead
from controller.scheduler.decision import Decision
from controller.security import Principal, acts_for_tenant, sees_tenant
from controller.service import Controller
from controller.store.store import decode_cursor, encode_cursor

router = APIRouter(prefix="/v1", tags=["jobs"], dependencies=[Authenticated])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="replays with the same key return the job the first request created",
    ),
]


@router.post(
    "/jobs",
    status_code=status.HTTP_201_CREATED,
    response_model=JobRead,
    responses={
        200: {"model": JobRead, "description": "a replayed Idempotency-Key: the job it created first"}
    },
)
async def create_job(
    spec: JobCreate, ctl: ControllerDep, sec: SecurityDep, who: SubmitterP, key: IdempotencyKey = None
) -> Response:
    """201 with the job once it is committed (group commit: concurrent submissions share one
    transaction); a replayed Idempotency-Key answers 200 with the job it created first.
    A tenant token submits for itself only; every input needs a grant (403 naming it).
    The same handler serves the fast path (controller/api/submission.py)."""
    answer = await submit_job(ctl, sec, who, spec, key)
    return Response(answer.body, status_code=answer.status, headers=answer.headers)


@router.get("/jobs", response_model=JobList)
def list_jobs(
    ctl: ControllerDep,
    who: ReaderP,
    phase: JobPhase | None = None,
    tenant: Annotated[str | None, Query(max_length=63)] = None,
    cluster: Annotated[str | None, Query(max_length=63)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> JobList:
    after = None
    if cursor:
        after = decode_cursor(cursor)
        if after is None:
            raise InvalidInput(
                "the cursor is not one this API issued",
                errors=[{"path": "cursor", "message": "invalid cursor"}],
            )
    if not sees_tenant(who, tenant or ""):  # a tenant lists its own jobs only
        if tenant and tenant != who.tenant:
            return JobList(items=[], next_cursor=None)
        tenant = who.tenant
    items = ctl.jobs.list_jobs(
        phase=phase.value if phase else None, tenant=tenant, cluster=cluster, limit=limit + 1, after=after
    )
    more = len(items) > limit
    items = items[:limit]
    return JobList(items=items, next_cursor=encode_cursor(items[-1].id) if more else None)


@router.get("/jobs/{job_id}", response_model=JobRead)
def get_job(job_id: str, ctl: ControllerDep, who: ReaderP) -> JobRead:
    _visible(ctl, who, job_id)
    return ctl.jobs.get_job(job_id)


@router.post("/jobs/{job_id}/cancel", response_model=JobRead)
def cancel_job(job_id: str, ctl: ControllerDep, who: SubmitterP) -> JobRead:
    tenant = _visible(ctl, who, job_id)
    return ctl.jobs.cancel(job_id, audit=who.audit_row("job.cancelled", f"job/{job_id}", job_tenant=tenant))


@router.get("/jobs/{job_id}/decision", response_model=Decision)
def get_decision(job_id: str, ctl: ControllerDep, who: ReaderP) -> Decision:
    _visible(ctl, who, job_id)
    return ctl.jobs.get_decision(job_id)


@router.get("/jobs/{job_id}/logs")
def get_logs(job_id: str, ctl: ControllerDep, who: ReaderP) -> dict[str, Any]:
    """The output its executor last reported for the job ("" before any): job_id, phase,
    cluster, attempt, output."""
    _visible(ctl, who, job_id)
    return ctl.jobs.job_logs(job_id)


@router.post("/plan", response_model=Decision)
def plan(spec: JobCreate, ctl: ControllerDep, sec: SecurityDep, who: ReaderP) -> Decision:
    """Where would this job go, and why, right now? Creates and reserves nothing.
    A tenant plans as itself only; inputs need grants as for a submission."""
    acts_for_tenant(who, spec.tenant)
    sec.check_grants(who, spec, ctl.datasets)
    return ctl.scheduling.plan(spec)


def _visible(ctl: Controller, who: Principal, job_id: str) -> str:
    """The job's tenant; 404 (as for an unknown id, so ids do not leak) if the caller may not
    see it."""
    row = ctl.store.get_job(job_id)
    if row is None or not sees_tenant(who, row["tenant"]):
        raise NotFound(f"job {job_id!r} not found")
    return str(row["tenant"])
