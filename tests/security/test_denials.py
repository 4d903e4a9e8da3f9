"""Failed authentication and authorisation are audited, aggregated (issue 14): 401 and 403 are
counted per (caller or token-hash prefix, method and route template, status) and written as one
chained audit row per key per interval and at shutdown, so a flood of bad tokens makes a bounded
number of rows with the right counts and the chain still verifies. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import random
import secrets
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from controller.api.app import create_app
from controller.cli import app as cli
from controller.denials import OTHERS, DenialAudit
from controller.settings import Settings
from controller.store import Store
from controller.store import schema as t
from tests.security.conftest import ADMIN, bearer, issue

MAX_KEYS = 100


def denied_rows(store: Store) -> list[dict[str, Any]]:
    a = t.audit_log
    with store.read() as conn:
        q = select(a).where(a.c.action.in_(["auth.failed", "access.denied"])).order_by(a.c.id)
        return [dict(r) for r in conn.execute(q).mappings()]


async def flood(app: FastAPI, requests: list[tuple[str, str, dict[str, str]]]) -> Counter[int]:
    """Send the requests, 200 at a time, straight to the ASGI app; the statuses answered."""
    statuses: Counter[int] = Counter()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://yiwang") as c:
        for k in range(0, len(requests), 200):
            batch = requests[k : k + 200]
            answers = await asyncio.gather(*(c.request(m, p, headers=h) for m, p, h in batch))
            statuses.update(r.status_code for r in answers)
    return statuses


def test_a_flood_of_bad_tokens_makes_a_bounded_number_of_rows_with_the_right_counts(
    db_url: str, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=db_url, background=False, admin_token=ADMIN, audit_denied_max_keys=MAX_KEYS
    )
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as c:
        tenant = issue(c, "tenant", tenant="guangdong")
    store: Store = app.state.controller.store
    same = "stolen-or-guessed"  # not of the issued form: refused without a database read
    looked_up = "yw_0123456789ab_" + "A" * 43  # of the issued form, unknown: looked up, refused
    requests = (
        [("GET", "/v1/jobs", bearer(same))] * 5900
        + [("GET", "/v1/jobs", bearer(looked_up))] * 100
        + [("GET", "/v1/clusters", bearer(secrets.token_urlsafe(24))) for _ in range(3000)]
        + [("POST", f"/v1/jobs/{i:022x}/cancel", {}) for i in range(500)]
        + [("PUT", "/v1/policies/quota", bearer(tenant["token"]))] * 500
    )
    assert len(requests) == 10_000
    random.Random(14).shuffle(requests)
    statuses = asyncio.run(flood(app, requests))
    assert statuses == {401: 9500, 403: 500}
    # keys: MAX_KEYS bad tokens (the two repeated ones among them), (others), anonymous, the 403
    assert app.state.denials.pending() == MAX_KEYS + 3
    app.state.denials.stop()  # what shutdown does: the interval's counts, one row per key

    rows = denied_rows(store)
    assert len(rows) == MAX_KEYS + 3  # not 10,000, nor 3,000: the distinct tokens are capped
    assert sum(r["detail"]["count"] for r in rows) == 10_000
    by_target: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_target.setdefault(r["target"], []).append(r)
    jobs = {r["actor"]: r for r in by_target["GET /v1/jobs"]}
    assert {a: r["detail"]["count"] for a, r in jobs.items()} == {
        "sha256:" + hashlib.sha256(same.encode()).hexdigest()[:12]: 5900,
        "sha256:" + hashlib.sha256(looked_up.encode()).hexdigest()[:12]: 100,
    }
    assert {(r["action"], r["role"], r["tenant"], r["detail"]["status"]) for r in jobs.values()} == {
        ("auth.failed", "none", None, 401)
    }
    (anonymous,) = by_target["POST /v1/jobs/{job_id}/cancel"]  # the template, not 500 paths
    assert anonymous["actor"] == "anonymous" and anonymous["detail"]["count"] == 500
    (forbidden,) = by_target["PUT /v1/policies/{kind}"]
    assert (forbidden["action"], forbidden["actor"], forbidden["role"], forbidden["tenant"]) == (
        "access.denied",
        tenant["id"],
        "tenant",
        "guangdong",
    )
    assert forbidden["detail"]["count"] == 500
    distinct = by_target["GET /v1/clusters"]
    assert sum(r["detail"]["count"] for r in distinct) == 3000
    assert len(distinct) == MAX_KEYS - 1  # MAX_KEYS - 2 tokens of their own and (others)
    assert [r["detail"]["count"] for r in distinct if r["actor"] == OTHERS] == [3000 - (MAX_KEYS - 2)]
    assert all(same not in str(r) and looked_up not in str(r) for r in rows)  # tokens are never written

    code = CliRunner().invoke(cli, ["audit", "verify", "--database-url", db_url])
    assert code.exit_code == 0, code.output
    store.close()


def test_one_row_per_key_per_interval_and_the_last_at_shutdown(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'y.db'}",
        background=True,
        admin_token=ADMIN,
        audit_denied_interval_s=0.2,
    )
    app = create_app(settings)
    store: Store = app.state.controller.store
    with TestClient(app, raise_server_exceptions=False) as c:
        for _ in range(3):
            assert c.get("/v1/jobs", headers=bearer("wrong")).status_code == 401
        deadline = time.monotonic() + 10
        while not denied_rows(store) and time.monotonic() < deadline:
            time.sleep(0.05)
        (first,) = denied_rows(store)  # flushed by the interval, while serving
        assert first["detail"]["count"] == 3
        app.state.denials.interval_s = 3600  # the next rows come from the shutdown flush
        time.sleep(0.3)
        for _ in range(2):
            assert c.get("/v1/jobs", headers=bearer("wrong")).status_code == 401
        assert len(denied_rows(store)) == 1
    second = denied_rows(store)[1:]
    assert [(r["actor"], r["detail"]["count"]) for r in second] == [(first["actor"], 2)]
    store.close()


def test_a_failed_flush_keeps_its_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(f"sqlite:///{tmp_path / 'y.db'}")
    denials = DenialAudit(store, max_keys=2)
    for subject in ("a", "b", "c", "c", "anonymous"):
        denials.note(subject, "GET", "/v1/jobs", 401)
    denials.note("tok1", "GET", "/v1/jobs", 403, role="tenant", tenant="hubei")  # never folded
    denials.note("x", "GET", "/healthz", 200)  # only 401 and 403 are counted
    real_tx = store.tx

    def down() -> Any:
        raise OSError("database down")

    monkeypatch.setattr(store, "tx", down)
    assert denials.flush() == 0 and denials.pending() == 5
    monkeypatch.setattr(store, "tx", real_tx)
    assert denials.flush() == 5
    counts = {(r["actor"], r["action"]): r["detail"]["count"] for r in denied_rows(store)}
    assert counts == {
        ("a", "auth.failed"): 1,
        ("b", "auth.failed"): 1,
        (OTHERS, "auth.failed"): 2,
        ("anonymous", "auth.failed"): 1,
        ("tok1", "access.denied"): 1,
    }
    store.close()
