"""A stand-in for WAL-G's command line, over a folder as the object store, for the restore drill.

WAL-G cannot be installed on these machines (it is not on PyPI, Debian or npm), so the drill that
restores the national store from its backups (tests/drills/test_restore.py, docs/national.md)
runs this in its place, under the name ``wal-g``, with WAL-G's own file storage setting
(``WALG_FILE_PREFIX``: the bucket is that folder). It does what the store's deployment asks of
WAL-G, with the same arguments and the same meaning, and no more:

- ``wal-push PATH``: Patroni's ``archive_command``; the segment (or history file) is copied into
  ``wal_005/`` and flushed before it exits 0, so PostgreSQL recycles only what is stored;
- ``wal-fetch NAME DEST``: the ``restore_command``; exit 1 when the archive has no such file
  (PostgreSQL then ends recovery at the end of the archive);
- ``backup-push PGDATA``: a base backup of the running primary (``pg_basebackup`` without WAL,
  as WAL-G takes one: restorable only with the archive), stored as ``basebackups_005/base_<first
  segment>`` with a sentinel file written last (a backup without one is incomplete and not
  listed);
- ``backup-list --json``, ``backup-fetch DIR LATEST|NAME`` and ``delete retain FULL N --confirm``
  (the newest N base backups kept, and the WAL from the oldest of them on).

It imports only Python's standard library: the drill copies it beside the store's folders, where
the ``postgres`` user who runs Patroni can read it (a checkout may be private). Compression,
encryption and the real object stores are WAL-G's; the drill does not measure them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

SEGMENT = re.compile(r"^[0-9A-F]{24}$")  # a WAL segment's file name (timeline, log, segment)
START = re.compile(r"START WAL LOCATION: \S+ \(file ([0-9A-F]{24})\)")


def bucket() -> Path:
    prefix = os.environ.get("WALG_FILE_PREFIX")
    if not prefix:
        raise SystemExit("wal-g: WALG_FILE_PREFIX is not set")
    return Path(prefix)


def _store(src: Path, dest: Path) -> None:
    """Copy ``src`` to ``dest`` durably: a temporary file flushed, renamed, the folder flushed."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    with os.fdopen(fd, "wb") as out, src.open("rb") as f:
        shutil.copyfileobj(f, out)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, dest)
    dirfd = os.open(dest.parent, os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


def wal_push(path: str) -> int:
    _store(Path(path), bucket() / "wal_005" / Path(path).name)
    return 0


def wal_fetch(name: str, dest: str) -> int:
    src = bucket() / "wal_005" / name
    if not src.is_file():
        print(f"wal-g: ArchiveNonExistenceError: {name} is not in the archive", file=sys.stderr)
        return 1
    shutil.copyfile(src, dest)
    return 0


def backups() -> list[dict[str, str]]:
    """The complete base backups (those with a sentinel), oldest first."""
    root = bucket() / "basebackups_005"
    out = []
    for sentinel in sorted(root.glob("*_backup_stop_sentinel.json")) if root.exists() else []:
        out.append(json.loads(sentinel.read_text()))
    return sorted(out, key=lambda b: (b["time"], b["backup_name"]))


def backup_push(pgdata: str) -> int:
    """A base backup of the server ``PGHOST``/``PGPORT``/``PGUSER`` name (the primary whose data
    folder is ``pgdata``), without its WAL."""
    root = bucket() / "basebackups_005"
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=root, prefix=".push-"))
    try:
        subprocess.run(
            ["pg_basebackup", "-D", str(work / "data"), "-X", "none", "-c", "fast", "--no-password"],
            check=True,
            timeout=3600,
        )
        label = (work / "data" / "backup_label").read_text()
        match = START.search(label)
        if match is None:
            print("wal-g: the backup has no start segment in its backup_label", file=sys.stderr)
            return 1
        name = f"base_{match.group(1)}"
        os.replace(work / "data", root / name)
        sentinel = {
            "backup_name": name,
            "wal_file_name": match.group(1),
            "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "data_dir": pgdata,
        }
        (root / f"{name}_backup_stop_sentinel.json").write_text(json.dumps(sentinel))
        print(f"wal-g: wrote backup {name}", file=sys.stderr)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def backup_fetch(dest: str, which: str) -> int:
    listed = backups()
    if which != "LATEST":
        listed = [b for b in listed if b["backup_name"] == which]
    if not listed:
        print(f"wal-g: no backup {which}", file=sys.stderr)
        return 1
    src = bucket() / "basebackups_005" / listed[-1]["backup_name"]
    target = Path(dest)
    target.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, target, dirs_exist_ok=True)
    os.chmod(target, 0o700)
    return 0


def delete_retain(keep: int) -> int:
    listed = backups()
    root = bucket() / "basebackups_005"
    for b in listed[: max(len(listed) - keep, 0)]:
        shutil.rmtree(root / b["backup_name"], ignore_errors=True)
        (root / f"{b['backup_name']}_backup_stop_sentinel.json").unlink(missing_ok=True)
    kept = listed[-keep:] if keep > 0 else []
    if kept:
        oldest = kept[0]["wal_file_name"]
        for f in (bucket() / "wal_005").glob("*"):
            if SEGMENT.match(f.name[:24]) and f.name[:24] < oldest and not f.name.endswith(".history"):
                f.unlink()
    return 0


def main(argv: list[str]) -> int:
    match argv:
        case ["wal-push", path]:
            return wal_push(path)
        case ["wal-fetch", name, dest]:
            return wal_fetch(name, dest)
        case ["backup-push", pgdata]:
            return backup_push(pgdata)
        case ["backup-list", "--json"]:
            listed = backups()
            if not listed:
                print("No backups found", file=sys.stderr)
                return 1
            print(json.dumps(listed))
            return 0
        case ["backup-fetch", dest, which]:
            return backup_fetch(dest, which)
        case ["delete", "retain", "FULL", keep, "--confirm"]:
            return delete_retain(int(keep))
    print(f"wal-g (the drill's stand-in): not supported: {' '.join(argv)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
