"""The CLI as a user meets it: one line on stderr for ordinary mistakes (exit 1, 2 for usage),
the traceback only with --debug; submit/list/plan/clusters output; policy errors all at once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.client import Client
from controller.demo.run import register_datasets, stage_data
from controller.live import LiveController
from tests.conftest import REPO, free_port

EXAMPLES = REPO / "examples"


def yiwang(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    for k in ("YIWANG_URL", "YIWANG_ADMIN_TOKEN", "YIWANG_DEBUG", "YIWANG_ENVIRONMENT"):
        if env is None or k not in env:
            full.pop(k, None)
    return subprocess.run(
        [sys.executable, "-m", "controller.cli", *args],
        cwd=REPO,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line_error(r: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert r.returncode == code, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("cli")
    db = work / "y.db"
    live = LiveController(db, loop_interval_s=0.1)
    stop = threading.Event()

    def agents() -> None:
        """Every cluster heartbeats while the tests run, as its agent would (the grace is short)."""
        while True:
            for name in list(ctl.registry.clusters):
                ctl.heartbeat(name, None)
            if stop.wait(ctl.heartbeat_interval_s()):
                return

    with live:
        ctl = live.controller
        beats = threading.Thread(target=agents, daemon=True)
        beats.start()
        _, source, _, _ = stage_data(work)
        with Client(live.url) as c:
            register_datasets(c, source)  # the sample data sets the examples read
        try:
            yield live.url
        finally:
            stop.set()
            beats.join(10)


def test_missing_file_bad_yaml_and_usage_mistakes(tmp_path: Path) -> None:
    one_line_error(yiwang("jobs", "submit", "nope.yaml"), 1, "cannot read nope.yaml", "No such file")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [report\n  tenant: [bold]x: y\n")
    one_line_error(yiwang("plan", str(bad)), 1, "is not valid YAML", "line 2")
    one_line_error(yiwang("jobs", "list", "--bogus"), 2, "No such option: --bogus")
    one_line_error(yiwang("jobs", "list", "-o", "xml"), 2, "'xml' is not one of")
    r = yiwang("jobs", "submit", "nope.yaml", "--debug")
    assert r.returncode == 1 and "Traceback" in r.stderr and "error: cannot read nope.yaml" in r.stderr


def test_unreachable_controller_and_database_are_named() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    one_line_error(yiwang("clusters", "list", "--url", dead), 1, f"cannot reach the controller at {dead}")
    one_line_error(yiwang("jobs", "list", env={"YIWANG_URL": dead}), 1, dead)
    db = f"postgresql+psycopg://u:secret@127.0.0.1:{free_port()}/x"
    r = yiwang("db-upgrade", "--database-url", db)
    one_line_error(r, 1, "cannot upgrade the database at postgresql+psycopg://u:***@127.0.0.1")
    assert "secret" not in r.stderr


def test_prod_without_a_token_is_one_line() -> None:
    r = yiwang("serve", "--port", str(free_port()), env={"YIWANG_ENVIRONMENT": "prod"})
    one_line_error(r, 1, "prod needs YIWANG_ADMIN_TOKEN")


def test_submit_list_get_logs_plan_clusters(url: str) -> None:
    r = yiwang("jobs", "submit", str(EXAMPLES / "job.yaml"), "--url", url, "--key", "k1")
    assert r.returncode == 0, r.stderr
    line = r.stdout.strip()
    assert line.startswith("job/") and line.endswith(" created (Pending)"), line
    job_id = line.split()[0].removeprefix("job/")
    again = yiwang("jobs", "submit", str(EXAMPLES / "job.yaml"), "--url", url, "--key", "k1", "-o", "json")
    assert json.loads(again.stdout)["id"] == job_id
    as_yaml = yiwang("jobs", "get", f"job/{job_id}", "--url", url, "-o", "yaml").stdout
    assert f"id: {job_id}" in as_yaml
    for i in range(2):
        assert (
            yiwang("jobs", "submit", str(EXAMPLES / "job.json"), "--url", url, "--key", f"p{i}").returncode
            == 0
        )
    first = json.loads(yiwang("jobs", "list", "--url", url, "--limit", "2", "-o", "json").stdout)
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = json.loads(
        yiwang(
            "jobs", "list", "--url", url, "--limit", "2", "--cursor", first["next_cursor"], "-o", "json"
        ).stdout
    )
    everything = json.loads(
        yiwang("jobs", "list", "--url", url, "--limit", "1", "--all", "-o", "json").stdout
    )
    ids = [j["id"] for j in everything["items"]]
    assert ids == [j["id"] for j in first["items"] + rest["items"]] and len(ids) == 3
    assert everything["next_cursor"] is None
    # No agent ran it: no output yet, said in one line.
    one_line_error(yiwang("jobs", "logs", job_id, "--url", url), 1, "has no output yet")
    one_line_error(
        yiwang("clusters", "cordon", "prov-atlantis", "--url", url), 1, "cluster 'prov-atlantis' not found"
    )
    # plan: exit 0 when a cluster fits, 1 when none does.
    assert yiwang("plan", str(EXAMPLES / "job.yaml"), "--url", url).returncode == 0
    huge = {"name": "huge", "tenant": "guangdong", "resources": {"cpu": 4096, "memory_gib": 1}, "replicas": 8}
    r = subprocess.run(
        [sys.executable, "-m", "controller.cli", "plan", "-", "--url", url],
        input=json.dumps(huge),
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
    )
    assert r.returncode == 1 and "0/42 clusters are available" in r.stdout, r.stdout + r.stderr
    clusters = yiwang("clusters", "list", "--url", url, "-o", "wide").stdout
    assert "schedulable" in clusters and "capacity from" in clusters
    assert "prov-guangdong" in clusters and "heartbeat" in clusters  # capacity the scheduler uses


def test_policy_check_lists_unknown_plugins_with_schema_errors(tmp_path: Path) -> None:
    d = tmp_path / "policies"
    shutil.copytree(REPO / "policies", d, ignore=shutil.ignore_patterns("drills"))
    placement = (d / "placement.yaml").read_text().replace(" gang,", " gangs,")
    (d / "placement.yaml").write_text(placement)
    (d / "quota.yaml").write_text(
        (d / "quota.yaml").read_text().replace("preemption: true", "preemption: [maybe]")
    )
    r = yiwang("policy", "check", str(d))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "unknown filter plugin 'gangs'" in r.stderr and "preemption" in r.stderr
    assert "known: ['capacity', 'constraints'" in r.stderr  # brackets printed, not eaten as markup
