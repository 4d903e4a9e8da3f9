"""Data-set grants: request -> approve -> submit; rejected or missing -> 403 naming inputs[i]."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.security.conftest import PROBLEM, job

GRANTS = "/v1/datasets/gd-tax/grants"


def test_request_approve_submit_then_reject(api: TestClient, tokens: dict[str, dict[str, str]]) -> None:
    hb, gd, admin = tokens["hubei"], tokens["guangdong"], tokens["admin"]
    reads = job("hubei", inputs=["gd-tax"])
    # no grant: submit and plan refused, naming the input; admin submitting for hubei too
    for path, who in (("/v1/jobs", hb), ("/v1/plan", hb), ("/v1/jobs", admin)):
        r = api.post(path, json={**reads, "inputs": ["gd-tax"]}, headers=who)
        assert r.status_code == 403 and r.headers["content-type"] == PROBLEM, r.text
        assert [e["path"] for e in r.json()["errors"]] == ["inputs[0]"]
        assert "gd-tax" in r.json()["errors"][0]["message"]
    # hubei cannot see the data set yet
    assert api.get("/v1/datasets", headers=hb).json()["items"] == []
    assert api.get("/v1/datasets/gd-tax", headers=hb).status_code == 404
    # request (201), again (200, same grant)
    asked = api.post(GRANTS, json={"reason": "joint labour statistics"}, headers=hb)
    assert asked.status_code == 201 and asked.json()["status"] == "pending"
    again = api.post(GRANTS, json={}, headers=hb)
    assert again.status_code == 200 and again.json()["id"] == asked.json()["id"]
    gid = asked.json()["id"]
    # only the owner or an admin decides
    for who in ("hubei", "operator", "national", "agent"):
        assert api.post(f"{GRANTS}/{gid}/approve", headers=tokens[who]).status_code == 403, who
    assert api.post(GRANTS, json={}, headers=tokens["operator"]).status_code == 403
    # still pending: still refused
    assert api.post("/v1/jobs", json=reads, headers=hb).status_code == 403
    approved = api.post(f"{GRANTS}/{gid}/approve", headers=gd)
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert approved.json()["decided_by"] != "bootstrap-admin"
    assert api.post("/v1/jobs", json=reads, headers=hb).status_code == 201
    assert api.post("/v1/plan", json=reads, headers=hb).status_code == 200
    assert [d["id"] for d in api.get("/v1/datasets", headers=hb).json()["items"]] == ["gd-tax"]
    # the owner withdraws it: new submissions refused again
    assert api.post(f"{GRANTS}/{gid}/reject", headers=gd).json()["status"] == "rejected"
    r = api.post("/v1/jobs", json=reads, headers=hb)
    assert r.status_code == 403 and r.json()["errors"][0]["path"] == "inputs[0]"
    # asking again after a rejection opens a new request
    assert api.post(GRANTS, json={}, headers=hb).json()["status"] == "pending"


def test_grants_are_per_tenant_and_the_owner_needs_none(
    api: TestClient, tokens: dict[str, dict[str, str]]
) -> None:
    hb, gd = tokens["hubei"], tokens["guangdong"]
    gid = api.post(GRANTS, json={}, headers=hb).json()["id"]
    api.post(f"{GRANTS}/{gid}/approve", headers=gd)
    # national needs a grant like everyone (and an admin may grant it)
    national = job("national", inputs=["gd-tax"])
    assert api.post("/v1/jobs", json=national, headers=tokens["national"]).status_code == 403
    ng = api.post(GRANTS, json={"tenant": "national"}, headers=tokens["admin"])
    assert ng.status_code == 201
    assert api.post(f"{GRANTS}/{ng.json()['id']}/approve", headers=tokens["admin"]).status_code == 200
    assert api.post("/v1/jobs", json=national, headers=tokens["national"]).status_code == 201
    # the owner needs no grant; a tenant asks for itself only
    assert api.post("/v1/jobs", json=job("guangdong", inputs=["gd-tax"]), headers=gd).status_code == 201
    assert api.post(GRANTS, json={}, headers=gd).status_code == 422
    assert api.post(GRANTS, json={"tenant": "zhejiang"}, headers=hb).status_code == 403
    # listing: owner, admin, operator see all; another tenant its own
    assert len(api.get(GRANTS, headers=gd).json()["items"]) == 2
    assert len(api.get(GRANTS, headers=tokens["operator"]).json()["items"]) == 2
    assert [g["tenant"] for g in api.get(GRANTS, headers=hb).json()["items"]] == ["hubei"]
    # unknown grant or data set: 404
    assert api.post(f"{GRANTS}/nope/approve", headers=gd).status_code == 404
    assert api.post("/v1/datasets/nope/grants", json={}, headers=hb).status_code == 404


def test_a_tenant_registers_its_own_data_sets_only(
    api: TestClient, tokens: dict[str, dict[str, str]]
) -> None:
    ds = {
        "id": "hb-open",
        "owner": "hubei",
        "size_bytes": 1,
        "classification": "general",
        "locations": ["prov-hubei"],
    }
    r = api.post("/v1/datasets", json=ds, headers=tokens["guangdong"])
    assert r.status_code == 403 and r.json()["errors"][0]["path"] == "owner"
    assert api.post("/v1/datasets", json=ds, headers=tokens["hubei"]).status_code == 201


def test_a_withdrawn_grant_stops_the_jobs_that_have_not_started(
    api: TestClient, tokens: dict[str, dict[str, str]]
) -> None:
    """A job admitted with its grant waits in the queue; the owner withdraws the grant; the
    cycle reads the grants again before placing and fails the job, naming the data set, instead
    of running it against the owner's decision. Jobs reading their own data, or a data set
    still granted, are placed in the same cycle; a placed job is not stopped."""
    from controller.service import Controller

    ctl: Controller = api.app.state.controller  # type: ignore[attr-defined]
    hb, gd = tokens["hubei"], tokens["guangdong"]
    gid = api.post(GRANTS, json={}, headers=hb).json()["id"]
    api.post(f"{GRANTS}/{gid}/approve", headers=gd)
    early = api.post("/v1/jobs", json=job("hubei", inputs=["gd-tax"]), headers=hb).json()["id"]
    assert ctl.schedule_pending() == 1  # placed while granted
    waiting = api.post("/v1/jobs", json=job("hubei", inputs=["gd-tax"]), headers=hb).json()["id"]
    own = api.post("/v1/jobs", json=job("hubei", name="own"), headers=hb).json()["id"]
    owner = api.post("/v1/jobs", json=job("guangdong", inputs=["gd-tax"]), headers=gd).json()["id"]
    assert api.post(f"{GRANTS}/{gid}/reject", headers=gd).json()["status"] == "rejected"
    assert ctl.schedule_pending() == 2  # the two others
    got = api.get(f"/v1/jobs/{waiting}", headers=hb).json()
    assert got["phase"] == "Failed", got
    assert "gd-tax" in got["message"] and "no longer holds an approved grant" in got["message"]
    assert [e["type"] for e in ctl.store.job_events(waiting)] == ["Submitted", "Failed"]
    for placed in (own, owner, early):  # the job placed before the withdrawal keeps running
        assert (
            api.get(f"/v1/jobs/{placed}", headers=hb if placed != owner else gd).json()["phase"]
            == "Scheduled"
        )
    # granted again: a new submission runs; the failed one stays failed
    again = api.post(GRANTS, json={}, headers=hb).json()["id"]
    api.post(f"{GRANTS}/{again}/approve", headers=gd)
    fresh = api.post("/v1/jobs", json=job("hubei", inputs=["gd-tax"]), headers=hb).json()["id"]
    assert ctl.schedule_pending() == 1
    assert api.get(f"/v1/jobs/{fresh}", headers=hb).json()["phase"] == "Scheduled"
    assert api.get(f"/v1/jobs/{waiting}", headers=hb).json()["phase"] == "Failed"


def test_approved_pairs_are_exactly_the_approved_grants_asked_for(db_url: str) -> None:
    """``SecurityStore.approved_pairs`` (the cycle's one read of the grants) on both databases,
    over more pairs than one statement takes: approved ones only, and only those asked for."""
    from sqlalchemy import insert, select

    from controller.store import Store
    from controller.store import schema as t
    from controller.store.security import SecurityStore
    from controller.store.store import new_job_id, now

    store = Store(db_url)
    at = now()
    datasets = [f"ds-{i}" for i in range(60)]
    tenants = [f"tenant-{i}" for i in range(40)]
    status = ["approved", "rejected", "pending"]
    grants = {
        (tn, d): status[(i * 7 + j) % 3] for i, tn in enumerate(tenants) for j, d in enumerate(datasets)
    }
    with store.tx() as conn:
        conn.execute(
            insert(t.datasets),
            [
                {
                    "id": d,
                    "owner": "guangdong",
                    "size_bytes": 1,
                    "classification": "general",
                    "locations": ["prov-guangdong"],
                    "created_at": at,
                }
                for d in datasets
            ],
        )
        conn.execute(
            insert(t.dataset_grants),
            [
                {
                    "id": new_job_id(),
                    "dataset_id": d,
                    "tenant": tn,
                    "status": st,
                    "reason": "",
                    "requested_by": "test",
                    "requested_at": at,
                    "decided_by": None,
                    "decided_at": None,
                }
                for (tn, d), st in grants.items()
            ],
        )
    wanted = {pair for k, pair in enumerate(sorted(grants)) if k % 5 != 0} | {("tenant-x", "ds-1")}
    assert len(wanted) > 1000
    repo = SecurityStore(store)
    got = repo.approved_pairs(wanted)
    assert got == {p for p in wanted if grants.get(p) == "approved"} and got
    # the marker moves with each decision (its audit row), on both databases
    assert repo.grants_marker() == 0
    g = t.dataset_grants.c
    with store.read() as conn:
        grant_id, dataset_id = conn.execute(
            select(g.id, g.dataset_id).where(g.status == "approved").limit(1)
        ).one()
    markers = []
    for status in ("rejected", "approved"):
        audit = {
            "at": now(),
            "actor": "test",
            "role": "admin",
            "tenant": None,
            "target": f"dataset/{dataset_id}",
        }
        row = {**audit, "action": f"grant.{status}", "detail": {}}
        repo.decide_grant(dataset_id, grant_id, status, "test", now(), lambda _grantee, row=row: row)
        markers.append(repo.grants_marker())
    assert 0 < markers[0] < markers[1]
    store.close()
