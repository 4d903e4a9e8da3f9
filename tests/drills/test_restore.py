"""Restoring the national store from its backups after both database sites are lost, for real:
etcd x3 and Patroni + PostgreSQL 15 x2 from empty folders archiving their WAL through the
deployed ``archive_command`` (``wal-g wal-push %p``; WAL-G is not on this machine, so its
stand-in ``controller/drills/walg.py`` over a folder as the bucket), a base backup taken by the
deployed backup script (``infra/yiwang_infra/base_backup.py --once``), then every process and
folder of every site gone but the bucket; a new store bootstrapped by Patroni with the deployed
restore method (``controller.store.patroni.restore_bootstrap`` running
``infra/yiwang_infra/restore_backup.py``): every job committed before its WAL was archived is
back, on both sites; those committed after the last archived segment are what such a loss costs
(at most ``archive_timeout``, 60 s, of commits: docs/national.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from controller.bench.mixed import job_row
from controller.drills.national import NationalStore, unavailable
from controller.store.store import Store
from infra.yiwang_infra import base_backup, restore_backup
from tests.conftest import need


def _jobs(n: int, tag: str) -> list[dict[str, object]]:
    return [
        job_row({"tenant": "hainan", "name": f"{tag}-{k}", "resources": {"cpu": 1, "memory_gib": 1}})
        for k in range(n)
    ]


def _ids(store: Store) -> set[str]:
    with store.engine.connect() as conn:
        return {r[0] for r in conn.execute(text("SELECT id FROM jobs"))}


def _base_backup(national: NationalStore, site: str) -> subprocess.CompletedProcess[str]:
    """The backup container's script, once, as it runs beside the site's Patroni."""
    s = national.sites[site]
    env = {
        **national.tool_env(),
        "PATRONI_URL": f"http://{s.ip}:{s.rest}",
        "PGDATA": str(national.site_dir(site) / "pg" / "data"),
        "PGHOST": s.ip,
        "PGPORT": str(s.pg),
        "PGUSER": "postgres",
        "HOME": "/tmp",
        "BACKUP_KEEP": "2",
    }
    argv = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]
    script = national.tools / "base-backup.py"
    shutil.copy(base_backup.__file__, script)
    os.chmod(script, 0o755)
    return subprocess.run(
        [*argv, "/usr/bin/python3", str(script), "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _archive_now(national: NationalStore, site: str, timeout_s: float = 30.0) -> str:
    """Close the current WAL segment and wait until the archiver has stored it; its name."""
    rows = national.site_sql(site, "SELECT pg_walfile_name(pg_switch_wal())")
    assert rows, national.logs_hint()
    segment = rows[0]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = national.site_sql(site, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
        if done and done[0] >= segment:
            return segment
        time.sleep(0.2)
    raise AssertionError(f"{segment} was not archived in {timeout_s:g}s ({national.logs_hint()})")


@pytest.mark.timeout(420)
def test_the_national_store_comes_back_from_its_backups_after_both_sites_are_lost() -> None:
    why = unavailable()
    need(why is None, why or "")
    work = Path(tempfile.mkdtemp(prefix="yiwang-restore-"))
    os.chmod(work, 0o755)
    bucket = work / "bucket"  # the object store: outlives both sites
    first = NationalStore(root=work / "before", bucket=bucket, say=print)
    second: NationalStore | None = None
    try:
        first.start()
        store = Store(first.sqlalchemy_url())
        before_backup = _jobs(200, "before-backup")
        store.insert_jobs_bulk(before_backup)  # committed on both sites: acknowledged
        replica = _base_backup(first, "guian")
        assert replica.returncode == 0 and "base backup check: replica" in replica.stdout, replica
        done = _base_backup(first, "beijing")
        assert done.returncode == 0 and "base backup check: backed-up" in done.stdout, (
            done,
            first.logs_hint(),
        )
        after_backup = _jobs(300, "after-backup")
        store.insert_jobs_bulk(after_backup)  # only in the WAL after the base backup
        _archive_now(first, "beijing")
        unarchived = _jobs(50, "unarchived")
        store.insert_jobs_bulk(unarchived)  # committed; their segment not yet archived
        store.close()
        # both database sites and the witness lost: every process, every folder but the bucket
        first.stop()
        first.remove()
        assert (bucket / "basebackups_005").is_dir() and any((bucket / "wal_005").iterdir())

        t0 = time.monotonic()
        second = NationalStore(
            root=work / "after", bucket=bucket, restore_script=Path(restore_backup.__file__), say=print
        )
        second.start(timeout_s=180)
        restored_s = time.monotonic() - t0
        print(f"restored from the bucket to a primary and a synchronous standby in {restored_s:.1f}s")
        again = Store(second.sqlalchemy_url())
        ids = _ids(again)
        again.close()
        archived = {r["id"] for r in before_backup + after_backup}
        assert archived <= ids, f"{len(archived - ids)} archived jobs missing"
        lost = {r["id"] for r in unarchived} - ids
        print(f"jobs committed after the last archived segment and lost with both sites: {len(lost)} of 50")
        assert ids <= archived | {r["id"] for r in unarchived}  # nothing else appeared
        # the restored primary took a new timeline (promoted at the end of the archive), and
        # the other site streams from it: what it holds is on both sites again
        timeline = second.site_sql("beijing", "SELECT timeline_id FROM pg_control_checkpoint()")
        assert timeline and int(timeline[0]) >= 2, timeline
        on_guian = second.site_sql("guian", "SELECT count(*) FROM jobs")
        assert on_guian and int(on_guian[0]) == len(ids), on_guian
    finally:
        for national in (first, second):
            if national is not None:
                national.stop()
        shutil.rmtree(work, ignore_errors=True)
        sys.stdout.flush()
