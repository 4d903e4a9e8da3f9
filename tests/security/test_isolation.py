"""Tenant isolation (list, get, cancel, decision, plan) and agents bound to their cluster."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.security.conftest import PROBLEM, job


def test_a_tenant_sees_and_acts_on_its_own_jobs_only(
    api: TestClient, tokens: dict[str, dict[str, str]], secure_app: FastAPI
) -> None:
    gd, hb = tokens["guangdong"], tokens["hubei"]
    mine = api.post("/v1/jobs", json=job("guangdong"), headers=gd).json()["id"]
    theirs = api.post("/v1/jobs", json=job("hubei"), headers=hb).json()["id"]
    secure_app.state.controller.schedule_pending()

    # list: filtered to its own, also when it asks for another tenant
    assert [j["id"] for j in api.get("/v1/jobs", headers=gd).json()["items"]] == [mine]
    assert api.get("/v1/jobs", params={"tenant": "hubei"}, headers=gd).json()["items"] == []
    assert [
        j["id"] for j in api.get("/v1/jobs", params={"tenant": "guangdong"}, headers=gd).json()["items"]
    ] == [mine]
    # get / decision / cancel of another tenant's job: 404 exactly as for an unknown id
    unknown = api.get("/v1/jobs/00000000000000deadbeef", headers=gd).json()
    for method, path in (
        ("GET", f"/v1/jobs/{theirs}"),
        ("GET", f"/v1/jobs/{theirs}/decision"),
        ("POST", f"/v1/jobs/{theirs}/cancel"),
    ):
        r = api.request(method, path, headers=gd)
        assert r.status_code == 404 and r.headers["content-type"] == PROBLEM, (path, r.text)
        assert r.json()["title"] == unknown["title"] and theirs in r.json()["detail"]
    assert api.get(f"/v1/jobs/{theirs}", headers=hb).json()["phase"] == "Scheduled"  # not cancelled
    # its own: all fine
    assert api.get(f"/v1/jobs/{mine}", headers=gd).status_code == 200
    assert api.get(f"/v1/jobs/{mine}/decision", headers=gd).status_code == 200
    assert api.post(f"/v1/jobs/{mine}/cancel", headers=gd).json()["phase"] == "Cancelled"
    # admin and operator read everyone's; the operator cannot cancel
    assert len(api.get("/v1/jobs", headers=tokens["operator"]).json()["items"]) == 2
    assert api.get(f"/v1/jobs/{theirs}/decision", headers=tokens["operator"]).status_code == 200
    assert api.post(f"/v1/jobs/{theirs}/cancel", headers=tokens["operator"]).status_code == 403
    assert api.post(f"/v1/jobs/{theirs}/cancel", headers=tokens["admin"]).status_code == 200


def test_a_tenant_submits_and_plans_as_itself_only(
    api: TestClient, tokens: dict[str, dict[str, str]]
) -> None:
    for path in ("/v1/jobs", "/v1/plan"):
        r = api.post(path, json=job("hubei"), headers=tokens["guangdong"])
        assert r.status_code == 403 and r.headers["content-type"] == PROBLEM
        assert r.json()["errors"][0]["path"] == "tenant"
    assert api.get("/v1/jobs", headers=tokens["admin"]).json()["items"] == []
    assert api.post("/v1/plan", json=job("guangdong"), headers=tokens["guangdong"]).status_code == 200
    # admin submits for any tenant
    assert api.post("/v1/jobs", json=job("hubei"), headers=tokens["admin"]).status_code == 201


def test_idempotency_keys_do_not_cross_tenants(api: TestClient, tokens: dict[str, dict[str, str]]) -> None:
    key = {"Idempotency-Key": "same-key"}
    a = api.post("/v1/jobs", json=job("guangdong"), headers={**tokens["guangdong"], **key})
    b = api.post("/v1/jobs", json=job("hubei"), headers={**tokens["hubei"], **key})
    assert a.status_code == b.status_code == 201 and a.json()["id"] != b.json()["id"]


def test_an_agent_acts_for_its_own_cluster_only(
    api: TestClient, tokens: dict[str, dict[str, str]], secure_app: FastAPI
) -> None:
    agent = tokens["agent"]  # bound to prov-guangdong
    jid = api.post("/v1/jobs", json=job("guangdong"), headers=tokens["guangdong"]).json()["id"]
    secure_app.state.controller.schedule_pending()
    placed = api.get(f"/v1/jobs/{jid}", headers=tokens["admin"]).json()
    own = api.get("/v1/agents/prov-guangdong/assignments", headers=agent)
    assert own.status_code == 200
    for action in ("heartbeat", "assignments", "status", "release"):
        method = "GET" if action == "assignments" else "POST"
        body = (
            {"job_id": jid, "attempt": 1, "epoch": 1, "phase": "Running"} if action != "heartbeat" else None
        )
        r = api.request(method, f"/v1/agents/prov-hubei/{action}", json=body, headers=agent)
        assert r.status_code == 403 and r.headers["content-type"] == PROBLEM, (action, r.text)
        assert "prov-guangdong" in r.json()["detail"]
    # it cannot use the tenant API either
    assert api.get(f"/v1/jobs/{jid}", headers=agent).status_code == 403
    assert placed["phase"] in ("Scheduled", "Pending")
