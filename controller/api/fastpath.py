"""The hot path of POST /v1/jobs, as raw ASGI in front of the FastAPI router.

FastAPI's per-request machinery (dependency solving, body re-validation, response-model
serialisation) cost about a millisecond per submission, five times the work itself. This handler
does exactly what the `create_job` route does for the common case — a well-formed JSON body, a
caller known without a database read (open mode, the bootstrap admin, or a token in the
security cache), a tenant submitting for itself, every input owned or granted as the cache shows
— and hands every other case (any validation error, a token to look up, a grant the cache does
not show, another tenant, a header out of bounds) to the FastAPI route unchanged, so errors and
the OpenAPI contract have one implementation. The 2xx still means the job is committed: the
handler awaits the store's group commit like the route does.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from controller.api.limits import read_body, replay
from controller.api.problems import domain_problem
from controller.errors import YiwangError
from controller.jobs import JobCreate
from controller.security import Role, Security
from controller.service import Controller

IDEMPOTENCY_KEY = re.compile(rb"^[\x21-\x7e]{1,255}$")


class FastSubmit:
    """Called by the application for POST /v1/jobs before its middleware stack; ``app`` is the
    full stack (body limit, error handling, the route), used for every case not handled here."""

    def __init__(self, app: ASGIApp, controller: Controller, security: Security, max_body_bytes: int) -> None:
        self.app = app
        self.ctl = controller
        self.sec = security
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, messages, too_large = await read_body(receive, self.max_body_bytes)
        if too_large:  # stop reading; the stack's body limit answers 413 from what was read
            await self.app(scope, replay(messages, receive), send)
            return
        handled = await self._try(scope, body, send)
        if not handled:
            await self.app(scope, replay(messages, receive), send)

    async def _try(self, scope: Scope, body: bytes, send: Send) -> bool:
        """Handle the request and return True, or return False to let the route do it."""
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name in headers:  # a repeated header: leave the interpretation to the route
                return False
            headers[name] = value
        content_type = headers.get(b"content-type", b"")
        if not content_type.startswith(b"application/json"):
            return False
        key_raw = headers.get(b"idempotency-key")
        if key_raw is not None and not IDEMPOTENCY_KEY.match(key_raw):
            return False
        auth = headers.get(b"authorization")
        try:
            who = self.sec.authenticate_without_store(auth.decode("latin-1") if auth else None)
        except YiwangError:
            return False
        if who is None or not (who.open or who.role in (Role.admin, Role.tenant)):
            return False  # a token to look up, a role that may not submit: the route
        try:
            spec = JobCreate.model_validate_json(body)
        except ValidationError:
            return False
        if not who.open and who.role == Role.tenant and who.tenant != spec.tenant:
            return False  # another tenant's job: the route answers 403
        if spec.inputs and not who.open:
            datasets = self.ctl.datasets
            foreign = [d for d in spec.inputs if d in datasets and datasets[d].owner != spec.tenant]
            if foreign and not self.sec.granted_cached(spec.tenant, foreign):
                return False  # grants the cache does not show: the route reads them
        audit = who.audit_row("job.submitted", "", job_tenant=spec.tenant, name=spec.name)
        try:
            job, created = await self.ctl.submit_async(spec, key_raw.decode() if key_raw else None, audit)
        except YiwangError as exc:
            await domain_problem(exc)(scope, _no_body, send)
            return True
        payload = job.model_dump_json().encode()
        out: list[tuple[bytes, bytes]] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"location", f"/v1/jobs/{job.id}".encode()),
        ]
        if not created:
            out.append((b"idempotent-replayed", b"true"))
        await send({"type": "http.response.start", "status": 201 if created else 200, "headers": out})
        await send({"type": "http.response.body", "body": payload})
        return True


async def _no_body() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}
