"""An agent's assignment listing (``GET /v1/agents/{cluster}/assignments``) is joined from each
attempt's entry kept serialised (``AgentProtocol.assignments_json``, ``AssignmentCache``). What
it must answer is what building every ``Assignment`` afresh from the job rows answered; a
cancelled job leaves the list, a re-placed one comes back as its new attempt, each poll carries
its own lease, and the cache stays within its bound without changing the answer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from controller.assignments import Assignment
from controller.jobs import JobCreate, stored_spec
from controller.service import Controller
from controller.services.agents import AssignmentCache

CLUSTER = "prov-hubei"


def _submit(ctl: Controller, n: int) -> list[str]:
    """Jobs on the cluster; every other one reads a data set of its tenant, when there is one."""
    own = sorted(d.id for d in ctl.datasets.values() if d.owner == "hubei")[:1]
    ids = []
    for i in range(n):
        spec = {
            "name": f"a{i}",
            "tenant": "hubei",
            "resources": {"cpu": 0.01 * (1 + i % 3), "memory_gib": 0.0},
            "constraints": {"allow_clusters": [CLUSTER]},
            "runtime": {"command": ["python", "-c", f"print({i})"], "env": {"I": str(i)}},
            "inputs": own if i % 2 else [],
            "priority": 100 + i,
        }
        ids.append(ctl.submit(JobCreate.model_validate(spec))[0].id)
    return ids


def _afresh(ctl: Controller) -> list[dict[str, Any]]:
    """The listing as it was built before the cache: every row's Assignment made anew."""
    state = ctl.registry.clusters[CLUSTER]
    lease = state.last_heartbeat + timedelta(seconds=ctl.agents.failover().lease_s)  # type: ignore[operator]
    out = []
    for row in ctl.store.active_on_cluster(CLUSTER, limit=1000):
        spec = stored_spec(row["spec"])
        out.append(
            Assignment(
                job_id=row["id"],
                attempt=row["attempt"],
                epoch=row["epoch"] or ctl.agents.epoch(),
                cluster=CLUSTER,
                tenant=row["tenant"],
                spec=spec,
                lease_expires_at=lease,
                inputs={d: f"yiwang://{CLUSTER}/datasets/{d}" for d in spec.inputs},
            ).model_dump(mode="json")
        )
    return out


def _listed(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    r = client.get(f"/v1/agents/{CLUSTER}/assignments", params={"limit": 1000, **params})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body: list[dict[str, Any]] = r.json()
    return body


def test_the_listing_is_what_building_each_assignment_afresh_gives(ready: TestClient, app: Any) -> None:
    ctl: Controller = app.state.controller
    body = {
        "id": "hb-stats",
        "owner": "hubei",
        "size_bytes": 123,
        "classification": "general",
        "locations": [CLUSTER],
    }
    assert ready.post("/v1/datasets", json=body).status_code == 201  # every other entry reads it
    ids = _submit(ctl, 12)
    assert ctl.schedule_pending() == 12
    first = _listed(ready)
    assert first == _afresh(ctl) and sorted(a["job_id"] for a in first) == sorted(ids)
    assert sum(1 for a in first if a["inputs"] == {"hb-stats": f"yiwang://{CLUSTER}/datasets/hb-stats"}) == 6
    assert _listed(ready) == first  # the second poll, from the cache
    assert ctl.agents.cache.hits >= 12
    # pages: after the fifth id, the rest
    page = _listed(ready, limit=5)
    rest = _listed(ready, after=page[-1]["job_id"])
    assert page + rest == first
    # the service's own list is the same objects
    assert [a.model_dump(mode="json") for a in ctl.assignments(CLUSTER, limit=1000)] == first


def test_cancel_replace_and_a_new_lease_show_at_the_next_poll(ready: TestClient, app: Any) -> None:
    ctl: Controller = app.state.controller
    a, b, c = _submit(ctl, 3)
    assert ctl.schedule_pending() == 3
    before = {x["job_id"]: x for x in _listed(ready)}
    ctl.cancel(a)
    assert ready.post(f"/v1/agents/{CLUSTER}/heartbeat").status_code == 200  # a later lease
    ctl.registry.clusters[CLUSTER].last_heartbeat += timedelta(seconds=1)  # type: ignore[operator]
    ctl.drain(CLUSTER)  # b and c go back to Pending as attempt 2
    ctl.set_cordon(CLUSTER, False)
    assert ctl.schedule_pending() == 2
    after = {x["job_id"]: x for x in _listed(ready)}
    assert set(after) == {b, c}
    assert all(after[j]["attempt"] == before[j]["attempt"] + 1 for j in (b, c))
    assert all(after[j]["lease_expires_at"] > before[j]["lease_expires_at"] for j in (b, c))
    assert list(after.values()) == _afresh(ctl)


def test_a_small_cache_changes_nothing_but_its_size(ready: TestClient, app: Any) -> None:
    ctl: Controller = app.state.controller
    ctl.agents.cache = AssignmentCache(maxsize=3)
    _submit(ctl, 10)
    assert ctl.schedule_pending() == 10
    for _ in range(2):
        assert _listed(ready) == _afresh(ctl)
        assert len(ctl.agents.cache.data) == 3
