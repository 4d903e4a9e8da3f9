"""Scenario files are validated; every error is listed with its path."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from controller.cli import app
from controller.drills.procscenario import parse_proc_scenario
from controller.drills.runner import load_any
from controller.drills.scenario import ScenarioError, load_scenario, parse_scenario
from controller.services.policy_files import load_policy_set
from controller.settings import REPO_POLICIES
from tests.drills.conftest import DRILLS, small_scenario, write

TOPOLOGY = load_policy_set(REPO_POLICIES).topology


def errors_of(doc: object) -> dict[str, str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(doc, "test", TOPOLOGY)
    return {e["path"]: e["message"] for e in info.value.errors}


@pytest.mark.parametrize("path", sorted(DRILLS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_scenarios_are_valid(path: Path) -> None:
    assert load_any(path, TOPOLOGY).name == path.stem


def test_schema_errors_have_paths() -> None:
    doc = small_scenario(
        federation={"clusters": ["prov-hainan"], "time_scale": -1, "executor": "kubernetes"},
        timeline=[
            {"at_s": 1, "fault": "meteor", "cluster": "prov-hainan"},
            {"at_s": 2, "fault": "kill_agent"},
        ],
        budgets={"rto_s": "soon", "jobs_lost": -1},
        surprise=True,
    )
    errs = errors_of(doc)
    assert "federation.time_scale" in errs
    assert "federation.executor" in errs
    assert any(p.startswith("timeline[0]") for p in errs)  # unknown fault kind
    assert "timeline[1].kill_agent.cluster" in errs  # missing field
    assert "budgets.rto_s" in errs and "budgets.jobs_lost" in errs
    assert "surprise" in errs


def test_cross_check_errors_have_paths() -> None:
    doc = small_scenario()
    doc["federation"]["clusters"] = ["national-primary", "prov-hainan", "prov-atlantis"]
    doc["load"]["jobs"][0]["inputs"] = ["hi-open", "nowhere"]
    doc["timeline"] = [
        {"at_s": 2, "fault": "kill_agent", "cluster": "prov-guangdong"},
        {"at_s": 1, "fault": "recover", "cluster": "prov-hainan"},
    ]
    errs = errors_of(doc)
    assert errs["federation.clusters[2]"] == "unknown cluster 'prov-atlantis'"
    assert errs["load.jobs[0].inputs[1]"] == "data set 'nowhere' is not in load.datasets"
    assert "not in the federation" in errs["timeline[0].cluster"]
    assert "time order" in errs["timeline[1].at_s"]
    assert "nothing to recover" in errs["timeline[1].cluster"]


def test_budget_without_a_fault_that_can_measure_it() -> None:
    doc = small_scenario(timeline=[{"at_s": 0, "fault": "fill_cluster", "cluster": "prov-hainan"}])
    errs = errors_of(doc)
    assert "budgets.detection_s" in errs and "budgets.rto_s" in errs


def test_unreadable_yaml_is_an_error_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n", encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, TOPOLOGY)
    assert info.value.errors[0]["path"] == "(file)"


def test_cli_lists_errors_of_every_file_with_paths_and_exits_2(tmp_path: Path) -> None:
    schema = small_scenario(budgets={"rto_s": 0})
    cross = small_scenario()
    cross["timeline"][0]["cluster"] = "prov-atlantis"
    paths = [write(tmp_path, schema, "schema.yaml"), write(tmp_path, cross, "cross.yaml")]
    runner = CliRunner()
    ran = runner.invoke(app, ["drill", "run", *map(str, paths), "--out", str(tmp_path / "out")])
    assert ran.exit_code == 2, ran.output
    assert "schema.yaml: invalid" in ran.output and "budgets.rto_s" in ran.output
    assert "cross.yaml: invalid" in ran.output and "timeline[0].cluster" in ran.output
    assert not (tmp_path / "out").exists()  # nothing ran
    listed = runner.invoke(app, ["drill", "list", str(tmp_path)])
    assert listed.exit_code == 2 and "timeline[0].cluster" in listed.output


def test_cli_list_shows_the_shipped_scenarios() -> None:
    listed = CliRunner().invoke(app, ["drill", "list", str(DRILLS)], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    for name in ("province-agent-killed", "province-partition", "controller-restart"):
        assert name in listed.output


def proc_errors(doc: object) -> dict[str, str]:
    with pytest.raises(ScenarioError) as info:
        parse_proc_scenario(doc, "test", TOPOLOGY)
    return {e["path"]: e["message"] for e in info.value.errors}


def proc_doc(**overrides: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "name": "p",
        "federation": {"mode": "processes", "agents": [{"cluster": "prov-hubei"}]},
        "load": {"tenant": "hubei", "count": 3},
    }
    doc.update(overrides)
    return doc


def test_process_scenarios_are_checked_with_paths() -> None:
    errs = proc_errors(proc_doc(load={"tenant": "hubei", "count": 0, "surprise": 1}))
    assert set(errs) == {"load.count", "load.surprise"}
    errs = proc_errors(proc_doc(federation={"mode": "processes", "agents": [{"cluster": "prov-atlantis"}]}))
    assert errs == {"federation.agents[0].cluster": "unknown cluster 'prov-atlantis'"}
    thaw_first = proc_doc(timeline=[{"at_s": 1, "fault": "thaw_agent", "cluster": "prov-hubei"}])
    assert "needs a freeze_agent of prov-hubei before" in " ".join(proc_errors(thaw_first).values())
    cut = proc_doc(timeline=[{"at_s": 1, "fault": "partition", "cluster": "prov-hubei"}])
    assert "needs federation.netns: true" in " ".join(proc_errors(cut).values())
    no_fault = proc_doc(budgets={"takeover_s": 15})
    assert "needs a kill_controller fault" in " ".join(proc_errors(no_fault).values())


def test_repeated_controller_kills_are_spelled_out() -> None:
    scn = parse_proc_scenario(
        proc_doc(timeline=[{"at_s": 10, "fault": "kill_controller", "repeat": 3, "every_s": 20}]),
        "t",
        TOPOLOGY,
    )
    assert [f.at_s for f in scn.expanded_timeline()] == [10, 30, 50]
