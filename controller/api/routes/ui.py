"""/ui: the operator dashboard, static files shipped as package data (no build step, no CDN).

The files call the REST API from the same origin; a strict Content-Security-Policy allows only
this origin's scripts, styles and API, and nothing inline."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

from fastapi import APIRouter, Path, Response

from controller.errors import NotFound

router = APIRouter(prefix="/ui", tags=["ui"], include_in_schema=False)

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
FILE_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}\.(html|css|js|svg)$"
CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Small files, changed with the controller: revalidate rather than serve a stale dashboard.
    "Cache-Control": "no-cache",
}


@lru_cache(maxsize=64)
def _read(name: str) -> bytes | None:
    entry = resources.files("controller.api").joinpath("ui", name)
    return entry.read_bytes() if entry.is_file() else None


def _serve(name: str) -> Response:
    body = _read(name) if re.fullmatch(FILE_NAME, name) else None
    if body is None:
        raise NotFound(f"the dashboard has no file {name!r}")
    media_type = CONTENT_TYPES[name[name.rindex(".") :]]
    return Response(body, media_type=media_type, headers=SECURITY_HEADERS)


@router.get("")
@router.get("/")
def index() -> Response:
    return _serve("index.html")


@router.get("/{name}")
def static_file(name: str = Path(max_length=72)) -> Response:
    return _serve(name)
