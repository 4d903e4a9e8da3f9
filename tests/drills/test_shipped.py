"""Every shipped scenario runs end to end (once per session) and meets its budgets; its JSON
report and JUnit file say so."""

from __future__ import annotations

import json
import tempfile
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path

import pytest

from controller.drills.report import DrillReport
from controller.drills.runner import run_files
from tests.drills.conftest import DRILLS

# Process drills (federation.mode: processes, the runonce-* files) run at the shipped default timers
# for minutes each; tests/drills/test_runonce.py runs bounded copies of them.
SHIPPED = sorted(
    p
    for p in DRILLS.glob("*.yaml")
    if "mode: processes" not in (text := p.read_text(encoding="utf-8")) and "mode: national" not in text
)


@cache
def drill(name: str) -> tuple[int, DrillReport, Path, str]:
    out = Path(tempfile.mkdtemp(prefix=f"drill-test-{name}-"))
    lines: list[str] = []
    code, (rep,) = run_files([DRILLS / f"{name}.yaml"], out, lines.append)
    return code, rep, out, "\n".join(lines)


def test_the_three_required_scenarios_ship() -> None:
    names = {p.stem for p in SHIPPED}
    assert {"province-agent-killed", "province-partition", "controller-restart"} <= names


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", [p.stem for p in SHIPPED])
def test_shipped_scenario_meets_its_budgets(name: str) -> None:
    code, rep, out, log = drill(name)
    assert code == 0, f"{rep.error or [r.message for r in rep.results if not r.passed]}\n{log}"
    body = json.loads((out / f"{name}.json").read_text())
    assert body["passed"] is True
    assert body["measurements"]["jobs_lost"] == 0
    assert body["measurements"]["jobs_run_twice"] == 0
    assert body["jobs"]["acknowledged"] > 0
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0" and suite.get("errors") == "0"
    assert {"jobs_lost", "jobs_run_twice", "rto_s"} <= {c.get("name") for c in suite.iter("testcase")}


@pytest.mark.timeout(60)
def test_agent_killed_failover_respects_residency() -> None:
    """General jobs go anywhere legal, important ones only to the national nodes (Guangdong is
    down), core ones wait with the residency reason; the filled national-backup takes none."""
    _, rep, _, _ = drill("province-agent-killed")
    by_group = rep.details["failover_targets_by_group"]
    assert set(by_group["gd-important"]) == {"national-primary"}
    assert by_group["gd-general"] and "national-backup" not in by_group["gd-general"]
    assert "gd-core" not in by_group
    assert rep.jobs["waiting_for_residency"] == 2
    assert rep.measurements["residency_violations"] == 0


@pytest.mark.timeout(60)
def test_partition_self_stop_replacement_and_stale_reports() -> None:
    """The partitioned agent stopped every attempt before its lease ended, nothing was re-placed
    before lease + grace, and every report of a revoked attempt was refused after healing."""
    _, rep, _, _ = drill("province-partition")
    d = rep.details
    assert d["min_self_stop_before_lease_end_s"] is not None and d["min_self_stop_before_lease_end_s"] > 0
    assert d["min_replaced_after_lease_plus_grace_s"] is not None
    assert d["min_replaced_after_lease_plus_grace_s"] >= 0
    assert d["stale_reports_probed"] > 0 and d["stale_reports_accepted"] == []
    assert rep.jobs["phases"] == {"Succeeded": rep.jobs["acknowledged"]}  # core jobs ran after healing


@pytest.mark.timeout(60)
def test_controller_restart_skips_prometheus_with_a_reason() -> None:
    _, rep, out, log = drill("controller-restart")
    skipped = [r for r in rep.results if r.skipped]
    assert [r.name for r in skipped] == ["fault[1].stop_prometheus"]
    assert "no Prometheus is configured" in skipped[0].message and "SKIP stop_prometheus" in log
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("skipped") == "1"
