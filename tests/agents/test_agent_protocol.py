"""Real agents (local executor, real processes) against a real controller on loopback: a job runs
once per attempt; failover only after lease + grace; stale agents are fenced; an agent that
cannot renew stops its work before its lease ends; a controller restart loses and duplicates
nothing. Every wait is bounded; nothing asserts on speed, only on order."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from controller.federation import EmbeddedFederation
from controller.jobs import JobPhase
from tests.agents.conftest import CLUSTERS, GRACE_S, LEASE_S
from tests.agents.harness import (
    LiveController,
    marker_command,
    starts,
    wait_file_then_exit,
    wait_for,
)
from tests.conftest import free_port

Fed = Callable[..., EmbeddedFederation]
ALLOW = {"constraints": {"allow_clusters": CLUSTERS}}


def ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def events(job: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in job["events"] if e["type"] == kind]


def running(j: dict[str, Any]) -> bool:
    return j["phase"] == "Running"


def test_every_job_runs_exactly_once_per_attempt(
    live: LiveController, federation: Fed, tmp_path: Path
) -> None:
    fed = federation()
    marker = tmp_path / "starts.log"
    ids = [live.submit(f"once-{i}", marker_command(marker, "sleep 0.2"), **ALLOW) for i in range(6)]
    for job_id in ids:
        j = live.wait_job(job_id, lambda j: j["phase"] == "Succeeded", "succeeded")
        assert j["attempt"] == 1
    runs = starts(marker)
    assert sorted(r[0] for r in runs) == sorted(ids), "each job's process started exactly once"
    assert all(r[1] == 1 for r in runs)
    assert sum(a.stats.starts for a in fed.agents.values()) == len(ids)
    assert all(a.stats.lease_losses == 0 and a.stats.stale_reports == 0 for a in fed.agents.values())


def test_killed_agents_work_moves_only_after_lease_and_grace(
    live: LiveController, federation: Fed, tmp_path: Path
) -> None:
    fed = federation()
    marker = tmp_path / "starts.log"
    job_id = live.submit("long", marker_command(marker, "sleep 60"), **ALLOW)
    first = live.wait_job(job_id, running, "running")
    victim = first["cluster"]
    agent = fed.agents[victim]
    wait_for("the first process start", lambda: starts(marker))
    fed.kill(victim)  # the loop ends and its processes die with it
    last_renewal = agent.last_heartbeat_sent
    assert last_renewal is not None

    moved = live.wait_job(job_id, lambda j: j["attempt"] == 2 and running(j), "re-placed and running", 30)
    assert moved["cluster"] != victim
    expired = events(moved, "LeaseExpired")
    assert len(expired) == 1
    # The lease the controller granted started no earlier than the agent's last send, so the
    # re-placement may come at lease + grace after that send at the earliest - and not before.
    assert ts(expired[0]["at"]) >= last_renewal + LEASE_S + GRACE_S
    assert live.cluster(victim)["health"] == "Unreachable"
    assert ts(events(moved, "Scheduled")[-1]["at"]) >= ts(expired[0]["at"])
    wait_for("the second start", lambda: len(starts(marker)) == 2)
    assert [(r[0], r[1]) for r in starts(marker)] == [(job_id, 1), (job_id, 2)]
    assert agent.executor.active() == []


def test_stale_agent_cannot_report_and_stops_its_revoked_attempt(
    live: LiveController, federation: Fed, tmp_path: Path
) -> None:
    fed = federation()
    other = CLUSTERS[1]
    victim = CLUSTERS[0]
    with live.http() as c:
        assert c.post(f"/v1/clusters/{other}/cordon").status_code == 200
    marker, go = tmp_path / "starts.log", tmp_path / "go"
    long_id = live.submit("long", marker_command(marker, "sleep 60"), **ALLOW)
    short_id = live.submit("short", marker_command(marker, wait_file_then_exit(go)), **ALLOW)
    a1 = live.wait_job(long_id, running, "running")
    b1 = live.wait_job(short_id, running, "running")
    assert a1["cluster"] == b1["cluster"] == victim
    with live.http() as c:
        assert c.post(f"/v1/clusters/{other}/uncordon").status_code == 200
    agent = fed.agents[victim]
    epoch = agent.assignments[(long_id, 1)].epoch

    fed.partition(victim, f"http://127.0.0.1:{free_port()}")
    go.touch()  # the short job finishes while its agent cannot tell anyone
    for job_id in (long_id, short_id):
        live.wait_job(
            job_id, lambda j: j["attempt"] == 2 and j["phase"] in ("Running", "Succeeded"), "re-placed", 30
        )
    fed.heal(victim)

    # Whatever the stale agent says about attempt 1 now is refused: 409, and it stops.
    def fenced() -> bool:
        kinds = [(e.kind, e.job_id, e.detail) for e in agent.events]
        return any(j == short_id and k in ("stale", "release") and "409" in d for k, j, d in kinds)

    wait_for("the stale agent's report to be refused", fenced, 15)
    wait_for("the stale agent to drop attempt 1", lambda: not agent.lost and not agent.assignments, 15)
    assert agent.executor.active() == []
    with live.http() as c:
        r = c.post(
            f"/v1/agents/{victim}/status",
            json={"job_id": long_id, "attempt": 1, "epoch": epoch, "phase": "Succeeded", "exit_code": 0},
        )
    assert r.status_code == 409, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    for job_id in (long_id, short_id):
        j = live.job(job_id)
        assert not [e for e in j["events"] if e["type"] == "Succeeded" and e["attempt"] == 1]
    assert sorted((r[0], r[1]) for r in starts(marker)) == sorted(
        [(long_id, 1), (long_id, 2), (short_id, 1), (short_id, 2)]
    )


def test_agent_stops_its_attempts_before_the_lease_ends_when_it_cannot_renew(
    live: LiveController, federation: Fed, tmp_path: Path
) -> None:
    fed = federation()
    marker = tmp_path / "starts.log"
    job_id = live.submit("long", marker_command(marker, "sleep 60"), **ALLOW)
    cluster = live.wait_job(job_id, running, "running")["cluster"]
    agent = fed.agents[cluster]
    ctl = live.controller
    live.stop()  # the controller is gone; its database stays

    wait_for("the agent to stop its attempt", lambda: agent.stats.lease_losses == 1, 15)
    stop = next(e for e in agent.events if e.kind == "stop" and e.job_id == job_id)
    assert stop.detail == "LeaseLost"
    # The lease is the cluster's: it ends lease_s after the controller last heard from the agent.
    [row] = [r for r in ctl.store.list_clusters() if r["name"] == cluster]
    last = row["last_heartbeat"]
    last_ts = last.timestamp() if last.tzinfo else ts(last.isoformat() + "+00:00")
    lease_end_ts = last_ts + ctl.policies.failover.lease_s
    assert stop.at < lease_end_ts, "the agent stopped the attempt before the controller's lease ended"
    wait_for("the stopped attempt to end", lambda: agent.executor.active() == [], 10)

    live.start()  # back: the agent releases the lost attempt, the job runs again as attempt 2
    j = live.wait_job(job_id, lambda j: j["attempt"] == 2 and running(j), "attempt 2 running", 30)
    assert events(j, "Released") or events(j, "LeaseExpired"), j["events"]
    assert [(r[0], r[1]) for r in starts(marker)] == [(job_id, 1), (job_id, 2)]


def test_controller_restart_loses_and_duplicates_nothing(
    live: LiveController, federation: Fed, tmp_path: Path
) -> None:
    live.set_failover(10.0, 5.0)  # the restart takes less than the agent's lease margin
    fed = federation()
    marker, go = tmp_path / "starts.log", tmp_path / "go"
    ids = [live.submit(f"r-{i}", marker_command(marker, wait_file_then_exit(go)), **ALLOW) for i in range(4)]
    for job_id in ids:
        live.wait_job(job_id, running, "running")
    old_epoch = live.controller.epoch
    live.stop()
    wait_for(
        "an agent to find the controller gone",
        lambda: any(a.stats.heartbeat_failures for a in fed.agents.values()),
        15,
    )
    live.start()  # a new Controller, a new holder: it takes over with a new epoch
    wait_for("the new controller to lead", lambda: live.controller.epoch > old_epoch, 15)
    go.touch()
    for job_id in ids:
        j = live.wait_job(job_id, lambda j: j["phase"] == JobPhase.Succeeded, "succeeded", 30)
        assert j["attempt"] == 1
        assert [e["type"] for e in j["events"]] == ["Submitted", "Scheduled", "Running", "Succeeded"] or not (
            events(j, "LeaseExpired") or events(j, "Released")
        )
    # a job dispatched by the new leader carries its epoch and runs as well
    new_id = live.submit("after", marker_command(marker, "true"), **ALLOW)
    live.wait_job(new_id, lambda j: j["phase"] == JobPhase.Succeeded, "succeeded")
    assert live.controller.store.get_job(new_id)["epoch"] == live.controller.epoch > old_epoch
    assert sorted(r[0] for r in starts(marker)) == sorted([*ids, new_id])
    assert all(a.stats.lease_losses == 0 and a.stats.stale_reports == 0 for a in fed.agents.values())
    assert all(a.lease_valid() for a in fed.agents.values())  # reconnected and renewed
