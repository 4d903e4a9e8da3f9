"""The restore drill (``controller/drills/restore.py``), run for real: the national store made
again from its base backup and archived WAL after both database sites and the witness are lost
(real etcd, Patroni and PostgreSQL 15; a stand-in for WAL-G over a folder). Every job committed
before its WAL was archived is back, on both sites; those committed after the last archived
segment are what such a loss costs (docs/national.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.drills.national import unavailable
from controller.drills.restore import run_restore_drill, scripts_missing
from tests.conftest import need


@pytest.mark.timeout(420)
def test_the_national_store_comes_back_from_its_backups_after_both_sites_are_lost(tmp_path: Path) -> None:
    why = unavailable() or scripts_missing()
    need(why is None, why or "")
    report = run_restore_drill(out=tmp_path, say=print)
    assert report["error"] is None, report
    m = report["measurements"]
    print(json.dumps(m))
    assert m["archived_jobs"] == 500 and m["archived_lost"] == 0 and m["appeared"] == 0
    assert m["jobs_on_standby"] == m["jobs_restored"]  # the second site cloned the restored primary
    assert m["timeline"] >= 2  # promoted at the end of the archive
    # the unarchived commits: lost with both sites, as the recovery point says (not budgeted)
    assert m["jobs_restored"] == 500 + (m["unarchived_jobs"] - m["unarchived_lost"])
    assert "base backup check: replica" in report["backup"]["guian"]
    assert "base backup check: backed-up" in report["backup"]["beijing"]
    assert report["passed"], report["results"]
    assert json.loads((tmp_path / "national-restore.json").read_text())["passed"] is True
