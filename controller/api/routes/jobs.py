"""/v1/jobs, /v1/plan."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from controller.api.deps import Admin, ControllerDep
from controller.errors import InvalidInput
from controller.jobs import JobCreate, JobList, JobPhase, JobRead
from controller.scheduler.decision import Decision
from controller.store.store import decode_cursor, encode_cursor

router = APIRouter(prefix="/v1", tags=["jobs"], dependencies=[Admin])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="replays with the same key return the job the first request created",
    ),
]


@router.post("/jobs", status_code=status.HTTP_201_CREATED, response_model=JobRead)
async def create_job(spec: JobCreate, ctl: ControllerDep, key: IdempotencyKey = None) -> Response:
    """201 with the job once it is committed (group commit: concurrent submissions share one
    transaction); a replayed Idempotency-Key answers 200 with the job it created first."""
    job, created = await ctl.submit_async(spec, key)
    headers = {"Location": f"/v1/jobs/{job.id}"}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return Response(
        job.model_dump_json(),
        status_code=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        media_type="application/json",
        headers=headers,
    )


@router.get("/jobs", response_model=JobList)
def list_jobs(
    ctl: ControllerDep,
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
    items = ctl.list_jobs(
        phase=phase.value if phase else None, tenant=tenant, cluster=cluster, limit=limit + 1, after=after
    )
    more = len(items) > limit
    items = items[:limit]
    return JobList(items=items, next_cursor=encode_cursor(items[-1].id) if more else None)


@router.get("/jobs/{job_id}", response_model=JobRead)
def get_job(job_id: str, ctl: ControllerDep) -> JobRead:
    return ctl.get_job(job_id)


@router.post("/jobs/{job_id}/cancel", response_model=JobRead)
def cancel_job(job_id: str, ctl: ControllerDep) -> JobRead:
    return ctl.cancel(job_id)


@router.get("/jobs/{job_id}/decision", response_model=Decision)
def get_decision(job_id: str, ctl: ControllerDep) -> Decision:
    return ctl.get_decision(job_id)


@router.post("/plan", response_model=Decision)
def plan(spec: JobCreate, ctl: ControllerDep) -> Decision:
    """Where would this job go, and why, right now? Creates and reserves nothing."""
    return ctl.plan(spec)
