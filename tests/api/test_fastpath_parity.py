"""The fast path of POST /v1/jobs (controller/api/fastpath.py) answers exactly as the route does:
each request is sent twice, once with the fast path in front and once straight to the route, and
the two answers are compared (status, problem+json or job body, headers, audit row). Which of the
two handled it is recorded, so the comparison is never the route against itself."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from controller.api.app import create_app
from controller.settings import Settings
from controller.store import schema as t

ADMIN = "parity-admin-token-0123456789abcdef"
JOB: dict[str, Any] = {"name": "report", "tenant": "guangdong", "resources": {"cpu": 1, "memory_gib": 2}}
VOLATILE_BODY = {"id", "created_at", "updated_at"}
ID = re.compile(r"[0-9a-f]{22}")


@pytest.fixture(params=["open", "admin"])
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, TestClient, dict[str, str]]]:
    token = ADMIN if request.param == "admin" else None
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'y.db'}", background=False, admin_token=token)
    app = create_app(settings)
    auth = {"authorization": f"Bearer {ADMIN}"} if token else {}
    with TestClient(app, raise_server_exceptions=False) as c:
        yield app, c, auth


def send(app: Any, c: TestClient, fast: bool, content: bytes, headers: dict[str, str]) -> tuple[Any, bool]:
    """POST /v1/jobs through the fast path (``fast``) or the route alone; the response and
    whether the fast path answered it itself."""
    fs = app.fast_submit
    handled: list[bool] = []
    real = fs._try

    async def spy(*args: Any) -> bool:
        handled.append(await real(*args))
        return handled[-1]

    fs._try = spy
    app.fast_submit = fs if fast else None
    try:
        r = c.post("/v1/jobs", content=content, headers=headers)
    finally:
        app.fast_submit = fs
        del fs._try
    return r, bool(handled and handled[0])


def last_audit(app: Any) -> dict[str, Any] | None:
    a = t.audit_log.c
    with app.state.controller.store.read() as conn:
        row = conn.execute(
            select(a.actor, a.role, a.tenant, a.action, a.target, a.detail)
            .where(a.action == "job.submitted")
            .order_by(a.id.desc())
            .limit(1)
        ).first()
    return dict(row._mapping) if row else None


def shape(r: Any) -> dict[str, Any]:
    """What must be equal between the two paths: ids and times replaced by their kind."""
    body = r.json()
    if r.headers["content-type"].startswith("application/json"):
        body = {k: ("<volatile>" if k in VOLATILE_BODY else v) for k, v in body.items()}
    else:
        body = {k: ID.sub("<id>", v) if isinstance(v, str) else v for k, v in body.items()}
    headers = {
        k: ("<set>" if k in ("content-length", "location") else v)
        for k, v in r.headers.items()
        if k != "date"
    }
    if "location" in r.headers:
        assert r.headers["location"] == f"/v1/jobs/{r.json()['id']}"
    return {"status": r.status_code, "body": body, "headers": headers}


def compare(
    app: Any,
    c: TestClient,
    content: bytes,
    headers: dict[str, str],
    *,
    expect_status: int,
    expect_fast: bool,
    vary_key: bool = False,
) -> dict[str, Any]:
    out = []
    for fast in (True, False):
        h = dict(headers)
        if vary_key and "idempotency-key" in h:  # the same key on both paths would be a replay
            h["idempotency-key"] += "-fast" if fast else "-route"
        before = last_audit(app)
        r, handled = send(app, c, fast, content, h)
        assert handled is (expect_fast and fast), (fast, r.text)
        assert r.status_code == expect_status, r.text
        audit = last_audit(app)
        if r.status_code == 201:
            assert audit is not None and audit != before and audit["target"] == f"job/{r.json()['id']}"
            audit = {**audit, "target": "job/<id>"}
        else:
            assert audit == before  # nothing written for a replay or a refusal
            audit = None
        got = shape(r)
        if vary_key and "idempotency-key" in h:  # the key as sent, in a detail naming it
            got["body"] = {
                k: v.replace(h["idempotency-key"], headers["idempotency-key"]) if isinstance(v, str) else v
                for k, v in got["body"].items()
            }
        out.append({**got, "audit": audit})
    assert out[0] == out[1]
    return out[0]


def body(**over: Any) -> bytes:
    import json

    return json.dumps({**JOB, **over}).encode()


JSON = {"content-type": "application/json"}


def test_valid_submissions_answer_the_same(api: tuple[Any, TestClient, dict[str, str]]) -> None:
    app, c, auth = api
    got = compare(app, c, body(), {**JSON, **auth}, expect_status=201, expect_fast=True)
    assert (
        got["headers"]["content-type"] == "application/json" and "idempotent-replayed" not in got["headers"]
    )
    assert got["audit"]["detail"] == {"job_tenant": "guangdong", "name": "report"}
    keyed = {**JSON, **auth, "idempotency-key": "k-1"}
    compare(app, c, body(), keyed, expect_status=201, expect_fast=True, vary_key=True)
    # the replays of those keys: 200, the first job, Idempotent-Replayed
    got = compare(app, c, body(), keyed, expect_status=200, expect_fast=True, vary_key=True)
    assert got["headers"]["idempotent-replayed"] == "true"


def test_domain_errors_answer_the_same(api: tuple[Any, TestClient, dict[str, str]]) -> None:
    app, c, auth = api
    keyed = {**JSON, **auth, "idempotency-key": "k-2"}
    compare(app, c, body(), keyed, expect_status=201, expect_fast=True, vary_key=True)
    got = compare(app, c, body(name="other"), keyed, expect_status=409, expect_fast=True, vary_key=True)
    assert got["headers"]["content-type"] == "application/problem+json"
    assert got["body"]["type"].endswith("/conflict") and "<id>" in got["body"]["detail"]
    got = compare(app, c, body(tenant="atlantis"), {**JSON, **auth}, expect_status=422, expect_fast=True)
    assert got["body"]["title"] == "Invalid input"
    got = compare(
        app,
        c,
        body(constraints={"allow_clusters": ["prov-nowhere"]}),
        {**JSON, **auth},
        expect_status=422,
        expect_fast=True,
    )
    assert got["body"]["errors"][0]["path"] == "constraints.allow_clusters[0]"


@pytest.mark.parametrize(
    ("content", "headers", "status"),
    [
        (b'{"name": "x"}', JSON, 422),  # fields missing
        (b'{"name": ', JSON, 400),  # not JSON
        (body(resources={"cpu": -1, "memory_gib": 1}), JSON, 422),
        (body(), {"content-type": "text/plain"}, 422),
        (body(), {**JSON, "idempotency-key": "x" * 300}, 422),
        (body(), {**JSON, "idempotency-key": "has space"}, 422),
    ],
    ids=["missing", "malformed", "negative-cpu", "content-type", "long-key", "bad-key"],
)
def test_invalid_requests_go_to_the_route_and_answer_the_same(
    api: tuple[Any, TestClient, dict[str, str]], content: bytes, headers: dict[str, str], status: int
) -> None:
    app, c, auth = api
    got = compare(app, c, content, {**headers, **auth}, expect_status=status, expect_fast=False)
    assert got["headers"]["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (RuntimeError("a bug"), 500),
        (OperationalError("INSERT", {}, Exception("the database is gone")), 503),
    ],
    ids=["bug", "store-gone"],
)
def test_an_unexpected_store_error_is_a_problem_on_both_paths(
    api: tuple[Any, TestClient, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    status: int,
) -> None:
    app, c, auth = api

    async def broken(*_: Any, **__: Any) -> Any:
        raise error

    monkeypatch.setattr(app.state.controller, "submit_async", broken)
    got = compare(app, c, body(), {**JSON, **auth}, expect_status=status, expect_fast=True)
    assert got["headers"]["content-type"] == "application/problem+json"
    assert got["body"]["status"] == status
    if status == 500:
        assert "a bug" not in str(got["body"])  # no internals
    else:
        assert int(got["headers"]["retry-after"]) >= 1
