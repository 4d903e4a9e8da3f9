"""REST API v1 for jobs: creation, idempotency, listing, cancel, decisions, plan, problem+json."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

PROBLEM = "application/problem+json"


def job(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "report", "tenant": "guangdong", "resources": {"cpu": 2, "memory_gib": 4}}
    body.update(over)
    return body


def add_dataset(c: TestClient, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "gd-tax",
        "owner": "guangdong",
        "size_bytes": 10**11,
        "classification": "important",
        "locations": ["prov-guangdong"],
    }
    body.update(over)
    r = c.post("/v1/datasets", json=body)
    assert r.status_code in (200, 201), r.text
    return r.json()


def test_create_returns_201_and_the_committed_job(ready: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    r = ready.post("/v1/jobs", json=job())
    assert r.status_code == 201
    body = r.json()
    assert body["phase"] == "Pending" and body["attempt"] == 1
    assert r.headers["location"] == f"/v1/jobs/{body['id']}"
    # Committed: a second store on the same database sees it.
    from controller.store import Store

    other = Store(app.state.settings.database_url, migrate=False)
    assert other.get_job(body["id"])["phase"] == "Pending"
    other.close()


def test_idempotency_key_replays_the_same_job(ready: TestClient) -> None:
    first = ready.post("/v1/jobs", json=job(), headers={"Idempotency-Key": "abc-1"})
    again = ready.post("/v1/jobs", json=job(), headers={"Idempotency-Key": "abc-1"})
    assert first.status_code == 201 and again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert first.json()["id"] == again.json()["id"]
    assert len(ready.get("/v1/jobs").json()["items"]) == 1
    # The same key with another body is a conflict, not a silent replay.
    other = ready.post("/v1/jobs", json=job(priority=7), headers={"Idempotency-Key": "abc-1"})
    assert other.status_code == 409 and other.headers["content-type"] == PROBLEM
    # Keys are per tenant.
    third = ready.post("/v1/jobs", json=job(tenant="zhejiang"), headers={"Idempotency-Key": "abc-1"})
    assert third.status_code == 201 and third.json()["id"] != first.json()["id"]


@pytest.mark.parametrize(
    ("body", "paths"),
    [
        ({"tenant": "guangdong"}, {"name"}),
        (job(name="Bad Name!"), {"name"}),
        (job(resources={"cpu": 0}), {"resources.cpu"}),
        (job(resources={"cpu": 1, "gpu": -1}), {"resources.gpu"}),
        (job(replicas=0, priority=-1), {"replicas", "priority"}),
        (job(inputs=["a", "a"]), {"(body)"}),
        (job(unknown_field=1), {"unknown_field"}),
        (job(constraints={"allow_clusters": ["NOT VALID"]}), {"constraints.allow_clusters[0]"}),
        (job(runtime={"kind": "spark"}), {"runtime"}),
        ([1, 2, 3], {"(body)"}),
        ("just a string", {"(body)"}),
    ],
)
def test_bad_jobs_get_problem_details_listing_each_field(
    ready: TestClient, body: Any, paths: set[str]
) -> None:
    r = ready.post("/v1/jobs", json=body)
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    p = r.json()
    assert p["status"] == 422 and p["title"] and p["type"].startswith("https://")
    assert {e["path"] for e in p["errors"]} == paths


def test_unknown_input_dataset_is_422_naming_it(ready: TestClient) -> None:
    r = ready.post("/v1/jobs", json=job(inputs=["nope"]))
    assert r.status_code == 422
    assert r.json()["errors"] == [{"path": "inputs[0]", "message": "unknown data set 'nope'"}]


UNKNOWN_NAMES = job(
    tenant="atlantis",
    constraints={
        "allow_clusters": ["prov-guangdong", "prov-atlantis"],
        "deny_clusters": ["prov-nowhere"],
        "prefer_clusters": ["dept-ghost"],
    },
)
UNKNOWN_PATHS = {
    "tenant",
    "constraints.allow_clusters[1]",
    "constraints.deny_clusters[0]",
    "constraints.prefer_clusters[0]",
}


@pytest.mark.parametrize("path", ["fast", "route"])
def test_unknown_tenant_and_clusters_are_422_naming_each_on_both_paths(
    ready: TestClient, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from controller.api.fastpath import FastSubmit

    handled: list[bool] = []
    original = FastSubmit._try

    async def spy(self, scope, body, send):  # type: ignore[no-untyped-def]
        handled.append(await original(self, scope, body, send))
        return handled[-1]

    monkeypatch.setattr(FastSubmit, "_try", spy)
    # A repeated header makes the raw-ASGI fast path hand the request to the FastAPI route.
    headers = [("x-probe", "1"), ("x-probe", "2")] if path == "route" else []
    r = ready.post("/v1/jobs", json=UNKNOWN_NAMES, headers=headers)
    assert handled == [path == "fast"]
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    errors = {e["path"]: e["message"] for e in r.json()["errors"]}
    assert set(errors) == UNKNOWN_PATHS
    assert errors["tenant"].startswith("unknown tenant 'atlantis'")
    assert errors["constraints.allow_clusters[1]"] == "unknown cluster 'prov-atlantis'"
    assert ready.get("/v1/jobs").json()["items"] == []  # nothing was created
    # /v1/plan names them the same way; known names pass.
    assert {e["path"] for e in ready.post("/v1/plan", json=UNKNOWN_NAMES).json()["errors"]} == UNKNOWN_PATHS
    good = job(constraints={"allow_clusters": ["prov-guangdong"], "deny_clusters": ["prov-hubei"]})
    assert ready.post("/v1/jobs", json=good, headers=headers).status_code == 201


def test_malformed_json_is_400(ready: TestClient) -> None:
    r = ready.post("/v1/jobs", content=b'{"name": ', headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.headers["content-type"] == PROBLEM
    assert "not valid JSON" in r.json()["detail"]


def test_oversized_body_is_413(ready: TestClient) -> None:
    big = b'{"name": "' + b"x" * (2 << 20) + b'"}'
    r = ready.post("/v1/jobs", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.headers["content-type"] == PROBLEM

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b"x" * 65536

    r = ready.post("/v1/jobs", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_unknown_job_and_route_are_404_problems(ready: TestClient) -> None:
    for path in ("/v1/jobs/doesnotexist", "/v1/jobs/doesnotexist/decision", "/v1/nothing"):
        r = ready.get(path)
        assert r.status_code == 404 and r.headers["content-type"] == PROBLEM


def test_list_filters_and_cursor_pagination(ready: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    ids = [
        ready.post("/v1/jobs", json=job(name=f"j{i}", tenant="guangdong" if i % 2 else "hubei")).json()["id"]
        for i in range(7)
    ]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = ready.get("/v1/jobs", params=params).json()
        seen += [j["id"] for j in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ids and pages == 3
    hubei = ready.get("/v1/jobs", params={"tenant": "hubei"}).json()["items"]
    assert [j["id"] for j in hubei] == ids[0::2]
    app.state.controller.schedule_pending()
    scheduled = ready.get("/v1/jobs", params={"phase": "Scheduled", "cluster": "prov-guangdong"}).json()[
        "items"
    ]
    assert scheduled and all(j["cluster"] == "prov-guangdong" for j in scheduled)
    assert ready.get("/v1/jobs", params={"phase": "Bogus"}).status_code == 422
    assert ready.get("/v1/jobs", params={"cursor": "!!!"}).status_code == 422
    assert ready.get("/v1/jobs", params={"limit": 0}).status_code == 422


def test_cancel_and_illegal_transition(ready: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    jid = ready.post("/v1/jobs", json=job()).json()["id"]
    r = ready.post(f"/v1/jobs/{jid}/cancel")
    assert r.status_code == 200 and r.json()["phase"] == "Cancelled"
    again = ready.post(f"/v1/jobs/{jid}/cancel")
    assert again.status_code == 409
    assert again.json()["type"].endswith("illegal-transition")
    assert "Cancelled" in again.json()["detail"]
    events = [e["type"] for e in ready.get(f"/v1/jobs/{jid}").json()["events"]]
    assert events == ["Submitted", "Cancelled"]


def test_cancel_releases_reserved_capacity(ready: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    ctl = app.state.controller
    jid = ready.post("/v1/jobs", json=job(resources={"cpu": 100})).json()["id"]
    ctl.schedule_pending()
    cluster = ready.get(f"/v1/jobs/{jid}").json()["cluster"]
    assert ready.get(f"/v1/clusters/{cluster}").json()["allocated"]["cpu"] == 100
    ready.post(f"/v1/jobs/{jid}/cancel")
    assert ready.get(f"/v1/clusters/{cluster}").json()["allocated"]["cpu"] == 0


def test_decision_is_stored_with_scores_and_reasons(ready: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    add_dataset(ready)
    jid = ready.post("/v1/jobs", json=job(inputs=["gd-tax"])).json()["id"]
    app.state.controller.schedule_pending()
    d = ready.get(f"/v1/jobs/{jid}/decision").json()
    assert d["cluster"] == "prov-guangdong" and d["status"] == "Scheduled"
    assert {f["cluster"] for f in d["feasible"]} == {"prov-guangdong", "national-primary", "national-backup"}
    assert d["feasible"][0]["cluster"] == "prov-guangdong"
    assert set(d["feasible"][0]["scores"]) == {"locality", "constraints", "balance", "green"}
    assert len(d["rejected"]) == 39 and {r["plugin"] for r in d["rejected"]} == {"residency"}
    assert d["summary"].startswith("3/42 clusters are available; chose prov-guangdong: 39 residency (")
    assert ready.get(f"/v1/jobs/{jid}").json()["phase"] == "Scheduled"


def test_unplaceable_job_waits_with_every_reason(ready: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    add_dataset(ready)
    ready.post("/v1/clusters/national-primary/cordon")
    jid = ready.post(
        "/v1/jobs", json=job(tenant="national", inputs=["gd-tax"], resources={"cpu": 4000}, replicas=4)
    ).json()["id"]
    app.state.controller.schedule_pending()
    j = ready.get(f"/v1/jobs/{jid}").json()
    assert j["phase"] == "Pending"
    d = ready.get(f"/v1/jobs/{jid}/decision").json()
    assert d["cluster"] is None and d["feasible"] == []
    assert d["summary"].startswith("0/42 clusters are available: 39 residency")
    assert "1 health (cluster is cordoned)" in d["summary"]
    assert "gang (the gang of all replicas does not fit the cluster even when empty)" in d["summary"]
    assert j["message"] == d["summary"]


def test_plan_answers_without_creating_anything(ready: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    add_dataset(ready)
    before = ready.get("/v1/clusters/prov-guangdong").json()["allocated"]
    r = ready.post("/v1/plan", json=job(inputs=["gd-tax"]))
    assert r.status_code == 200
    assert r.json()["cluster"] == "prov-guangdong" and r.json()["job_id"] is None
    assert ready.get("/v1/jobs").json()["items"] == []
    assert ready.get("/v1/clusters/prov-guangdong").json()["allocated"] == before
    assert ready.post("/v1/plan", json={"name": 1}).status_code == 422


def test_openapi_health_ready_metrics(ready: TestClient) -> None:
    spec = ready.get("/openapi.json").json()
    for path in (
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/cancel",
        "/v1/jobs/{job_id}/decision",
        "/v1/plan",
        "/v1/clusters",
        "/v1/clusters/{name}",
        "/v1/clusters/{name}/cordon",
        "/v1/clusters/{name}/uncordon",
        "/v1/clusters/{name}/drain",
        "/v1/datasets",
        "/v1/datasets/{ds_id}",
        "/v1/policies",
        "/v1/policies/{kind}",
        "/v1/agents/{cluster}/heartbeat",
        "/v1/agents/{cluster}/assignments",
        "/v1/agents/{cluster}/status",
    ):
        assert path in spec["paths"], path
    assert ready.get("/healthz").json() == {"status": "ok"}
    assert ready.get("/readyz").json()["leader"] is True
    ready.post("/v1/jobs", json=job())
    text = ready.get("/metrics").text
    assert 'yiwang_jobs{phase="Pending"} 1.0' in text
    assert 'yiwang_cluster_up{cluster="prov-xpcc"} 1.0' in text


def test_metrics_say_when_the_shared_database_does_not_answer(ready: TestClient, app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A store that fails is reported as yiwang_store_up 0 (alert YiwangNationalStoreDegraded), not as
    a failed scrape (which would read as the controller being down); the in-memory series remain."""
    assert "yiwang_store_up 1.0" in ready.get("/metrics").text
    store = app.state.controller.store

    def unreachable() -> dict[str, int]:
        raise OSError("connection refused")

    monkeypatch.setattr(store, "count_jobs_by_phase", unreachable)
    r = ready.get("/metrics")
    assert r.status_code == 200
    assert "yiwang_store_up 0.0" in r.text
    assert "yiwang_jobs{" not in r.text
    assert 'yiwang_cluster_up{cluster="prov-xpcc"} 1.0' in r.text
    assert "yiwang_fenced_executions_total 0.0" in r.text


def test_is_known_tenant_agrees_with_the_set_of_known_tenants(ready: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    """The per-request check (no set built) names exactly the tenants ``known_tenants`` lists: the
    clusters' and the quota policy's."""
    sub = app.state.controller.submission
    known = sub.known_tenants()
    cluster_only = {s.spec.tenant for s in sub.registry.clusters.values()} - set(sub.policies().quota.tenants)
    assert known and cluster_only  # both sources are exercised
    for tenant in known | {"atlantis", "", "guangdong-x"}:
        assert sub.is_known_tenant(tenant) == (tenant in known), tenant
