"""One submission handler for POST /v1/jobs, shared by the route (controller/api/routes/jobs.py)
and the raw-ASGI fast path (controller/api/fastpath.py): the tenant rule, the grants, the audit
row, the commit and the answer's status, body and headers are written once, here."""

from __future__ import annotations

from typing import NamedTuple

from fastapi.concurrency import run_in_threadpool

from controller.jobs import JobCreate
from controller.security import Principal, Security, acts_for_tenant
from controller.service import Controller


class Answer(NamedTuple):
    """A 201 (created) or 200 (a replayed Idempotency-Key) with the job as JSON."""

    status: int
    body: bytes
    headers: dict[str, str]


async def submit_job(
    ctl: Controller,
    sec: Security,
    who: Principal,
    spec: JobCreate,
    key: str | None,
    *,
    grants_checked: bool = False,
) -> Answer:
    """The answer once the job is committed (group commit); a domain error (403 tenant or
    grant, 409 key reused, 422 unknown tenant or cluster, 503 store) is raised to the caller.
    ``grants_checked``: the caller saw every foreign input granted in the security cache (the
    fast path), so no database read is needed for them."""
    acts_for_tenant(who, spec.tenant)
    if spec.inputs and not who.open and not grants_checked:
        await run_in_threadpool(sec.check_grants, who, spec, ctl.datasets)
    audit = who.audit_row("job.submitted", "", job_tenant=spec.tenant, name=spec.name)
    job, created = await ctl.submit_async(spec, key, audit)
    body = job.json
    headers = {
        "content-type": "application/json",
        "content-length": str(len(body)),
        "location": f"/v1/jobs/{job.id}",
    }
    if not created:
        headers["idempotent-replayed"] = "true"
    return Answer(201 if created else 200, body, headers)
