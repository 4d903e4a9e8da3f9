"""The national store's restore from its backups: the command of Patroni's restore bootstrap.

When both national database sites have lost their data (or a store is to be rebuilt elsewhere),
the stack is brought up with ``controller.store.backup.restore: true``: Patroni's ``bootstrap``
then runs this script instead of ``initdb`` (``controller.store.patroni.restore_bootstrap``), on
the first member to start, with ``--scope`` and ``--datadir``. It fetches the newest base
backup from this site's bucket into the data folder (``wal-g backup-fetch <datadir> LATEST``);
Patroni then starts PostgreSQL in recovery with ``restore_command = wal-g wal-fetch %f %p``,
which replays every archived WAL segment to the end of the archive, and promotes it. What was
committed but not yet archived when the sites were lost is lost: at most ``archive_timeout``
(60 s) of commits, the recovery point a loss of both sites has (docs/national.md).

The national stacks write this file, as it is, into the store's ConfigMap
(``restore-from-backup.py``); it imports nothing outside Python's standard library. The restore
drill runs it as Patroni calls it (tests/drills/test_restore.py)."""

from __future__ import annotations

import os
import subprocess
import sys


def main(argv: list[str]) -> int:
    datadir = next((a.split("=", 1)[1] for a in argv if a.startswith("--datadir=")), None)
    if not datadir:
        print("restore-from-backup: Patroni passes --datadir=<the data folder>", file=sys.stderr)
        return 2
    os.makedirs(datadir, mode=0o700, exist_ok=True)
    if os.listdir(datadir):
        print(f"restore-from-backup: {datadir} is not empty; refusing to restore over it", file=sys.stderr)
        return 1
    done = subprocess.run(["wal-g", "backup-fetch", datadir, "LATEST"], check=False, timeout=24 * 3600)
    if done.returncode != 0:
        print("restore-from-backup: wal-g backup-fetch failed", file=sys.stderr)
        return 1
    os.chmod(datadir, 0o700)  # PostgreSQL refuses a data folder others can read
    for stale in ("postmaster.pid", "postmaster.opts"):  # a backup never has them; be sure
        path = os.path.join(datadir, stale)
        if os.path.exists(path):
            os.unlink(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
