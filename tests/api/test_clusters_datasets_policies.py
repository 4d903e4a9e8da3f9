"""Clusters (register, cordon, uncordon, drain), the data-set catalogue, and policies."""

from __future__ import annotations

from typing import Any

import yaml
from fastapi.testclient import TestClient

from tests.conftest import REPO

PROBLEM = "application/problem+json"


def spec(name: str = "prov-hainan-2", **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "tier": "province",
        "tenant": "hainan",
        "display_name": "Hainan (second)",
        "adcode": "460000",
        "region": "cn-hainan",
        "location": {"lng": 110.33, "lat": 20.03},
        "capacity": {"cpu": 500, "memory_gib": 2000, "gpu": 0},
    }
    body.update(over)
    return body


def test_list_and_get_clusters(ready: TestClient) -> None:
    items = ready.get("/v1/clusters").json()["items"]
    assert len(items) == 42
    gd = ready.get("/v1/clusters/prov-guangdong").json()
    assert gd["labels"]["adcode"] == "440000" and gd["labels"]["tier"] == "province"
    assert gd["labels"]["hub-side"] == "east" and gd["health"] == "Ready"
    assert gd["capacity"]["cpu"] > 0 and gd["allocated"]["cpu"] == 0 and gd["last_heartbeat"]
    assert ready.get("/v1/clusters/nope").status_code == 404
    assert ready.get("/v1/clusters/NOT_A_NAME").status_code == 422


def test_register_update_and_delete_a_cluster(ready: TestClient) -> None:
    r = ready.put("/v1/clusters/prov-hainan-2", json=spec())
    assert r.status_code == 201 and r.json()["health"] == "Unknown"
    again = ready.put("/v1/clusters/prov-hainan-2", json=spec())
    assert again.status_code == 200
    bigger = ready.put(
        "/v1/clusters/prov-hainan-2", json=spec(capacity={"cpu": 900, "memory_gib": 10, "gpu": 0})
    )
    assert bigger.json()["capacity"]["cpu"] == 900
    assert len(ready.get("/v1/clusters").json()["items"]) == 43
    mismatch = ready.put("/v1/clusters/prov-hainan-2", json=spec(name="other"))
    assert mismatch.status_code == 422 and mismatch.json()["errors"][0]["path"] == "name"
    bad = ready.put("/v1/clusters/prov-hainan-2", json=spec(tier="province", adcode=None))
    assert bad.status_code == 422
    assert ready.delete("/v1/clusters/prov-hainan-2").status_code == 204
    assert ready.delete("/v1/clusters/prov-hainan-2").status_code == 404


def test_a_registered_cluster_takes_work_once_ready(ready: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    ready.put("/v1/clusters/prov-hainan-2", json=spec())
    job = {"name": "j", "tenant": "hainan", "constraints": {"allow_clusters": ["prov-hainan-2"]}}
    plan = ready.post("/v1/plan", json=job).json()
    assert plan["cluster"] is None and "health (cluster is Unknown)" in plan["summary"]
    ready.post("/v1/agents/prov-hainan-2/heartbeat")
    assert ready.post("/v1/plan", json=job).json()["cluster"] == "prov-hainan-2"


def test_cordon_uncordon_drain(ready: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    ctl = app.state.controller
    job = {
        "name": "j",
        "tenant": "hubei",
        "constraints": {"allow_clusters": ["prov-hubei", "prov-hunan"], "prefer_clusters": ["prov-hubei"]},
    }
    jid = ready.post("/v1/jobs", json=job).json()["id"]
    ctl.schedule_pending()
    assert ready.get(f"/v1/jobs/{jid}").json()["cluster"] == "prov-hubei"
    assert ready.post("/v1/clusters/prov-hubei/cordon").json()["cordoned"] is True
    assert ready.post("/v1/plan", json=job).json()["cluster"] == "prov-hunan"
    drained = ready.post("/v1/clusters/prov-hubei/drain").json()
    assert drained["requeued_jobs"] == 1 and drained["draining"] is True
    j = ready.get(f"/v1/jobs/{jid}").json()
    assert j["phase"] == "Pending" and j["attempt"] == 2 and j["events"][-1]["type"] == "Drained"
    ctl.schedule_pending()
    j = ready.get(f"/v1/jobs/{jid}").json()
    assert j["cluster"] == "prov-hunan" and j["attempt"] == 2
    assert ready.get("/v1/clusters/prov-hubei").json()["allocated"]["cpu"] == 0
    un = ready.post("/v1/clusters/prov-hubei/uncordon").json()
    assert un["cordoned"] is False and un["draining"] is False
    assert ready.post("/v1/clusters/nope/cordon").status_code == 404


def test_dataset_catalogue(ready: TestClient) -> None:
    body = {
        "id": "hb-stats",
        "owner": "hubei",
        "size_bytes": 123,
        "classification": "general",
        "locations": ["prov-hubei"],
    }
    assert ready.post("/v1/datasets", json=body).status_code == 201
    assert ready.post("/v1/datasets", json=body).status_code == 200  # same body: idempotent
    clash = ready.post("/v1/datasets", json={**body, "size_bytes": 456})
    assert clash.status_code == 409 and clash.headers["content-type"] == PROBLEM
    assert ready.get("/v1/datasets/hb-stats").json()["size_bytes"] == 123
    assert [d["id"] for d in ready.get("/v1/datasets").json()["items"]] == ["hb-stats"]
    assert ready.get("/v1/datasets/none").status_code == 404
    bad = ready.post(
        "/v1/datasets", json={**body, "id": "x2", "classification": "secret", "locations": ["mars"]}
    )
    assert bad.status_code == 422
    assert {e["path"] for e in bad.json()["errors"]} == {"classification"}
    unknown = ready.post("/v1/datasets", json={**body, "id": "x3", "locations": ["prov-atlantis"]})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["path"] == "locations[0]"


def test_policies_invalid_keeps_the_old_one(ready: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    before = ready.get("/v1/policies").json()
    assert before["residency"]["movement"]["core"] == "none"
    for kind, body in [
        ("residency", {"movement": {"core": "teleport"}}),
        ("placement", {"filters": []}),
        ("placement", {"scores": [{"name": "locality", "weight": -1}]}),
        ("failover", {"backups": {"prov-hubei": ["prov-hubei"]}}),
        ("failover", {"lease_s": 0}),
        ("nonsense", {}),
    ]:
        r = ready.put(f"/v1/policies/{kind}", json=body)
        assert r.status_code == 422, (kind, body, r.text)
        assert r.headers["content-type"] == PROBLEM
        if kind != "nonsense":
            assert r.json()["errors"], r.json()
    assert ready.get("/v1/policies").json() == before
    placement = yaml.safe_load((REPO / "policies" / "placement.yaml").read_text())
    placement["scores"] = [{"name": "balance", "weight": 1}]
    ok = ready.put("/v1/policies/placement", json=placement)
    assert ok.status_code == 200 and ok.json()["version"] == 2
    d = ready.post("/v1/plan", json={"name": "j", "tenant": "hubei"}).json()
    assert set(d["feasible"][0]["scores"]) == {"balance"}
    # The new policy is durable: a new controller on the same database uses it.
    from controller.service import Controller

    other = Controller(app.state.settings)
    assert [s.name for s in other.policies.placement.scores] == ["balance"]
