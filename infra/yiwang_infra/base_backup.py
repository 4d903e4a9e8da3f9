"""The national store's base backups: the script its backup container runs beside Patroni.

WAL-G archives every WAL segment from the primary (Patroni's ``archive_command``), but a restore
starts from a base backup, and without one the archive restores nothing. This script, run in a
container of the Patroni pod (the same image, which has WAL-G and Python, the same data volume),
checks every ``BACKUP_CHECK_S`` (600 s) whether this site's member is the primary (Patroni's REST
API answers ``GET /primary`` with 200 only there) and, when the newest base backup in this
site's bucket is older than ``BACKUP_EVERY_S`` (a day) or there is none (a site that just became
primary after a failover has none of its own yet), takes one (``wal-g backup-push``) and then
deletes all but the newest ``BACKUP_KEEP`` full backups and the WAL only they needed
(``wal-g delete retain FULL``). A replica takes none: its site's bucket gets backups when it leads.

The national stacks write this file, as it is, into the store's ConfigMap (``base-backup.py``);
it imports nothing outside Python's standard library. ``--once``: one check, then exit (the tests
run it so, against a fake Patroni and a fake ``wal-g``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime


def is_primary(patroni_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{patroni_url}/primary", timeout=5) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):  # 503 on a replica, or Patroni not answering
        return False


def newest_backup_age_s(now: float) -> float | None:
    """Seconds since the newest base backup in the bucket, None when it holds none."""
    out = subprocess.run(["wal-g", "backup-list", "--json"], capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        if "No backups found" in out.stderr + out.stdout:
            return None
        raise RuntimeError(f"wal-g backup-list failed: {out.stderr.strip()[-500:]}")
    listed = json.loads(out.stdout or "[]") or []
    times = [datetime.fromisoformat(b["time"].replace("Z", "+00:00")) for b in listed if b.get("time")]
    if not times:
        return None
    return now - max(times).astimezone(UTC).timestamp()


def check(patroni_url: str, pgdata: str, every_s: float, keep: int) -> str:
    """One check: what it did (``replica``, ``fresh`` or ``backed-up``)."""
    if not is_primary(patroni_url):
        return "replica"
    age = newest_backup_age_s(time.time())
    if age is not None and age < every_s:
        return "fresh"
    subprocess.run(["wal-g", "backup-push", pgdata], check=True, timeout=24 * 3600)
    subprocess.run(["wal-g", "delete", "retain", "FULL", str(keep), "--confirm"], check=True, timeout=3600)
    return "backed-up"


def main(argv: list[str]) -> int:
    env = os.environ
    patroni_url = env.get("PATRONI_URL", "http://127.0.0.1:8008")
    pgdata = env["PGDATA"]
    every_s = float(env.get("BACKUP_EVERY_S", "86400"))
    keep = int(env.get("BACKUP_KEEP", "35"))
    check_s = float(env.get("BACKUP_CHECK_S", "600"))
    while True:
        try:
            did = check(patroni_url, pgdata, every_s, keep)
        except (subprocess.SubprocessError, RuntimeError, OSError, ValueError) as exc:
            did = f"failed: {exc}"
        print(f"{datetime.now(UTC).isoformat(timespec='seconds')} base backup check: {did}", flush=True)
        if "--once" in argv:
            return 0 if not did.startswith("failed") else 1
        time.sleep(check_s)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
