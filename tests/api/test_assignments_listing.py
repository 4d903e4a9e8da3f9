"""An agent's assignment listing (``GET /v1/agents/{cluster}/assignments``) is joined from each
attempt's entry kept serialised (``AgentProtocol.assignments_json``, ``AssignmentCache``). What
it must answer is what building every ``Assignment`` afresh from the job rows answered; a
cancelled job leaves the list, a re-placed one comes back as its new attempt, each poll carries
its own lease, and the cache stays within its bound without changing the answer. Each page
carries a weak ETag over the attempts it lists: sent back in ``If-None-Match`` it gets a 304
while the page lists the same attempts (a new lease alone changes nothing), and the page anew
when a job is placed, cancelled, re-placed or finished, or another leader answers; an agent
keeps its pages and asks with their tags."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from fastapi.testclient import TestClient

from controller.agent import Agent
from controller.assignments import Assignment, StatusReport
from controller.executors.simulated import SimNode, SimulatedExecutor
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


def _get(client: TestClient, tag: str | None = None, **params: Any) -> httpx.Response:
    headers = {"If-None-Match": tag} if tag else {}
    return client.get(f"/v1/agents/{CLUSTER}/assignments", params={"limit": 1000, **params}, headers=headers)


def test_a_page_is_answered_304_while_it_lists_the_same_attempts(ready: TestClient, app: Any) -> None:
    ctl: Controller = app.state.controller
    a, b, c, d = _submit(ctl, 4)
    assert ctl.schedule_pending() == 4
    first = _get(ready)
    tag = first.headers["etag"]
    assert first.status_code == 200 and tag.startswith('W/"') and len(first.json()) == 4
    again = _get(ready, tag)
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tag
    # a later lease alone (a heartbeat): the same attempts, still 304
    ctl.registry.clusters[CLUSTER].last_heartbeat += timedelta(seconds=5)  # type: ignore[operator]
    assert _get(ready).json() != first.json()  # the entries' lease moved on
    assert _get(ready, tag).status_code == 304
    # the strong form of the tag, a list of tags and "*" match as well (RFC 9110 13.1.2)
    assert _get(ready, tag.removeprefix("W/")).status_code == 304
    assert _get(ready, f'W/"0", {tag}').status_code == 304
    assert _get(ready, "*").status_code == 304
    assert _get(ready, 'W/"0"').status_code == 200
    # each page has its own tag
    page = _get(ready, limit=2)
    assert page.headers["etag"] != tag and _get(ready, page.headers["etag"], limit=2).status_code == 304
    rest = _get(ready, after=page.json()[-1]["job_id"])
    assert rest.headers["etag"] not in (tag, page.headers["etag"])

    def changed(old: str) -> str:
        r = _get(ready, old)
        assert r.status_code == 200, "the page changed but was answered 304"
        assert r.json() == _afresh(ctl)
        new: str = r.headers["etag"]
        assert new != old and _get(ready, new).status_code == 304
        return new

    # a job placed on the cluster
    (e,) = _submit(ctl, 1)
    assert ctl.schedule_pending() == 1
    tag = changed(tag)
    # Running: the same attempt, the same entry
    run = StatusReport(job_id=a, attempt=1, epoch=ctl.agents.epoch(), phase="Running")
    assert ctl.apply_reports(CLUSTER, [run]) == [None]
    assert _get(ready, tag).status_code == 304
    # finished, cancelled: off the list
    done = StatusReport(job_id=a, attempt=1, epoch=ctl.agents.epoch(), phase="Succeeded")
    assert ctl.apply_reports(CLUSTER, [done]) == [None]
    tag = changed(tag)
    ctl.cancel(b)
    tag = changed(tag)
    # drained and placed back: new attempts of the same jobs
    ctl.drain(CLUSTER)
    ctl.set_cordon(CLUSTER, False)
    assert ctl.schedule_pending() == 3
    tag = changed(tag)
    assert sorted(x["job_id"] for x in _afresh(ctl)) == sorted([c, d, e])
    # another leader (a new epoch): every agent reads its pages again
    epoch = ctl.agents.epoch
    ctl.agents.epoch = lambda: epoch() + 1
    assert _get(ready, tag).status_code == 200


def test_an_agent_keeps_its_pages_and_asks_with_their_tags(ready: TestClient, app: Any) -> None:
    ctl: Controller = app.state.controller
    ids = _submit(ctl, 7)
    assert ctl.schedule_pending() == 7
    executor = SimulatedExecutor([SimNode("n1", 64.0, 256.0)])

    async def rounds() -> list[tuple[list[str], int]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://yiwang") as client:
            agent = Agent(CLUSTER, executor, client)
            out = []
            before: dict[str, Assignment] = {}
            for k in range(4):
                if k == 2:
                    ctl.cancel(ids[0])
                got = await agent.fetch_assignments()
                assert got is not None
                # every page after the first changed its cursor, but lists attempts the agent
                # holds: those are taken as held, not validated again
                assert all(before.get(x.job_id, x) is x for x in got)
                before = {x.job_id: x for x in got}
                out.append(([x.job_id for x in got], agent.stats.unchanged_pages))
                assert [x.model_dump(mode="json") for x in got] == [
                    {**x, "lease_expires_at": y.model_dump(mode="json")["lease_expires_at"]}
                    for x, y in zip(_afresh(ctl), got, strict=True)
                ]
            return out

    import controller.agent as agent_module

    page = agent_module.ASSIGNMENT_PAGE
    agent_module.ASSIGNMENT_PAGE = 3  # three pages: 3, 3 and 1 attempts
    try:
        seen = asyncio.run(rounds())
    finally:
        agent_module.ASSIGNMENT_PAGE = page
    listed = sorted(ids)
    assert seen[0] == (listed, 0)
    assert seen[1] == (listed, 3)  # all three pages held
    # the first job cancelled: every page from its own on lists something else
    assert seen[2] == (listed[1:], 3)
    assert seen[3] == (listed[1:], 6)
