"""Edges found by black-box probing (issue 14): extreme audit queries, the 401 challenge, the
bearer scheme's case, and the cancel-right-after-submit race."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from controller.api.app import create_app
from controller.service import Controller
from controller.settings import Settings
from tests.security.conftest import ADMIN, PROBLEM, bearer, job


def cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "params",
    [
        {"since": "0001-01-01T00:00:00+14:00"},
        {"since": "9999-12-31T23:59:59-14:00"},
        {"cursor": cursor(str(2**63))},
        {"cursor": cursor("9" * 32)},
        {"cursor": cursor("²")},
        {"since": "not a date"},
    ],
)
def test_extreme_audit_queries_are_4xx(api: TestClient, params: dict[str, str]) -> None:
    r = api.get("/v1/audit", params=params, headers=bearer(ADMIN))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    (field,) = params
    assert [e["path"] for e in r.json()["errors"]] == [field]


@pytest.mark.parametrize(
    "since",
    [
        "0001-01-01T00:00:00Z",
        "0001-01-01T23:59:59+14:00",
        "9999-12-31T23:59:59Z",
        "9999-12-31T00:00:00-09:00",
    ],
)
def test_extreme_but_valid_since_answers_correctly(api: TestClient, since: str) -> None:
    r = api.get("/v1/audit", params={"since": since}, headers=bearer(ADMIN))
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert (len(items) > 0) == since.startswith("0001")  # everything, or nothing yet
    last = cursor(str(2**63 - 1))
    r = api.get("/v1/audit", params={"cursor": last}, headers=bearer(ADMIN))
    assert r.status_code == 200 and r.json()["items"] == []


def test_401_carries_the_bearer_challenge(api: TestClient) -> None:
    for headers in ({}, bearer("yw_000000000000_" + "x" * 43), {"Authorization": "Basic Zm9vOmJhcg=="}):
        r = api.get("/v1/jobs", headers=headers)
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.headers["content-type"].startswith(PROBLEM)


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer", "bEaReR"])
def test_the_scheme_is_case_insensitive(api: TestClient, scheme: str) -> None:
    r = api.get("/v1/jobs", headers={"Authorization": f"{scheme} {ADMIN}"})
    assert r.status_code == 200, r.text
    r = api.post("/v1/jobs", json=job(), headers={"Authorization": f"{scheme}  {ADMIN} "})
    assert r.status_code == 201, r.text


@pytest.fixture
def open_app(db_url: str) -> FastAPI:
    return create_app(Settings(database_url=db_url, background=False))


def test_cancel_right_after_submit_is_retried_inside(open_app: FastAPI) -> None:
    """The job is placed between cancel's read and its write (what a concurrent scheduling
    cycle does): the compare-and-set fails once, and the server retries instead of a 409."""
    ctl: Controller = open_app.state.controller
    with TestClient(open_app, raise_server_exceptions=False) as c:
        for name in ctl.registry.clusters:
            assert c.post(f"/v1/agents/{name}/heartbeat").status_code == 200
        jid = c.post("/v1/jobs", json=job()).json()["id"]
        real_get = ctl.store.get_job
        calls = {"n": 0}

        def racing_get(job_id: str) -> dict[str, Any] | None:
            row = real_get(job_id)
            calls["n"] += 1
            if calls["n"] == 1:
                assert ctl.schedule_pending() == 1  # the row just read is stale now
            return row

        ctl.store.get_job = racing_get  # type: ignore[method-assign]
        try:
            r = c.post(f"/v1/jobs/{jid}/cancel")
        finally:
            ctl.store.get_job = real_get  # type: ignore[method-assign]
        assert r.status_code == 200, r.text
        assert r.json()["phase"] == "Cancelled"
        phases = [e["to_phase"] for e in r.json()["events"]]
        assert phases[-2:] == ["Scheduled", "Cancelled"]
    ctl.store.close()


def test_extreme_audit_queries_on_both_databases(open_app: FastAPI) -> None:
    with TestClient(open_app, raise_server_exceptions=False) as c:
        assert c.post("/v1/clusters/prov-hubei/cordon").status_code == 200  # one audit row
        for since, n in (("0001-01-01T00:00:00Z", 1), ("9999-12-31T23:59:59Z", 0)):
            r = c.get("/v1/audit", params={"since": since})
            assert r.status_code == 200 and len(r.json()["items"]) == n, r.text
        for params in ({"since": "0001-01-01T00:00:00+14:00"}, {"cursor": cursor(str(2**63))}):
            assert c.get("/v1/audit", params=params).status_code == 422
        assert c.get("/v1/audit", params={"cursor": cursor(str(2**63 - 1))}).json()["items"] == []
    open_app.state.controller.store.close()
