"""RFC 9457 problem details: every error leaves the API as application/problem+json, mapped here
and only here."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from controller.errors import TemporarilyUnavailable, Unauthorized, YiwangError

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


def install(app: FastAPI) -> None:
    @app.exception_handler(YiwangError)
    async def _domain(_: Request, exc: YiwangError) -> JSONResponse:
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
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {
            404: "Not found",
            405: "Method not allowed",
            413: "Content too large",
            401: "Unauthorized",
            403: "Forbidden",
        }
        headers = getattr(exc, "headers", None)
        if exc.status_code == 401:
            headers = {**(headers or {}), "WWW-Authenticate": WWW_AUTHENTICATE}
        return problem(
            exc.status_code,
            titles.get(exc.status_code, "HTTP error"),
            str(exc.detail),
            headers=headers,
        )

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        # A bug, not bad input: logged in full, answered without internals.
        log.exception("unhandled error", exc_info=exc)
        return problem(500, "Internal error", "the controller hit an internal error; it is logged")
