"""The hot path of POST /v1/jobs, as raw ASGI in front of the FastAPI router.

FastAPI's per-request machinery (dependency solving, body re-validation, response-model
serialisation) cost about a millisecond per submission, five times the work itself. This handler
does exactly what the `create_job` route does for the common case — a well-formed JSON body, a
caller known without a database read (open mode, the bootstrap admin, or a token in the
security cache), a tenant submitting for itself, every input owned or granted as the cache shows
— and hands every other case (any validation error, a token to look up, a grant the cache does
not show, another tenant, a header out of bounds) to the FastAPI route unchanged, so errors and
the OpenAPI contract have one implementation. What it handles goes through the route's own
handler (controller/api/submission.py: tenant rule, audit row, commit, status, body and
headers), and any error it meets is answered as the route answers it (problem+json; an
unexpected one 500 or 503, never a bare 500). The 2xx still means the job is committed: the
handler awaits the store's group commit like the route does.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from controller.api.limits import read_body, replay
from controller.api.problems import domain_problem, unexpected_problem
from controller.api.submission import submit_job
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
        try:
            answer = await submit_job(
                self.ctl, self.sec, who, spec, key_raw.decode() if key_raw else None, grants_checked=True
            )
        except YiwangError as exc:
            await domain_problem(exc)(scope, _no_body, send)
            return True
        except Exception as exc:
            await unexpected_problem(exc)(scope, _no_body, send)
            return True
        out = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.items()]
        await send({"type": "http.response.start", "status": answer.status, "headers": out})
        await send({"type": "http.response.body", "body": answer.body})
        return True


async def _no_body() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}
