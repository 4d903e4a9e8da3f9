"""Process drills (issue 10, run once): bounded copies of the shipped runonce-* scenarios with real
controller and agent processes. The counters must come from the jobs' markers (re-counted here
from the kept marker file), and the drills' verdicts on duplicates and overlaps are asserted.

The shipped files run at the default timers (lease 30 s, grace 15 s) for minutes; these copies
shrink the load and set short timers (lease 4 s, grace 2 s) so each runs in well under a minute.
"""

from __future__ import annotations

import json
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.drills import netns
from controller.drills.markers import analyse, load
from controller.drills.report import DrillReport
from controller.drills.runner import run_files
from tests.drills.conftest import DRILLS

SHORT_TIMERS = {"lease_s": 4, "heartbeat_grace_s": 2, "agent_poll_interval_s": 0.5}


def short(name: str) -> dict[str, Any]:
    """The shipped scenario, shrunk."""
    doc: dict[str, Any] = yaml.safe_load((DRILLS / f"{name}.yaml").read_text(encoding="utf-8"))
    doc["name"] = f"{name}-short"
    doc["stuck_after_s"] = 20
    doc["settle_timeout_s"] = 120
    doc["tail_s"] = 1
    if name == "runonce-burst":
        doc["load"] |= {"count": 150, "rate_per_s": 100}
        return doc
    if name == "runonce-long-life":
        doc["load"] |= {"count": 300, "rate_per_s": 150}
        return doc
    if name == "runonce-controller-kill":  # two kills under 20 jobs/s, leader lease 3 s
        doc["federation"] |= {"leader_ttl_s": 3}
        doc["load"] |= {"count": 500, "rate_per_s": 20}
        doc["timeline"] = [{"at_s": 4, "fault": "kill_controller", "down_s": 1, "repeat": 2, "every_s": 11}]
        return doc
    doc["federation"] |= SHORT_TIMERS
    doc["load"] |= {"count": 6, "work_s": 12, "steady_timeout_s": 30}
    down, up = doc["timeline"]
    down["at_s"], up["at_s"] = 1, 9
    return doc


@cache
def drill(name: str) -> tuple[int, DrillReport, Path, str]:
    out = Path(tempfile.mkdtemp(prefix=f"runonce-test-{name}-"))
    path = out / f"{name}.yaml"
    path.write_text(yaml.safe_dump(short(name)), encoding="utf-8")
    lines: list[str] = []
    code, (rep,) = run_files([path], out, lines.append, keep_logs=True)
    return code, rep, out, "\n".join(lines)


def recount(name: str) -> dict[str, int]:
    """The marker file the drill kept, analysed again here."""
    _, _, out, _ = drill(name)
    log = load(out / f"{name}-short.logs" / "markers.log")
    horizon = max([e.ended or e.started for e in log.executions], default=0.0) + 3600
    a = analyse(log, horizon)
    return {"executions": a.executions, "duplicate_successes": a.duplicate_successes}


def check_common(name: str) -> DrillReport:
    code, rep, out, log = drill(name)
    assert rep.error is None, log
    m = rep.measurements
    again = recount(name)
    assert m["executions"] == again["executions"] and m["duplicate_successes"] == again["duplicate_successes"]
    assert m["acknowledged"] == rep.jobs["acknowledged"] > 0
    assert m["jobs_executed"] >= m["acknowledged"]  # every acknowledged job left a start marker
    assert m["succeeded_without_marker"] == 0 and m["malformed_marker_lines"] == 0
    assert m["jobs_lost"] == 0 and m["jobs_stuck"] == 0
    body = json.loads((out / f"{name}-short.json").read_text())
    assert {r["name"] for r in body["results"]} >= {"duplicate_successes", "overlapping_jobs", "jobs_stuck"}
    assert (code == 0) == body["passed"]
    return rep


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("name", "count"), [("runonce-burst", 150), ("runonce-long-life", 300)])
def test_a_stream_through_one_cluster_runs_every_job_once(name: str, count: int) -> None:
    rep = check_common(name)
    m = rep.measurements
    assert m["acknowledged"] == count and m["successful_executions"] >= count
    assert m["duplicate_successes"] == 0 and m["overlapping_jobs"] == 0, rep.details
    assert rep.passed


@pytest.mark.timeout(90)
def test_controller_kills_under_load_lose_nothing_and_the_restarted_one_places_again() -> None:
    rep = check_common("runonce-controller-kill")
    kills = rep.timeline
    assert [k["fault"] for k in kills] == ["kill_controller", "kill_controller"]
    assert all(k["answering_s"] is not None and k["takeover_s"] is not None for k in kills), kills
    assert all(k["takeover_s"] > 0 for k in kills)
    m = rep.measurements
    assert m["submission_failures"] > 0  # offers during the outages were refused, not acknowledged
    assert m["duplicate_successes"] == 0 and m["overlapping_jobs"] == 0, rep.details


AGENT_FAULTS = ["runonce-agent-kill", "runonce-agent-freeze", "runonce-agent-partition"]


def needs_netns(name: str) -> None:
    why = netns.unavailable()
    if name == "runonce-agent-partition" and why:
        print(f"skipping {name}: {why}")
        pytest.skip(why)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("name", AGENT_FAULTS)
def test_agent_fault_is_detected_and_its_work_runs_again(name: str) -> None:
    needs_netns(name)
    rep = check_common(name)
    (down, _) = rep.timeline
    assert down["affected_jobs"] == 6
    assert down["detection_s"] is not None and down["never_ran_again"] == 0
    assert rep.jobs["phases"] == {"Succeeded": 6}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("name", AGENT_FAULTS)
def test_agent_fault_runs_nothing_twice(name: str) -> None:
    needs_netns(name)
    _, rep, _, _ = drill(name)
    m = rep.measurements
    assert rep.error is None
    assert m["duplicate_successes"] == 0 and m["overlapping_jobs"] == 0, rep.details.get("overlaps")
