"""The console's views keep tenants apart: a tenant token sees its own tenant's row, queue, flows,
grants and data sets only; operators read everything but decide no grant; drill reports are for
operators."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from controller.store.store import now
from tests.security.conftest import ADMIN, bearer, job


def test_tenant_views_are_scoped_to_the_tenant(api: TestClient, tokens: dict[str, dict[str, str]]) -> None:
    ctl = api.app.state.controller  # type: ignore[attr-defined]
    for tenant, where in (("guangdong", "prov-guangdong"), ("hubei", "prov-hubei")):
        body = job(tenant, constraints={"prefer_clusters": [where]})
        assert api.post("/v1/jobs", json=body, headers=tokens[tenant]).status_code == 201
        waiting = job(tenant, name="waiting", constraints={"allow_clusters": ["prov-xizang"]})
        assert api.post("/v1/jobs", json=waiting, headers=tokens[tenant]).status_code == 201
    assert api.post("/v1/clusters/prov-xizang/cordon", headers=tokens["operator"]).status_code == 200
    assert ctl.schedule_pending() == 2
    for name in ("prov-guangdong", "prov-hubei"):  # both fail over
        silent = now() - timedelta(seconds=ctl.lease_hold_s() + 5)
        ctl.store.update_cluster(name, last_heartbeat=silent)
        ctl.registry.clusters[name].last_heartbeat = silent
        ctl.lead_since = silent  # the leader led throughout (silence counts from its takeover)
    assert ctl.expire_leases() == 2
    ctl.schedule_pending()

    rows = api.get("/v1/tenants", headers=tokens["hubei"]).json()
    assert [t["tenant"] for t in rows["items"]] == ["hubei"] and rows["tenants_total"] > 1
    assert len(api.get("/v1/tenants", headers=tokens["operator"]).json()["items"]) == rows["tenants_total"]

    view = api.get("/v1/federation/map", headers=tokens["hubei"]).json()
    assert view["activity"]["prov-hubei"]["pending"] == 1
    assert view["activity"]["prov-guangdong"]["pending"] is None
    assert {f["from_cluster"] for f in view["flows"]} == {"prov-hubei"}
    ops = api.get("/v1/federation/map", headers=tokens["operator"]).json()
    assert {f["from_cluster"] for f in ops["flows"]} == {"prov-hubei", "prov-guangdong"}

    page = api.get("/v1/clusters/prov-guangdong/overview", headers=tokens["hubei"]).json()
    assert page["activity"]["pending"] is None and page["flows"] == [] and page["datasets"] == []
    own = api.get("/v1/clusters/prov-guangdong/overview", headers=tokens["guangdong"]).json()
    assert own["activity"]["pending"] == 1 and [d["id"] for d in own["datasets"]] == ["gd-tax"]

    assert api.get("/v1/datasets/gd-tax/residency", headers=tokens["hubei"]).status_code == 404
    assert api.get("/v1/datasets/gd-tax/residency", headers=tokens["guangdong"]).status_code == 200
    assert api.get("/v1/metrics/series", headers=tokens["hubei"]).status_code == 200
    assert api.get("/v1/drills", headers=tokens["hubei"]).status_code == 403
    assert api.get("/v1/drills", headers=tokens["operator"]).status_code == 200
    assert api.get("/v1/drills", headers=tokens["agent"]).status_code == 403


def test_grants_are_listed_for_their_asker_and_decided_by_the_owner(
    api: TestClient, tokens: dict[str, dict[str, str]]
) -> None:
    hubei = api.post("/v1/datasets/gd-tax/grants", json={"reason": "flood model"}, headers=tokens["hubei"])
    assert hubei.status_code == 201
    nat = api.post("/v1/datasets/gd-tax/grants", json={"tenant": "national"}, headers=bearer(ADMIN))
    assert nat.status_code == 201

    def seen(who: str, **params: str) -> dict[str, bool]:
        r = api.get("/v1/grants", params=params, headers=tokens[who])
        assert r.status_code == 200, r.text
        return {g["tenant"]: g["can_decide"] for g in r.json()["items"]}

    assert seen("guangdong") == {"hubei": True, "national": True}  # the owner decides
    assert seen("hubei") == {"hubei": False}  # its own request only
    assert seen("national") == {"national": False}
    assert seen("operator") == {"hubei": False, "national": False}  # reads all, decides none
    assert seen("admin") == {"hubei": True, "national": True}
    item = api.get("/v1/grants", headers=tokens["hubei"]).json()["items"][0]
    assert (item["dataset_owner"], item["classification"], item["status"]) == (
        "guangdong",
        "general",
        "pending",
    )

    path = f"/v1/datasets/gd-tax/grants/{hubei.json()['id']}/approve"
    assert api.post(path, headers=tokens["guangdong"]).status_code == 200
    assert seen("guangdong", status="pending") == {"national": True}
    assert seen("guangdong", status="approved") == {"hubei": True}
    assert api.get("/v1/grants", params={"status": "maybe"}, headers=tokens["admin"]).status_code == 422
