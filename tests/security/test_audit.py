"""The audit log: who did what, every placement decision, and append-only on both databases."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from controller.store import Store
from tests.api.test_clusters_datasets_policies import spec
from tests.security.conftest import job


def actions(api: TestClient, headers: dict[str, str], **params: str) -> list[dict[str, object]]:
    items: list[dict[str, object]] = api.get("/v1/audit", params=params, headers=headers).json()["items"]
    return items


def test_every_action_is_recorded_with_its_actor(
    api: TestClient, tokens: dict[str, dict[str, str]], secure_app: FastAPI
) -> None:
    admin, op, gd, hb = tokens["admin"], tokens["operator"], tokens["guangdong"], tokens["hubei"]
    ids = {r["id"]: r for r in api.get("/v1/tokens", headers=admin).json()["items"]}
    gd_id = next(i for i, r in ids.items() if r["tenant"] == "guangdong")
    op_id = next(i for i, r in ids.items() if r["role"] == "operator")

    jid = api.post("/v1/jobs", json=job("guangdong"), headers={**gd, "Idempotency-Key": "k1"}).json()["id"]
    api.post("/v1/jobs", json=job("guangdong"), headers={**gd, "Idempotency-Key": "k1"})  # replay: no row
    assert secure_app.state.controller.schedule_pending() == 1
    api.post(f"/v1/jobs/{jid}/cancel", headers=gd)
    quota = api.get("/v1/policies", headers=admin).json()["quota"]
    assert api.put("/v1/policies/quota", json=quota, headers=admin).status_code == 200
    for action in ("cordon", "uncordon", "drain"):
        assert api.post(f"/v1/clusters/prov-hubei/{action}", headers=op).status_code == 200
    assert api.delete("/v1/clusters/prov-hubei", headers=admin).status_code == 204
    gid = api.post("/v1/datasets/gd-tax/grants", json={}, headers=hb).json()["id"]
    api.post(f"/v1/datasets/gd-tax/grants/{gid}/approve", headers=gd)
    api.post(f"/v1/datasets/gd-tax/grants/{gid}/reject", headers=gd)
    api.delete(f"/v1/tokens/{op_id}", headers=admin)

    log = actions(api, admin, limit="1000")
    by_action: dict[str, list[dict[str, object]]] = {}
    for row in log:
        by_action.setdefault(str(row["action"]), []).append(row)
    expected = {
        "token.issued", "token.revoked", "job.submitted", "job.cancelled", "placement.decided",
        "policy.changed", "cluster.cordoned", "cluster.uncordoned", "cluster.drained", "cluster.deleted",
        "grant.requested", "grant.approved", "grant.rejected", "dataset.registered",
    }  # fmt: skip
    assert expected <= set(by_action), expected - set(by_action)
    (submitted,) = by_action["job.submitted"]  # the replay wrote none
    assert (submitted["actor"], submitted["role"], submitted["tenant"]) == (gd_id, "tenant", "guangdong")
    assert submitted["target"] == f"job/{jid}"
    (placed,) = by_action["placement.decided"]
    assert placed["actor"] == "scheduler" and placed["target"] == f"job/{jid}"
    detail = placed["detail"]
    assert isinstance(detail, dict) and detail["attempt"] == 1 and detail["cluster"] and detail["summary"]
    assert by_action["cluster.drained"][0]["actor"] == op_id
    assert by_action["policy.changed"][0]["actor"] == "bootstrap-admin"
    assert by_action["grant.approved"][0]["tenant"] == "guangdong"
    # filters and the cursor
    assert {r["action"] for r in actions(api, admin, actor=gd_id)} >= {"job.submitted", "job.cancelled"}
    assert [r["action"] for r in actions(api, admin, action="cluster.cordoned")] == ["cluster.cordoned"]
    page1 = api.get("/v1/audit", params={"limit": 3}, headers=admin).json()
    page2 = api.get("/v1/audit", params={"limit": 3, "cursor": page1["next_cursor"]}, headers=admin).json()
    assert [r["id"] for r in page1["items"] + page2["items"]] == [r["id"] for r in log[:6]]
    assert api.get("/v1/audit", params={"cursor": "!!"}, headers=admin).status_code == 422
    future = api.get("/v1/audit", params={"since": "2999-01-01T00:00:00Z"}, headers=admin).json()
    assert future["items"] == []


def test_cluster_registration_is_audited(api: TestClient, tokens: dict[str, dict[str, str]]) -> None:
    admin = tokens["admin"]
    r = api.put("/v1/clusters/prov-hainan-2", json=spec("prov-hainan-2"), headers=admin)
    assert r.status_code == 201, r.text
    (row,) = actions(api, admin, action="cluster.registered")
    assert row["target"] == "cluster/prov-hainan-2" and row["detail"] == {"created": True}


def test_the_audit_log_is_append_only_in_the_database(db_url: str) -> None:
    store = Store(db_url)
    with store.tx() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_log (at, actor, role, tenant, action, target, detail) "
                "VALUES (CURRENT_TIMESTAMP, 'x', 'admin', NULL, 'job.submitted', 'job/1', '{}')"
            )
        )
    for statement in (
        "UPDATE audit_log SET actor = 'someone-else'",
        "DELETE FROM audit_log",
        *(["TRUNCATE audit_log"] if not store.is_sqlite else []),
    ):
        with pytest.raises(DBAPIError, match="append-only"), store.tx() as conn:
            conn.execute(text(statement))
    with store.read() as conn:
        assert conn.execute(text("SELECT actor FROM audit_log")).scalars().all() == ["x"]
    store.close()
