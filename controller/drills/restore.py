"""The restore drill: the national store made again from its backups after both sites are lost.

Real etcd x3 and Patroni + PostgreSQL 15 x2 (``national.py``) start from empty folders and
archive their WAL through the deployed ``archive_command`` (``wal-g wal-push %p``; WAL-G is not
on these machines, so its stand-in ``walg.py`` runs under that name over a folder as the bucket).
Then:

1. jobs are committed (``before``), and the deployed backup script
   (``infra/yiwang_infra/base_backup.py --once``) runs beside each site: the replica takes none,
   the primary takes a base backup;
2. more jobs are committed (``after``), and their WAL segment is closed and archived;
3. more jobs are committed into a segment not yet archived (``unarchived``);
4. every process of every site is killed and every folder removed, except the bucket;
5. a new store starts whose Patroni bootstraps with the deployed restore method
   (``controller.store.patroni.restore_bootstrap``, running
   ``infra/yiwang_infra/restore_backup.py``); the second site clones it.

Measured: the time from step 5's start to a primary and a synchronous standby, the jobs back, on
both sites. The budgets: every archived job back, nothing else appearing, all of it on the
standby too, a new timeline, and the restore within ``budget_restore_s``. The unarchived jobs are
counted, not budgeted: losing them is the recovery point a loss of both sites has (at most
``archive_timeout``, 60 s, of commits; docs/national.md). ``yiwang drill restore`` runs it and
writes ``<out>/national-restore.json``; tests/drills/test_restore.py runs it in ``make test``.

The two scripts are read from the checkout's ``infra/`` (they are files the stacks write into
the store's ConfigMap, not imported here)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text

from controller.bench.mixed import job_row
from controller.drills.national import NationalStore
from controller.store.store import Store

INFRA = Path(__file__).resolve().parents[2] / "infra" / "yiwang_infra"
BASE_BACKUP = INFRA / "base_backup.py"
RESTORE = INFRA / "restore_backup.py"

Say = Callable[[str], None]


def scripts_missing() -> str | None:
    """Why the drill cannot run here (the scripts come from a checkout), or None."""
    for script in (BASE_BACKUP, RESTORE):
        if not script.is_file():
            return f"{script} is missing: the restore drill runs from a checkout of the repository"
    return None


def _jobs(n: int, tag: str) -> list[dict[str, Any]]:
    """``n`` Pending job rows as a submission writes them."""
    body = {"tenant": "hainan", "resources": {"cpu": 1, "memory_gib": 1}}
    return [job_row({**body, "name": f"{tag}-{k}"}) for k in range(n)]


def _ids(store: Store) -> set[str]:
    with store.engine.connect() as conn:
        return {r[0] for r in conn.execute(text("SELECT id FROM jobs"))}


def base_backup(national: NationalStore, site: str) -> subprocess.CompletedProcess[str]:
    """The backup container's script, once, as it runs beside the site's Patroni (as postgres)."""
    s = national.sites[site]
    script = national.tools / "base-backup.py"
    shutil.copy(BASE_BACKUP, script)
    os.chmod(script, 0o755)
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
    argv = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "/usr/bin/python3"]
    return subprocess.run(
        [*argv, str(script), "--once"], env=env, capture_output=True, text=True, timeout=600
    )


def archive_now(national: NationalStore, site: str, timeout_s: float = 60.0) -> str:
    """Close the current WAL segment and wait until the archiver has stored it; its name."""
    rows = national.site_sql(site, "SELECT pg_walfile_name(pg_switch_wal())")
    if not rows:
        raise RuntimeError(f"{site} did not answer ({national.logs_hint()})")
    segment = rows[0]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = national.site_sql(site, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
        if done and done[0] >= segment:
            return segment
        time.sleep(0.2)
    raise RuntimeError(f"{segment} was not archived in {timeout_s:g}s ({national.logs_hint()})")


def run_restore_drill(
    *,
    before: int = 200,
    after: int = 300,
    unarchived: int = 50,
    budget_restore_s: float = 60.0,
    say: Say | None = None,
    out: Path | None = None,
) -> dict[str, Any]:
    """Run the drill (see the module); its report, also written to ``out``/national-restore.json."""
    say = say or (lambda _m: None)
    missing = scripts_missing()
    if missing:
        raise RuntimeError(missing)
    work = Path(tempfile.mkdtemp(prefix="yiwang-restore-"))
    os.chmod(work, 0o755)
    bucket = work / "bucket"  # the object store: outlives both sites
    first = NationalStore(root=work / "before", bucket=bucket, say=say)
    second: NationalStore | None = None
    report: dict[str, Any] = {"name": "national-restore", "error": None}
    try:
        first.start()
        store = Store(first.sqlalchemy_url())
        rows_before = _jobs(before, "before-backup")
        store.insert_jobs_bulk(rows_before)  # committed on both sites: acknowledged
        on_replica = base_backup(first, "guian")
        on_primary = base_backup(first, "beijing")
        report["backup"] = {"guian": on_replica.stdout.strip(), "beijing": on_primary.stdout.strip()}
        if "backed-up" not in on_primary.stdout:
            raise RuntimeError(f"no base backup: {on_primary.stdout} {on_primary.stderr}")
        rows_after = _jobs(after, "after-backup")
        store.insert_jobs_bulk(rows_after)  # only in the WAL after the base backup
        report["last_archived_segment"] = archive_now(first, "beijing")
        rows_unarchived = _jobs(unarchived, "unarchived")
        store.insert_jobs_bulk(rows_unarchived)  # committed; their segment not yet archived
        store.close()
        say("  both sites and the witness lost: every process killed, every folder removed but the bucket")
        first.stop()
        first.remove()
        wal = bucket / "wal_005"
        report["archive_mib"] = round(sum(f.stat().st_size for f in wal.iterdir()) / 2**20, 1)

        t0 = time.monotonic()
        second = NationalStore(root=work / "after", bucket=bucket, restore_script=RESTORE, say=say)
        second.start(timeout_s=max(180.0, 3 * budget_restore_s))
        restore_s = round(time.monotonic() - t0, 1)
        again = Store(second.sqlalchemy_url())
        ids = _ids(again)
        again.close()
        archived = {r["id"] for r in rows_before + rows_after}
        written = archived | {r["id"] for r in rows_unarchived}
        timeline = second.site_sql("beijing", "SELECT timeline_id FROM pg_control_checkpoint()")
        on_standby = second.site_sql("guian", "SELECT count(*) FROM jobs")
        report["measurements"] = {
            "restore_s": restore_s,
            "archived_jobs": len(archived),
            "archived_lost": len(archived - ids),
            "unarchived_jobs": len(rows_unarchived),
            "unarchived_lost": len({r["id"] for r in rows_unarchived} - ids),
            "appeared": len(ids - written),
            "jobs_on_standby": int(on_standby[0]) if on_standby else None,
            "jobs_restored": len(ids),
            "timeline": int(timeline[0]) if timeline else None,
        }
    except Exception as exc:  # the report says what failed; the caller decides
        report["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        for national in (first, second):
            if national is not None:
                national.stop()
        shutil.rmtree(work, ignore_errors=True)
    m = report.get("measurements") or {}
    report["results"] = [
        {"name": name, "value": value, "passed": ok}
        for name, value, ok in (
            ("archived_lost", m.get("archived_lost"), m.get("archived_lost") == 0),
            ("appeared", m.get("appeared"), m.get("appeared") == 0),
            (
                "jobs_on_standby",
                m.get("jobs_on_standby"),
                m.get("jobs_on_standby") is not None and m.get("jobs_on_standby") == m.get("jobs_restored"),
            ),
            ("timeline", m.get("timeline"), (m.get("timeline") or 0) >= 2),
            ("restore_s", m.get("restore_s"), (m.get("restore_s") or float("inf")) <= budget_restore_s),
        )
    ]
    report["passed"] = report["error"] is None and all(r["passed"] for r in report["results"])
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "national-restore.json").write_text(json.dumps(report, indent=2))
    return report
