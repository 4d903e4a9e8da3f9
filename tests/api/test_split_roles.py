"""The split layout with real processes: an API replica (role=api) and the scheduling leader
(role=all) as two uvicorn processes on one SQLite file. Jobs submitted to the replica are placed
by the leader; cancels and heartbeats sent to the replica reach the leader."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from controller.live import LiveController, wait_for


@pytest.fixture
def split(tmp_path: Path) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    db = tmp_path / "split.db"
    leader = LiveController(db, process=True, holder="leader").start()
    api = LiveController(db, process=True, role="api", holder="api").start()
    try:
        with leader.http() as lc, api.http() as ac:
            yield lc, ac
    finally:
        for server in (api, leader):
            server.stop()


def test_the_replica_takes_jobs_and_the_leader_places_them(split: tuple[httpx.Client, httpx.Client]) -> None:
    leader, api = split
    assert leader.get("/readyz").json()["leader"] is True
    ready = api.get("/readyz").json()
    assert ready["leader"] is False and ready["role"] == "api"
    assert ready["epoch"] == leader.get("/readyz").json()["epoch"] >= 1
    names = [c["name"] for c in api.get("/v1/clusters").json()["items"]]
    for name in names:
        assert api.post(f"/v1/agents/{name}/heartbeat").status_code == 200
    # the leader sees the heartbeats the replica received
    wait_for(
        "every cluster Ready on the leader",
        lambda: all(c["health"] == "Ready" for c in leader.get("/v1/clusters").json()["items"]),
        30,
    )
    ids = []
    for i in range(20):
        r = api.post("/v1/jobs", json={"name": f"s{i}", "tenant": "guangdong", "resources": {"cpu": 4}})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    wait_for(
        "every job Scheduled",
        lambda: all(api.get(f"/v1/jobs/{j}").json()["phase"] == "Scheduled" for j in ids),
        30,
    )
    decision = api.get(f"/v1/jobs/{ids[0]}/decision").json()
    assert decision["cluster"] == api.get(f"/v1/jobs/{ids[0]}").json()["cluster"]

    def allocated(client: httpx.Client) -> float:
        return sum(c["allocated"]["cpu"] for c in client.get("/v1/clusters").json()["items"])

    wait_for(
        "80 CPUs allocated on the replica", lambda: allocated(api) == pytest.approx(80.0), 30
    )  # the replica follows the leader's ledger
    assert allocated(leader) == pytest.approx(80.0)
    assert api.post(f"/v1/jobs/{ids[0]}/cancel").status_code == 200
    wait_for(
        "76 CPUs allocated on the leader", lambda: allocated(leader) == pytest.approx(76.0), 30
    )  # the leader freed the capacity


def test_the_leader_killed_mid_stream_loses_nothing_and_a_new_leader_takes_over(tmp_path: Path) -> None:
    """kill -9 of the scheduling leader while clients keep submitting to the API replica: the
    replica keeps acknowledging (it does not need the leader), a new leader takes the lease
    when the old one's expires (a higher epoch) and places every acknowledged job once."""
    db = tmp_path / "failover.db"
    first = LiveController(db, process=True, leader_ttl_s=2, holder="leader-a").start()
    api = LiveController(db, process=True, leader_ttl_s=2, role="api", holder="api").start()
    second = LiveController(db, process=True, leader_ttl_s=2, holder="leader-b")
    acknowledged: list[str] = []
    try:
        with api.http() as ac:
            names = [c["name"] for c in ac.get("/v1/clusters").json()["items"]]

            def beat() -> None:
                for name in names:
                    assert ac.post(f"/v1/agents/{name}/heartbeat").status_code == 200

            def submit(n: int, tag: str) -> None:
                for i in range(n):
                    r = ac.post(
                        "/v1/jobs",
                        json={"name": f"{tag}{i}", "tenant": "guangdong", "resources": {"cpu": 0.5}},
                    )
                    assert r.status_code == 201, r.text
                    acknowledged.append(r.json()["id"])

            beat()
            submit(30, "a")
            first.kill()  # SIGKILL
            epoch_before = ac.get("/readyz").json()["epoch"]
            submit(30, "b")  # the replica still takes submissions with no leader
            second.start()
            beat()

            def all_placed() -> bool:
                beat()
                return all(ac.get(f"/v1/jobs/{j}").json()["phase"] == "Scheduled" for j in acknowledged)

            wait_for("every acknowledged job placed", all_placed, 60)
            # a new leader, a new epoch (the replica learns it at its next sync)
            wait_for(
                "a new epoch on the replica", lambda: ac.get("/readyz").json()["epoch"] > epoch_before, 10
            )
            for j in acknowledged:
                events = ac.get(f"/v1/jobs/{j}").json()["events"]
                assert [e["type"] for e in events].count("Scheduled") == 1, events
        assert len(acknowledged) == 60
    finally:
        for server in (second, api, first):
            server.stop()
