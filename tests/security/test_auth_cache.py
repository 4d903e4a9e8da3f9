"""Tokens and grants at speed: cached per process, dropped through the store follower.

Two controller processes on one database (the leader and an API replica, here two apps): a
tenant's grant-checked submission reads nothing from the database once its token and grants are
cached; a revocation or a withdrawn grant takes effect at once where it was made and after the
other process's next follower sync; a new approval is never missed (a refusal is checked
against the database first)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from controller.api.app import create_app
from controller.settings import Settings
from tests.security.conftest import ADMIN, GD_TAX, bearer, issue, job


def two(tmp_path: Path) -> tuple[FastAPI, FastAPI]:
    url = f"sqlite:///{tmp_path / 'yiwang.db'}"
    leader = create_app(Settings(database_url=url, background=False, admin_token=ADMIN, holder="a"))
    replica = create_app(
        Settings(database_url=url, background=False, admin_token=ADMIN, holder="b", role="api")
    )
    return leader, replica


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[TestClient, TestClient, FastAPI]]:
    a_app, b_app = two(tmp_path)
    with TestClient(a_app) as a, TestClient(b_app) as b:
        assert a.post("/v1/datasets", json=GD_TAX, headers=bearer(ADMIN)).status_code == 201
        b_app.state.controller.follower.sync()  # the replica learns the data set
        yield a, b, b_app


def reads(app: FastAPI) -> list[int]:
    """Count the store's read transactions in ``app`` from now on."""
    store = app.state.controller.store
    count = [0]
    inner = store.read

    def counted() -> Any:
        count[0] += 1
        return inner()

    store.read = counted
    return count


def test_a_cached_tenant_submission_reads_nothing(pair: tuple[TestClient, TestClient, FastAPI]) -> None:
    a, b, b_app = pair
    gd = bearer(issue(a, "tenant", tenant="guangdong")["token"])
    hubei = bearer(issue(a, "tenant", tenant="hubei")["token"])
    grant = a.post("/v1/datasets/gd-tax/grants", json={"tenant": "hubei"}, headers=bearer(ADMIN)).json()
    assert (
        a.post(f"/v1/datasets/gd-tax/grants/{grant['id']}/approve", headers=bearer(ADMIN)).status_code == 200
    )
    # first submissions: the token rows and hubei's grants are read once
    assert b.post("/v1/jobs", json=job("guangdong", inputs=["gd-tax"]), headers=gd).status_code == 201
    assert b.post("/v1/jobs", json=job("hubei", inputs=["gd-tax"]), headers=hubei).status_code == 201
    count = reads(b_app)
    for k in range(5):
        assert (
            b.post("/v1/jobs", json=job("guangdong", name=f"g{k}", inputs=["gd-tax"]), headers=gd).status_code
            == 201
        )
        assert (
            b.post("/v1/jobs", json=job("hubei", name=f"h{k}", inputs=["gd-tax"]), headers=hubei).status_code
            == 201
        )
    assert count[0] == 0
    # another tenant's job is still refused (by the route)
    assert b.post("/v1/jobs", json=job("hubei"), headers=gd).status_code == 403


def test_revocation_at_once_here_and_after_a_sync_elsewhere(
    pair: tuple[TestClient, TestClient, FastAPI],
) -> None:
    a, b, b_app = pair
    issued = issue(a, "tenant", tenant="guangdong")
    gd = bearer(issued["token"])
    assert a.post("/v1/jobs", json=job(), headers=gd).status_code == 201
    assert b.post("/v1/jobs", json=job(), headers=gd).status_code == 201  # cached in both
    assert a.delete(f"/v1/tokens/{issued['id']}", headers=bearer(ADMIN)).status_code == 204
    assert a.post("/v1/jobs", json=job(), headers=gd).status_code == 401  # where it was revoked
    # the replica drops it at its next follower sync (every follow_interval_s)
    b_app.state.controller.follower.sync()
    assert b.post("/v1/jobs", json=job(), headers=gd).status_code == 401


def test_grants_new_approval_at_once_withdrawal_after_a_sync(
    pair: tuple[TestClient, TestClient, FastAPI],
) -> None:
    a, b, b_app = pair
    hubei = bearer(issue(a, "tenant", tenant="hubei")["token"])
    body = job("hubei", inputs=["gd-tax"])
    assert b.post("/v1/jobs", json=body, headers=hubei).status_code == 403  # no grant (cached: none)
    grant = a.post("/v1/datasets/gd-tax/grants", json={"tenant": "hubei"}, headers=bearer(ADMIN)).json()
    assert (
        a.post(f"/v1/datasets/gd-tax/grants/{grant['id']}/approve", headers=bearer(ADMIN)).status_code == 200
    )
    # approved elsewhere: the replica's cached "none" does not refuse it (a refusal reads first)
    assert b.post("/v1/jobs", json=body, headers=hubei).status_code == 201
    assert (
        a.post(f"/v1/datasets/gd-tax/grants/{grant['id']}/reject", headers=bearer(ADMIN)).status_code == 200
    )
    assert a.post("/v1/jobs", json=body, headers=hubei).status_code == 403  # where it was withdrawn
    b_app.state.controller.follower.sync()
    assert b.post("/v1/jobs", json=body, headers=hubei).status_code == 403


def test_a_revocation_applied_during_a_token_read_is_not_undone(
    pair: tuple[TestClient, TestClient, FastAPI],
) -> None:
    """The replica reads the token row before the revocation commits, the follower applies the
    revocation before that read's answer is cached: the stale row must not be cached (it would
    stay valid here until evicted)."""
    a, b, b_app = pair
    issued = issue(a, "tenant", tenant="guangdong")
    gd = bearer(issued["token"])
    sec = b_app.state.security
    store = b_app.state.controller.store
    inner = store.read

    class Racing:
        """The replica's token read; the revocation and the follower's sync land inside it."""

        def __enter__(self) -> Any:
            self.ctx = inner()
            conn = self.ctx.__enter__()
            row = conn.exec_driver_sql("SELECT revoked_at FROM api_tokens WHERE id = ?", (issued["id"],))
            assert row.first()[0] is None
            return conn

        def __exit__(self, *exc: Any) -> Any:
            out = self.ctx.__exit__(*exc)
            store.read = inner
            assert a.delete(f"/v1/tokens/{issued['id']}", headers=bearer(ADMIN)).status_code == 204
            b_app.state.controller.follower.sync()
            return out

    store.read = lambda: Racing()
    assert b.post("/v1/jobs", json=job(), headers=gd).status_code == 201  # read before the revocation
    assert issued["id"] not in sec.cache.tokens
    assert b.post("/v1/jobs", json=job(), headers=gd).status_code == 401


def test_a_stalled_follower_bounds_the_staleness(pair: tuple[TestClient, TestClient, FastAPI]) -> None:
    """A process trusts its cache only while its follower's last complete sync began at most
    max_lag_s ago: within it, a revocation made elsewhere is seen at the next sync; past it
    (the follower stalled), every token is read again and the revoked one is refused at once."""
    a, b, b_app = pair
    sec = b_app.state.security
    issued = issue(a, "tenant", tenant="guangdong")
    gd = bearer(issued["token"])
    synced = [time.time()]
    sec.follow(lambda: synced[0])
    assert b.post("/v1/jobs", json=job(), headers=gd).status_code == 201  # read once, cached
    count = reads(b_app)
    assert b.post("/v1/jobs", json=job(name="again"), headers=gd).status_code == 201
    assert count[0] == 0  # the follower keeps up: the cache answers
    assert a.delete(f"/v1/tokens/{issued['id']}", headers=bearer(ADMIN)).status_code == 204
    # not yet synced, still within the bound: the cached token is accepted (the staleness)
    assert b.post("/v1/jobs", json=job(name="stale"), headers=gd).status_code == 201
    synced[0] = time.time() - sec.max_lag_s - 1  # the follower stalled past the bound
    assert b.post("/v1/jobs", json=job(name="late"), headers=gd).status_code == 401
    assert count[0] >= 1  # read from the database, not the cache
    # the same for grants: a withdrawal elsewhere is refused at once past the bound
    synced[0] = time.time()
    hubei = bearer(issue(a, "tenant", tenant="hubei")["token"])
    grant = a.post("/v1/datasets/gd-tax/grants", json={"tenant": "hubei"}, headers=bearer(ADMIN)).json()
    assert (
        a.post(f"/v1/datasets/gd-tax/grants/{grant['id']}/approve", headers=bearer(ADMIN)).status_code == 200
    )
    body = job("hubei", inputs=["gd-tax"])
    assert b.post("/v1/jobs", json=body, headers=hubei).status_code == 201  # grants cached
    assert (
        a.post(f"/v1/datasets/gd-tax/grants/{grant['id']}/reject", headers=bearer(ADMIN)).status_code == 200
    )
    assert b.post("/v1/jobs", json=body, headers=hubei).status_code == 201  # within the bound
    synced[0] = time.time() - sec.max_lag_s - 1
    assert b.post("/v1/jobs", json=body, headers=hubei).status_code == 403


def test_the_follower_notes_when_its_last_complete_sync_began(
    pair: tuple[TestClient, TestClient, FastAPI],
) -> None:
    _, _, b_app = pair
    follower = b_app.state.controller.follower
    before = time.time()
    follower.sync()
    assert before <= follower.last_sync_began <= follower.last_sync


def test_a_running_follower_is_what_the_cache_trusts(tmp_path: Path) -> None:
    """With the background loops on, the app ties the cache to its follower's syncs."""
    url = f"sqlite:///{tmp_path / 'y.db'}"
    app = create_app(Settings(database_url=url, background=True, admin_token=ADMIN, role="api"))
    with TestClient(app):
        sec = app.state.security
        assert sec.synced_at is not None
        assert sec.synced_at() == app.state.controller.follower.last_sync_began
        assert sec.cache_trusted()
    off = create_app(Settings(database_url=url, background=False, admin_token=ADMIN, role="api"))
    assert off.state.security.synced_at is None
