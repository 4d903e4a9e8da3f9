"""RFC 9457 problem details: every error leaves the API as application/problem+json, mapped here
and only here."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from controller.denials import ACTIONS, UNMATCHED, DenialAudit, token_subject
from controller.errors import TemporarilyUnavailable, Unauthorized, YiwangError
from controller.security import Principal, bearer_token
from controller.store.store import Store, store_unavailable

PROBLEM = "application/problem+json"
TYPE_BASE = "https://yiwang.gov.cn/problems/"
WWW_AUTHENTICATE = 'Bearer realm="yiwang"'
log = logging.getLogger("yiwang.api")


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    type_: str | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + (type_ or title.lower().replace(" ", "-")),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _loc_to_path(loc: tuple[Any, ...]) -> str:
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    path = ""
    for p in parts:
        path += f"[{p}]" if isinstance(p, int) else (f".{p}" if path else str(p))
    return path or "(body)"


def domain_problem(exc: YiwangError) -> JSONResponse:
    """The one mapping of a domain error to its problem response."""
    headers = None
    if isinstance(exc, TemporarilyUnavailable):
        headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
    elif isinstance(exc, Unauthorized):
        headers = {"WWW-Authenticate": WWW_AUTHENTICATE}
    return problem(
        exc.status,
        exc.title,
        exc.detail,
        errors=exc.errors,
        headers=headers,
        type_=re.sub(r"(?<!^)(?=[A-Z])", "-", type(exc).__name__).lower(),
    )


def _documented_paths(app: FastAPI) -> list[tuple[re.Pattern[str], list[str]]]:
    """(path regex, methods) of every documented path, from the OpenAPI (computed once)."""
    cached: list[tuple[re.Pattern[str], list[str]]] | None = getattr(app.state, "documented_paths", None)
    if cached is None:
        cached = [
            (compile_path(path)[0], list(item)) for path, item in app.openapi().get("paths", {}).items()
        ]
        app.state.documented_paths = cached
    return cached


def note_denial(request: Request, status: int) -> None:
    """Count a 401 or 403 for the aggregated audit (controller/denials.py): a 403 under the
    caller's token id, a 401 under a hash prefix of the token presented; keyed by the matched
    route's template, never the raw path."""
    denials: DenialAudit | None = getattr(request.app.state, "denials", None)
    if denials is None or status not in ACTIONS:
        return
    template = getattr(request.scope.get("route"), "path", None) or UNMATCHED
    principal: Principal | None = getattr(request.state, "principal", None)
    if status == 403 and principal is not None:
        denials.note(
            principal.id, request.method, template, status, role=principal.role.value, tenant=principal.tenant
        )
    else:
        subject = token_subject(bearer_token(request.headers.get("authorization")))
        denials.note(subject, request.method, template, status)


def install(app: FastAPI) -> None:
    @app.exception_handler(YiwangError)
    async def _domain(request: Request, exc: YiwangError) -> JSONResponse:
        note_denial(request, exc.status)
        return domain_problem(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errs):
            msg = next(e for e in errs if e.get("type") == "json_invalid").get("ctx", {}).get("error", "")
            return problem(400, "Malformed JSON", f"the request body is not valid JSON: {msg}".strip(": "))
        fields = [
            {
                "path": _loc_to_path(tuple(e["loc"])),
                "message": str(e["msg"]),
                "where": str(e["loc"][0]) if e["loc"] else "body",
            }
            for e in errs
        ]
        return problem(422, "Invalid input", f"{len(fields)} invalid field(s)", errors=fields)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {
            404: "Not found",
            405: "Method not allowed",
            413: "Content too large",
            401: "Unauthorized",
            403: "Forbidden",
        }
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            # Starlette's Allow names the methods of the first route matching the path only;
            # a path served by several routes (GET, PUT and DELETE /v1/clusters/{name}) has more.
            allowed = {
                method.upper()
                for regex, methods in _documented_paths(request.app)
                if regex.match(request.url.path)
                for method in methods
            }
            if allowed:
                headers = {**(headers or {}), "Allow": ", ".join(sorted(allowed))}
        if exc.status_code == 401:
            headers = {**(headers or {}), "WWW-Authenticate": WWW_AUTHENTICATE}
        note_denial(request, exc.status_code)
        return problem(
            exc.status_code,
            titles.get(exc.status_code, "HTTP error"),
            str(exc.detail),
            headers=headers,
        )

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        return unexpected_problem(exc)


def unexpected_problem(exc: Exception) -> JSONResponse:
    """The answer to an exception no handler expected (the route's and the fast path's)."""
    if store_unavailable(exc):  # the store's own paths raise StoreUnavailable; any other
        log.warning("store unavailable: %s", exc)  # database error of that kind: the same 503
        return domain_problem(Store.unavailable(exc))
    # A bug, not bad input: logged in full, answered without internals.
    log.exception("unhandled error", exc_info=exc)
    return problem(500, "Internal error", "the controller hit an internal error; it is logged")


# ---- OpenAPI: the problems as sent --------------------------------------------------------------
class ProblemError(BaseModel):
    """One bad field: ``path`` names it (``resources.cpu``, ``inputs[2]``, ``movement``)."""

    model_config = ConfigDict(extra="allow")

    path: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, the body of every error."""

    model_config = ConfigDict(extra="forbid")

    type: str
    title: str
    status: int
    detail: str
    errors: list[ProblemError] | None = None


PROBLEM_TITLES = {
    400: "Malformed JSON or a bad request",
    401: "No valid bearer token (the answer carries WWW-Authenticate: Bearer)",
    403: "The token's role or tenant does not allow this",
    404: "Not found (another tenant's job too)",
    409: "Conflict: the state changed, a stale attempt or epoch, an idempotency key reused",
    413: "The body is over the size limit",
    422: "Invalid input: errors[] names each field",
    503: "The store is unavailable (a national failover): nothing was acknowledged; send the same "
    "request again after Retry-After seconds (the same Idempotency-Key replays a submission)",
}
UNAUTHENTICATED = ("/healthz", "/readyz", "/metrics")
# Operations whose handlers raise Conflict (or StaleAttempt, IllegalTransition).
CONFLICTS = {
    ("post", "/v1/jobs"),
    ("post", "/v1/jobs/{job_id}/cancel"),
    ("delete", "/v1/clusters/{name}"),
    ("post", "/v1/datasets"),
    ("post", "/v1/agents/{cluster}/status"),
    ("post", "/v1/agents/{cluster}/release"),
}


def problem_statuses(method: str, path: str, op: dict[str, Any]) -> list[int]:
    """The problem statuses an operation can answer."""
    if path in UNAUTHENTICATED:
        return []
    body = "requestBody" in op
    out = [401, 403, 422]
    if body:
        out += [400, 413]
    if "{" in path or path.startswith("/v1/agents/") or method in ("post", "put"):
        out.append(404)  # an unknown id, cluster or data set named in the path or the body
    if (method, path) in CONFLICTS:
        out.append(409)
    out.append(503)  # every operation reads or writes the store
    return sorted(out)


def install_openapi(app: FastAPI) -> None:
    """Every operation documents the problems it sends, as application/problem+json with the
    one Problem schema; FastAPI's own 422 (HTTPValidationError) is replaced by it."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        comps["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        defs = comps["Problem"].pop("$defs", {})
        comps.update(defs)
        for name in ("HTTPValidationError", "ValidationError"):
            comps.pop(name, None)
        ref = {"$ref": "#/components/schemas/Problem"}
        for path, item in schema.get("paths", {}).items():
            for method, op in item.items():
                responses = op.setdefault("responses", {})
                for status in problem_statuses(method, path, op):
                    entry: dict[str, Any] = {
                        "description": PROBLEM_TITLES[status],
                        "content": {PROBLEM: {"schema": ref}},
                    }
                    if status == 401:
                        entry["headers"] = {
                            "WWW-Authenticate": {"schema": {"type": "string"}, "required": True}
                        }
                    if status == 503:
                        entry["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "required": True}}
                    responses[str(status)] = entry
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
