"""National drills (issue 12): scenario validation, the national endpoint's routing, and a short,
bounded copy of national-site-loss run for real (etcd x3, Patroni + PostgreSQL x2 from empty
folders, two controllers, agents; every process of the Beijing site SIGKILLed under load)."""

from __future__ import annotations

import json
import tempfile
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.drills.lb import Balancer
from controller.drills.markers import analyse, load
from controller.drills.national import unavailable
from controller.drills.nationalscenario import NationalScenario, parse_national_scenario
from controller.drills.report import DrillReport
from controller.drills.runner import load_all, run_files
from controller.drills.scenario import ScenarioError
from tests.conftest import need
from tests.drills.conftest import DRILLS

NATIONAL = sorted(DRILLS.glob("national-*.yaml"))


def shipped(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DRILLS / f"{name}.yaml").read_text(encoding="utf-8"))
    return doc


def test_the_four_national_drills_ship_and_are_valid() -> None:
    assert {p.stem for p in NATIONAL} == {
        "national-site-loss",
        "national-partition",
        "national-witness-loss",
        "national-standby-loss",
    }
    ok, bad = load_all(NATIONAL)
    assert not bad, [(p, e.errors) for p, e in bad]
    assert all(isinstance(s, NationalScenario) for _, s in ok)
    site_loss = dict((p.stem, s) for p, s in ok)["national-site-loss"]
    b = site_loss.budgets
    assert (b.rpo_jobs, b.duplicate_successes, b.overlapping_jobs) == (0, 0, 0)
    assert b.first_submission_s == 30 and b.first_placement_s == 35  # the floors


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        (
            lambda d: d["timeline"].__setitem__(0, {"at_s": 5, "fault": "partition_site", "site": "beijing"}),
            "",
            "netns",
        ),
        (
            lambda d: d["federation"]["agents"].__setitem__(0, {"cluster": "prov-atlantis"}),
            "federation.agents[0].cluster",
            "unknown cluster",
        ),
        (
            lambda d: d["timeline"].insert(1, {"at_s": 30, "fault": "kill_site", "site": "guian"}),
            "",
            "one site fault at a time",
        ),
        (lambda d: d["timeline"].pop(0), "", "needs a kill_site"),
        (lambda d: d["load"].__setitem__("steady", "running"), "", "load.steady"),
        (
            lambda d: d["budgets"].__setitem__("isolated_acks_after_promotion", 0),
            "",
            "partition_site of beijing",
        ),
        (
            lambda d: d["federation"].__setitem__(
                "agents", [{"cluster": "national-primary", "site": "beijing"}]
            ),
            "",
            "outside the national sites",
        ),
        (lambda d: d["timeline"][0].__setitem__("site", "shanghai"), "timeline[0]", "beijing"),
    ],
)
def test_invalid_national_scenarios_say_where(change: Any, path: str, words: str) -> None:
    doc = shipped("national-site-loss")
    change(doc)
    from controller.drills.runner import REPO_POLICIES
    from controller.services.policy_files import load_policy_set

    with pytest.raises(ScenarioError) as err:
        parse_national_scenario(doc, "x.yaml", load_policy_set(REPO_POLICIES).topology)
    text = json.dumps(err.value.errors)
    assert words in text, text
    if path:
        assert any(e["path"].startswith(path) for e in err.value.errors), err.value.errors


def test_the_endpoint_prefers_the_leader_then_any_ready_then_any_answering() -> None:
    a, b = ("10.0.0.1", 8080), ("10.0.0.2", 8080)
    lb = Balancer([a, b], 0.5, 1.0)
    for states, route in (
        ({a: "leader", b: "ready"}, a),
        ({a: "down", b: "leader"}, b),  # Beijing lost: Gui'an leads
        ({a: "ready", b: "leader"}, b),  # Beijing back as a standby: the leader stays preferred
        ({a: "down", b: "answering"}, b),  # failing over: the controller's own 503 reaches clients
        ({a: "down", b: "down"}, None),
    ):
        lb.state = states
        assert lb.pick() == route


# ---- the short site loss, for real -----------------------------------------------------------
def short_site_loss() -> dict[str, Any]:
    """national-site-loss shrunk: a shorter load, short failover timers, the Beijing site
    (its national-primary agent included) started again while the rest settles."""
    doc = shipped("national-site-loss")
    doc["name"] = "national-site-loss-short"
    doc["federation"] |= {"lease_s": 8, "heartbeat_grace_s": 4, "agent_poll_interval_s": 0.5}
    doc["federation"]["agents"] = [
        a for a in doc["federation"]["agents"] if a["cluster"] != "national-backup"
    ]
    doc["load"] |= {"count": 110, "rate_per_s": 5, "work_s": 2, "retry_s": 60}
    doc["load"]["allow_clusters"] = ["prov-hubei", "prov-sichuan"]
    doc["timeline"] = [
        {"at_s": 6, "fault": "kill_site", "site": "beijing"},
        {"at_s": 31, "fault": "restart_site", "site": "beijing"},  # after Gui'an's promotion (19-25 s)
    ]
    doc["stuck_after_s"] = 40
    doc["settle_timeout_s"] = 150
    doc["tail_s"] = 1
    return doc


@cache
def site_loss() -> tuple[int, DrillReport, Path, str]:
    out = Path(tempfile.mkdtemp(prefix="national-test-"))
    path = out / "national-site-loss-short.yaml"
    path.write_text(yaml.safe_dump(short_site_loss()), encoding="utf-8")
    lines: list[str] = []
    code, (rep,) = run_files([path], out, lines.append, keep_logs=True)
    return code, rep, out, "\n".join(lines)


@pytest.mark.timeout(240)
def test_losing_the_beijing_site_loses_nothing_acknowledged_and_runs_nothing_twice() -> None:
    why = unavailable()
    need(why is None, why or "")
    code, rep, _out, log = site_loss()
    assert rep.error is None, log
    m = rep.measurements
    assert m["acknowledged"] > 50 and m["rpo_jobs"] == 0 and m["jobs_lost"] == 0, log
    assert m["duplicate_successes"] == 0 and m["overlapping_jobs"] == 0, rep.details
    assert m["executions_unknown_to_store"] == 0 and m["jobs_stuck"] == 0, rep.details
    # every acknowledged job is on both sites once Beijing is back as the synchronous standby
    assert m["not_on_both_sites"] == 0, rep.details["on_both_sites"]
    (kill, restart) = rep.timeline
    assert kill["killed_processes"] >= 8  # etcd, Patroni, postmaster + children, controller, agent, jobs
    assert 15 <= kill["promotion_s"] <= 30  # Patroni's ttl is 20 s
    assert kill["first_submission_s"] <= 30 and kill["first_placement_new_leader_s"] <= 35, kill
    assert restart["rejoin_s"] is not None
    assert rep.details["store_at_end"]["guian"]["role"] == "primary"
    assert rep.details["store_at_end"]["beijing"]["role"] == "sync"
    assert code == 0 and rep.passed, [r.message for r in rep.results if not r.passed]


def test_the_site_loss_reports_are_written_and_the_markers_recount() -> None:
    why = unavailable()
    need(why is None, why or "")
    _code, rep, out, _ = site_loss()
    body = json.loads((out / "national-site-loss-short.json").read_text())
    names = {r["name"] for r in body["results"]}
    assert {
        "rpo_jobs",
        "duplicate_successes",
        "first_submission_s",
        "first_placement_s",
        "not_on_both_sites",
    } <= names
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("name") == "drill.national-site-loss-short"
    log = load(out / "national-site-loss-short.logs" / "markers.log")
    horizon = max([e.ended or e.started for e in log.executions], default=0.0) + 3600
    again = analyse(log, horizon)
    assert again.duplicate_successes == rep.measurements["duplicate_successes"] == 0
    assert again.executions == rep.measurements["executions"]
    assert (
        out / "national-site-loss-short.logs" / "store"
    ).is_dir()  # etcd, Patroni and PostgreSQL logs kept
