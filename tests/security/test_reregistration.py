"""A registered cluster keeps its identity while it holds something (issue 14): re-registering
(PUT /v1/clusters/{name}) a cluster that holds catalogued data sets or active jobs with another
tenant, tier or adcode is a 422 naming each field; deregistering one that holds data sets is a
409, so the name cannot come back under another owner with their copies. Concurrent writers in
other controller processes (a scheduling cycle, a data-set registration) re-check the identity in
their own transactions. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from controller.api.app import create_app
from controller.datasets import DatasetCreate
from controller.errors import InvalidInput
from controller.jobs import JobCreate
from controller.service import Controller
from controller.settings import Settings
from controller.store import schema as t

HB_CENSUS = {
    "id": "hb-census",
    "owner": "hubei",
    "classification": "important",
    "size_bytes": 10**9,
    "locations": ["prov-hubei"],
}


@pytest.fixture
def ctl(db_url: str) -> Controller:
    return Controller(Settings(database_url=db_url, background=False))


@pytest.fixture
def api(ctl: Controller) -> Iterator[TestClient]:
    with TestClient(create_app(ctl.settings, ctl), raise_server_exceptions=False) as c:
        for name in ctl.registry.clusters:
            assert c.post(f"/v1/agents/{name}/heartbeat").status_code == 200
        yield c
    ctl.store.close()


def spec_of(ctl: Controller, name: str, **over: Any) -> dict[str, Any]:
    return {**ctl.registry.clusters[name].spec.model_dump(mode="json"), **over}


def audited(c: TestClient) -> list[str]:
    return [r["action"] for r in c.get("/v1/audit", params={"limit": 1000}).json()["items"]]


def test_a_cluster_holding_data_keeps_its_tenant_tier_and_adcode(api: TestClient, ctl: Controller) -> None:
    assert api.post("/v1/datasets", json=HB_CENSUS).status_code == 201
    before = ctl.registry.clusters["prov-hubei"].spec
    rows = len(audited(api))
    for over, fields in [
        ({"tenant": "guangdong"}, {"tenant"}),
        ({"adcode": "440000"}, {"adcode"}),
        ({"tier": "national", "tenant": "national", "adcode": None}, {"tier", "tenant", "adcode"}),
    ]:
        r = api.put("/v1/clusters/prov-hubei", json=spec_of(ctl, "prov-hubei", **over))
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert {e["path"] for e in r.json()["errors"]} == fields
        assert "hb-census" in r.json()["detail"]
    assert ctl.registry.clusters["prov-hubei"].spec == before
    with ctl.store.read() as conn:
        assert conn.execute(select(t.clusters.c.spec).where(t.clusters.c.name == "prov-hubei")).scalar() == (
            before.model_dump(mode="json")
        )
    assert len(audited(api)) == rows  # a refused change writes no audit row
    # what does not touch its identity may change
    cap = {"cpu": 123, "memory_gib": 456, "gpu": 0}
    r = api.put("/v1/clusters/prov-hubei", json=spec_of(ctl, "prov-hubei", capacity=cap))
    assert r.status_code == 200 and r.json()["capacity"]["cpu"] == 123
    # and it cannot be deregistered to come back under another identity with the copies
    r = api.delete("/v1/clusters/prov-hubei")
    assert r.status_code == 409 and "hb-census" in r.json()["detail"]
    assert api.get("/v1/clusters/prov-hubei").status_code == 200


def test_a_cluster_running_jobs_keeps_its_identity_until_they_end(api: TestClient, ctl: Controller) -> None:
    job = {"name": "j", "tenant": "hunan", "constraints": {"allow_clusters": ["prov-hunan"]}}
    jid = api.post("/v1/jobs", json=job).json()["id"]
    assert ctl.schedule_pending() == 1
    r = api.put("/v1/clusters/prov-hunan", json=spec_of(ctl, "prov-hunan", tenant="hubei"))
    assert r.status_code == 422 and [e["path"] for e in r.json()["errors"]] == ["tenant"]
    assert "1 active job(s)" in r.json()["detail"]
    assert api.post(f"/v1/jobs/{jid}/cancel").status_code == 200
    # nothing held any more: a re-purposed cluster may take another owner
    r = api.put("/v1/clusters/prov-hunan", json=spec_of(ctl, "prov-hunan", tenant="hubei"))
    assert r.status_code == 200 and r.json()["tenant"] == "hubei"
    assert audited(api)[-1] == "cluster.registered"


@pytest.fixture
def pair(db_url: str) -> Iterator[tuple[Controller, Controller]]:
    """(leader, api replica) on one database, as two processes."""
    leader = Controller(Settings(database_url=db_url, background=False, holder="leader"))
    replica = Controller(Settings(database_url=db_url, background=False, role="api", holder="api"))
    yield leader, replica
    replica.store.close()
    leader.store.close()


def hubei_2(ctl: Controller, tenant: str) -> Any:
    """A second Hubei cluster, holding nothing (so its identity may change)."""
    return ctl.registry.clusters["prov-hubei"].spec.model_copy(
        update={"name": "prov-hubei-2", "tenant": tenant}
    )


def test_a_placement_decided_before_a_re_registration_is_not_written(
    pair: tuple[Controller, Controller],
) -> None:
    """The leader decides with its view (prov-hubei-2 is Hubei's, so Hubei's important data may
    be processed there); the replica re-registers it as Guangdong's before the cycle writes. The
    cycle, re-checking in its transaction, does not place the job there."""
    leader, replica = pair
    replica.add_dataset(DatasetCreate.model_validate(HB_CENSUS))
    replica.register_cluster(hubei_2(replica, "hubei"))
    for name in replica.registry.clusters:
        replica.heartbeat(name, None)
    leader.sync_from_store()
    spec = {"name": "j", "tenant": "hubei", "inputs": ["hb-census"]}
    plan = leader.plan(
        JobCreate.model_validate({**spec, "constraints": {"allow_clusters": ["prov-hubei-2"]}})
    )
    assert plan.cluster == "prov-hubei-2"  # allowed while it is Hubei's
    job, _ = replica.submit(
        JobCreate.model_validate({**spec, "constraints": {"allow_clusters": ["prov-hubei-2"]}})
    )
    replica.register_cluster(hubei_2(replica, "guangdong"))  # holds nothing yet: allowed
    assert leader.registry.clusters["prov-hubei-2"].spec.tenant == "hubei"  # not synced yet
    assert leader.schedule_pending() == 0
    assert leader.get_job(job.id).phase.value == "Pending"
    with leader.store.read() as conn:
        assert conn.execute(select(t.decisions).where(t.decisions.c.job_id == job.id)).first() is None
    leader.sync_from_store()
    leader.schedule_pending()
    after = leader.get_job(job.id)
    assert after.phase.value == "Pending" and "important data hb-census" in after.message


def test_a_copy_catalogued_against_a_stale_view_is_refused(pair: tuple[Controller, Controller]) -> None:
    leader, replica = pair
    replica.register_cluster(hubei_2(replica, "hubei"))
    leader.sync_from_store()
    replica.register_cluster(hubei_2(replica, "guangdong"))
    ds = DatasetCreate.model_validate({**HB_CENSUS, "locations": ["prov-hubei-2"]})
    with pytest.raises(InvalidInput, match="residency floor") as err:
        leader.add_dataset(ds)  # its view still says Hubei's: the stored spec decides
    assert err.value.errors[0]["path"] == "locations[0]"
    assert "hb-census" not in leader.datasets and leader.store.get_dataset("hb-census") is None


def test_re_registrations_racing_placements_never_leave_a_job_under_another_owner(
    pair: tuple[Controller, Controller],
) -> None:
    """The replica keeps flipping prov-hubei-2 between Hubei and Guangdong while the leader keeps
    placing Hubei jobs on Hubei's important data there (and cancelling them, so flips can
    succeed). At every check, an active job on prov-hubei-2 means it is Hubei's; nothing
    deadlocks and nothing but the 422 is raised."""
    leader, replica = pair
    replica.add_dataset(DatasetCreate.model_validate(HB_CENSUS))
    replica.register_cluster(hubei_2(replica, "hubei"))
    for name in replica.registry.clusters:
        replica.heartbeat(name, None)
    leader.sync_from_store()
    spec = JobCreate.model_validate(
        {
            "name": "j",
            "tenant": "hubei",
            "inputs": ["hb-census"],
            "constraints": {"allow_clusters": ["prov-hubei-2"]},
        }
    )
    stop = threading.Event()
    errors: list[BaseException] = []
    flips = {"done": 0, "refused": 0}

    def flip() -> None:
        tenants = ["guangdong", "hubei"]
        while not stop.is_set():
            try:
                replica.register_cluster(hubei_2(replica, tenants[flips["done"] % 2]))
                flips["done"] += 1
            except InvalidInput:
                flips["refused"] += 1
            except BaseException as exc:
                errors.append(exc)
                return

    flipper = threading.Thread(target=flip)
    flipper.start()
    placed = 0
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline and not errors:
            leader.submit(spec)
            leader.sync_from_store()
            placed += leader.schedule_pending()
            with leader.store.tx() as conn:  # the row locked: no flip between the two reads
                tenant = leader.store.cluster_specs(conn, ["prov-hubei-2"], lock="update")["prov-hubei-2"][
                    "tenant"
                ]
                active = leader.store.count_active_on("prov-hubei-2", conn)
            assert not active or tenant == "hubei", (active, tenant)
            if placed % 2 == 0:
                for row in leader.store.active_on_cluster("prov-hubei-2"):
                    leader.cancel(row["id"])
    finally:
        stop.set()
        flipper.join(timeout=30)
    assert not errors, errors
    assert not flipper.is_alive()
    assert placed and flips["done"] and flips["refused"], (placed, flips)
