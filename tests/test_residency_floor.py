"""The residency floor no call can lower (issue 14): core data runs only where a copy is; important
data only on its owner's clusters or the national nodes. Enforced in the policies (a looser PUT is
a 422 naming the rule, a loosened stored policy is not loaded), in the scheduler whatever the
plugin list says, in the catalogue and in failover. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from controller.api.app import create_app
from controller.datasets import Classification
from controller.policies import Movement, PlacementPolicy, ResidencyPolicy
from controller.scheduler.scheduler import Scheduler
from controller.service import Controller
from controller.settings import Settings
from controller.store import Store

PROBLEM = "application/problem+json"


@pytest.fixture
def env(db_url: str) -> Iterator[tuple[TestClient, Controller, Settings]]:
    s = Settings(database_url=db_url, background=False)
    app = create_app(s)
    ctl: Controller = app.state.controller
    with TestClient(app, raise_server_exceptions=False) as c:
        for name in ctl.registry.clusters:
            assert c.post(f"/v1/agents/{name}/heartbeat").status_code == 200
        yield c, ctl, s
    ctl.store.close()


def dataset(id_: str, owner: str, cls: str, *locations: str) -> dict[str, Any]:
    return {
        "id": id_,
        "owner": owner,
        "size_bytes": 10**9,
        "classification": cls,
        "locations": list(locations),
    }


def job(tenant: str, *inputs: str, **over: Any) -> dict[str, Any]:
    return {
        "name": "j",
        "tenant": tenant,
        "inputs": list(inputs),
        "resources": {"cpu": 1, "memory_gib": 1},
        **over,
    }


def floor_problem(r: Any, path: str) -> None:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    errors = r.json()["errors"]
    assert any(e["path"].startswith(path) and "residency floor" in e["message"] for e in errors), errors


@pytest.mark.parametrize(
    "movement",
    [
        {"core": "anywhere", "important": "owner_or_national", "general": "anywhere"},
        {"core": "owner_or_national", "important": "owner_or_national", "general": "anywhere"},
        {"core": "none", "important": "anywhere", "general": "anywhere"},
    ],
)
def test_a_residency_policy_below_the_floor_is_refused(
    env: tuple[TestClient, Controller, Settings], movement: dict[str, str]
) -> None:
    c, ctl, _ = env
    before = c.get("/v1/policies").json()["residency"]
    floor_problem(c.put("/v1/policies/residency", json={"movement": movement}), "movement")
    assert c.get("/v1/policies").json()["residency"] == before
    assert ctl.policies.residency.rule(Classification.core) is Movement.none


def test_policies_may_tighten_the_floor(env: tuple[TestClient, Controller, Settings]) -> None:
    c, ctl, _ = env
    tight = {"movement": {"core": "none", "important": "none", "general": "owner_or_national"}}
    assert c.put("/v1/policies/residency", json=tight).status_code == 200
    assert ctl.policies.residency.rule(Classification.general) is Movement.owner_or_national
    # tightened general data: copies only with the owner or the national nodes
    floor_problem(
        c.post("/v1/datasets", json=dataset("hb-gen", "hubei", "general", "prov-guangdong")), "locations[0]"
    )


def test_a_placement_policy_without_residency_is_refused(
    env: tuple[TestClient, Controller, Settings],
) -> None:
    c, _, _ = env
    placement = c.get("/v1/policies").json()["placement"]
    without = {**placement, "filters": [f for f in placement["filters"] if f != "residency"]}
    floor_problem(c.put("/v1/policies/placement", json=without), "filters")
    assert "residency" in c.get("/v1/policies").json()["placement"]["filters"]


def test_a_loosened_stored_policy_is_not_loaded(db_url: str) -> None:
    """A superuser edits the stored residency policy to ``core: anywhere``: the next start
    refuses it and runs on policies/residency.yaml."""
    s = Settings(database_url=db_url, background=False)
    Controller(s).store.close()
    store = Store(db_url)
    loose = {"version": 1, "movement": {"core": "anywhere", "important": "anywhere", "general": "anywhere"}}
    with store.tx() as conn:
        conn.execute(text("UPDATE policies SET body = :b WHERE kind = 'residency'"), {"b": json.dumps(loose)})
    store.close()
    ctl = Controller(s)
    try:
        assert ctl.policies.residency.rule(Classification.core) is Movement.none
        assert ctl.policies.residency.rule(Classification.important) is Movement.owner_or_national
    finally:
        ctl.store.close()


def test_the_scheduler_applies_residency_whatever_the_plugin_list(
    env: tuple[TestClient, Controller, Settings],
) -> None:
    c, ctl, _ = env
    assert (
        c.post("/v1/datasets", json=dataset("sc-core", "sichuan", "core", "prov-sichuan")).status_code == 201
    )
    assert (
        c.post("/v1/datasets", json=dataset("gd-imp", "guangdong", "important", "prov-guangdong")).status_code
        == 201
    )
    # A plugin list without residency and a residency policy below the floor, both built
    # without validation (as a bug or a hand-made object would): the floor still holds.
    ctl.scheduler = Scheduler.from_policy(
        PlacementPolicy.model_construct(filters=["health", "capacity"], scores=[])
    )
    ctl.policies.residency = ResidencyPolicy.model_construct(
        movement={Classification.core: Movement.anywhere, Classification.important: Movement.anywhere}
    )
    assert [f.NAME for f in ctl.scheduler.filters] == ["health", "residency", "capacity"]
    plan = c.post("/v1/plan", json=job("sichuan", "sc-core"))
    assert plan.status_code == 200 and plan.json()["cluster"] == "prov-sichuan", plan.text
    imp = c.post("/v1/plan", json=job("guangdong", "gd-imp")).json()
    assert imp["cluster"] in {"prov-guangdong", "national-primary", "national-backup"}
    jobs = [c.post("/v1/jobs", json=job("sichuan", "sc-core")).json()["id"] for _ in range(3)]
    jobs += [c.post("/v1/jobs", json=job("guangdong", "gd-imp")).json()["id"] for _ in range(3)]
    ctl.schedule_pending()  # the batch scheduler
    placed = {jid: c.get(f"/v1/jobs/{jid}").json()["cluster"] for jid in jobs}
    assert all(placed[j] == "prov-sichuan" for j in jobs[:3]), placed
    assert all(placed[j] in {"prov-guangdong", "national-primary", "national-backup"} for j in jobs[3:]), (
        placed
    )


def test_the_catalogue_refuses_copies_the_floor_forbids(env: tuple[TestClient, Controller, Settings]) -> None:
    c, _, _ = env
    floor_problem(
        c.post(
            "/v1/datasets", json=dataset("gd-tax", "guangdong", "important", "prov-guangdong", "prov-hubei")
        ),
        "locations[1]",
    )
    floor_problem(
        c.post("/v1/datasets", json=dataset("sc-core", "sichuan", "core", "prov-guangdong")), "locations[0]"
    )
    assert c.get("/v1/datasets/gd-tax").status_code == 404
    legal = dataset("gd-tax", "guangdong", "important", "prov-guangdong", "national-backup")
    assert c.post("/v1/datasets", json=legal).status_code == 201
    assert (
        c.post("/v1/datasets", json=dataset("sc-core", "sichuan", "core", "national-primary")).status_code
        == 201
    )
    assert (
        c.post("/v1/datasets", json=dataset("hb-gen", "hubei", "general", "prov-guangdong")).status_code
        == 201
    )


def test_failover_replaces_within_the_floor(env: tuple[TestClient, Controller, Settings]) -> None:
    """prov-guangdong's first designated backup is prov-hubei; its important and core jobs must not
    go there when it is drained: re-placement runs the same scheduler and the residency filter."""
    c, ctl, _ = env
    failover = c.get("/v1/policies").json()["failover"]
    failover["backups"] = {"prov-guangdong": ["prov-hubei", "national-backup"]}
    assert c.put("/v1/policies/failover", json=failover).status_code == 200
    assert (
        c.post("/v1/datasets", json=dataset("gd-imp", "guangdong", "important", "prov-guangdong")).status_code
        == 201
    )
    assert (
        c.post("/v1/datasets", json=dataset("gd-core", "guangdong", "core", "prov-guangdong")).status_code
        == 201
    )
    assert (
        c.post("/v1/datasets", json=dataset("gd-gen", "guangdong", "general", "prov-guangdong")).status_code
        == 201
    )
    here = {"constraints": {"prefer_clusters": ["prov-guangdong"]}}
    ids = {
        name: c.post("/v1/jobs", json=job("guangdong", name, **here)).json()["id"]
        for name in ("gd-imp", "gd-core", "gd-gen")
    }
    ctl.schedule_pending()
    assert {c.get(f"/v1/jobs/{j}").json()["cluster"] for j in ids.values()} == {"prov-guangdong"}
    assert c.post("/v1/clusters/prov-guangdong/drain").json()["requeued_jobs"] == 3
    ctl.schedule_pending()
    after = {name: c.get(f"/v1/jobs/{j}").json() for name, j in ids.items()}
    assert after["gd-gen"]["cluster"] == "prov-hubei"  # the designated backup, where the law allows it
    assert after["gd-imp"]["cluster"] == "national-backup", after["gd-imp"]
    assert after["gd-core"]["phase"] == "Pending" and after["gd-core"]["cluster"] is None
    decision = c.get(f"/v1/jobs/{ids['gd-core']}/decision").json()
    assert "core data gd-core has no copy here and never moves" in decision["summary"]
