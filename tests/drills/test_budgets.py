"""A broken budget fails the drill: the JSON report, the JUnit file and the exit code say so."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from controller.cli import app
from controller.drills.report import check_max, evaluate
from controller.drills.scenario import Budgets
from tests.drills.conftest import small_scenario, write


@pytest.mark.timeout(60)
def test_broken_rto_budget_fails_json_junit_and_exit_code(tmp_path: Path) -> None:
    doc = small_scenario(budgets={"detection_s": 5.0, "rto_s": 0.001})
    path = write(tmp_path, doc)
    out = tmp_path / "reports"
    result = CliRunner().invoke(app, ["drill", "run", str(path), "--out", str(out)])
    assert result.exit_code == 1, result.output
    body = json.loads((out / "small-kill.json").read_text())
    assert body["passed"] is False and body["error"] is None
    rto = next(r for r in body["results"] if r["name"] == "rto_s")
    assert rto["passed"] is False and rto["budget"] == 0.001 and rto["measured"] > 0.001
    assert f"measured {rto['measured']:.3f} s > budget 0.001 s" == rto["message"]
    # everything else held: the failure is the budget, not the drill
    assert all(r["passed"] for r in body["results"] if r["name"] != "rto_s")
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1"
    case = next(c for c in suite.iter("testcase") if c.get("name") == "rto_s")
    failure = case.find("failure")
    assert failure is not None and "> budget 0.001 s" in (failure.get("message") or "")
    assert "FAIL rto_s" in result.output


def test_unmeasured_budget_fails_and_says_why() -> None:
    r = check_max("rto_s", None, 5.0, "s", "2 affected job(s) never ran again")
    assert not r.passed and "not measured (2 affected job(s) never ran again)" in r.message


def test_evaluate_lists_budgets_then_invariants() -> None:
    results = evaluate(
        Budgets(detection_s=2.0, rto_s=100.0, gbt20988_level=6),
        {"detection_s": 1.0, "rto_s": 70.0, "jobs_lost": 0, "jobs_run_twice": 1},
        {"residency_violations": 0},
    )
    verdict = {r.name: r.passed for r in results}
    assert verdict == {
        "detection_s": True,
        "rto_s": True,
        "jobs_lost": True,
        "jobs_run_twice": False,
        "gbt20988_level": False,  # level 6: RTO "minutes", read strictly as 60 s
        "residency_violations": True,
    }
