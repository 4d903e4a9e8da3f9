"""POST /v1/plan answers what the next scheduling cycle would decide for the job, quota included."""

from __future__ import annotations

import random
from typing import Any

from fastapi.testclient import TestClient

from controller.service import Controller


def job(tenant: str, cpu: float, replicas: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "name": "big",
        "tenant": tenant,
        "resources": {"cpu": cpu, "memory_gib": 1},
        "replicas": replicas,
        **extra,
    }


def submit(c: TestClient, body: dict[str, Any]) -> str:
    r = c.post("/v1/jobs", json=body)
    assert r.status_code == 201, r.text
    job_id: str = r.json()["id"]
    return job_id


def test_plan_refuses_a_job_over_its_tenants_quota_as_the_cycle_does(ready: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    """Hebei (quota.yaml's default: 2,000 nominal + 6,000 borrowable cores) asks for 3 x 3,000 cores:
    a national node could hold them, the quota never will."""
    over = job("hebei", 3000, replicas=3, constraints={"allow_clusters": ["national-primary"]})
    plan = ready.post("/v1/plan", json=over).json()
    job_id = submit(ready, over)
    ctl: Controller = app.state.controller
    assert ctl.schedule_pending() == 0
    stored = ready.get(f"/v1/jobs/{job_id}/decision").json()
    assert stored["status"] == "UnschedulableAndUnresolvable" and stored["cluster"] is None
    assert {r["plugin"] for r in stored["rejected"]} >= {"quota"}
    assert (plan["status"], plan["cluster"], plan["summary"]) == (
        stored["status"],
        stored["cluster"],
        stored["summary"],
    )
    assert plan["rejected"] == stored["rejected"]
    assert plan["job_id"] is None


def test_plan_counts_the_tenants_placed_work(ready: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    """6,000 cores placed leave Hebei 2,000 under its ceiling: 3,000 more wait (quota, may fit later),
    1,000 more fit."""
    ctl: Controller = app.state.controller
    submit(ready, job("hebei", 3000, replicas=2, constraints={"allow_clusters": ["national-primary"]}))
    assert ctl.schedule_pending() == 1
    plan = ready.post("/v1/plan", json=job("hebei", 3000)).json()
    assert plan["status"] == "Unschedulable" and plan["cluster"] is None
    assert any(r["plugin"] == "quota" for r in plan["rejected"])
    assert "tenant hebei would exceed its quota of cpu" in plan["summary"]
    fits = ready.post("/v1/plan", json=job("hebei", 1000)).json()
    assert fits["status"] == "Scheduled" and fits["cluster"] is not None
    tenants = {t["tenant"]: t for t in ready.get("/v1/tenants").json()["items"]}
    assert tenants["hebei"]["used"]["cpu"] == 6000  # the plans reserved nothing


STEPS = 60


def test_plan_and_the_cycle_agree_through_a_changing_federation(ready: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    """Seeded random steps on one controller (quota tightened so it bites): clusters cordoned
    and uncordoned, placed jobs cancelled, data sets registered; at each step a random job is
    planned, then submitted alone and decided by the leader's cycle. The stored decision is the
    plan (cluster, status, summary, every reason and score)."""
    ctl: Controller = app.state.controller
    rng = random.Random(11)
    quota = ready.get("/v1/policies").json()["quota"]
    quota["default"] = {"nominal": {"cpu": 300, "memory_gib": 3000}, "borrowing_limit": {"cpu": 500}}
    assert ready.put("/v1/policies/quota", json=quota).status_code == 200
    clusters = sorted(ctl.registry.clusters)
    tenants = ["guangdong", "hubei", "sichuan", "hebei"]  # a few, so their usage builds up
    for k, (owner, cls) in enumerate([("guangdong", "important"), ("sichuan", "core"), ("hubei", "general")]):
        home = next(c for c in clusters if ctl.registry.clusters[c].spec.tenant == owner)
        body = {
            "id": f"ds-{k}",
            "owner": owner,
            "size_bytes": 10**11,
            "classification": cls,
            "locations": [home],
        }
        assert ready.post("/v1/datasets", json=body).status_code == 201
    placed: list[str] = []
    seen: set[str] = set()
    for step in range(STEPS):
        roll = rng.random()
        if roll < 0.15:
            name = rng.choice(clusters)
            assert ready.post(f"/v1/clusters/{name}/{rng.choice(['cordon', 'uncordon'])}").status_code == 200
        elif roll < 0.3 and placed:
            assert ready.post(f"/v1/jobs/{placed.pop(rng.randrange(len(placed)))}/cancel").status_code == 200
        body = job(
            rng.choice(tenants),
            rng.choice([1, 16, 128, 400, 2048]),
            replicas=rng.choice([1, 1, 2]),
            inputs=rng.sample(["ds-0", "ds-1", "ds-2"], rng.choice([0, 0, 1])),
            priority=rng.choice([0, 100, 1000]),
        )
        plan = ready.post("/v1/plan", json=body)
        assert plan.status_code == 200, plan.text
        job_id = submit(ready, body)
        ctl.schedule_pending()
        stored = ready.get(f"/v1/jobs/{job_id}/decision").json()
        for key in ("status", "cluster", "summary", "rejected", "feasible"):
            assert plan.json()[key] == stored[key], f"step {step}: {key}"
        if stored["cluster"] is None:
            assert ready.post(f"/v1/jobs/{job_id}/cancel").status_code == 200  # the next job goes alone
            seen.add(stored["status"])
        else:
            placed.append(job_id)
            seen.add("Scheduled")
        seen |= {r["plugin"] for r in stored["rejected"]}
    assert {"Scheduled", "Unschedulable", "quota", "health", "residency"} <= seen, seen
