"""The national store's base-backup script (``infra/yiwang_infra/base_backup.py``, written as it is
into the store's ConfigMap) run for real with ``--once``: against a fake Patroni REST API (200 on
``/primary`` for the leader, 503 for a replica) and a fake ``wal-g`` on PATH that records its
calls and answers ``backup-list`` as told. A replica backs nothing up; the primary takes a base
backup when the newest is older than the interval or there is none, then keeps the newest N."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from infra.yiwang_infra import base_backup
from tests.conftest import free_port

SCRIPT = Path(base_backup.__file__)
FAKE_WALG = """#!/usr/bin/env bash
echo "$*" >> "$WALG_CALLS"
case "$1" in
  backup-list)
    if [ -s "$WALG_LIST" ]; then cat "$WALG_LIST"; else echo "No backups found" >&2; exit 1; fi ;;
  backup-push)
    [ -n "${WALG_FAIL_PUSH:-}" ] && { echo "upload failed" >&2; exit 1; } ;;
esac
exit 0
"""


@pytest.fixture
def patroni() -> Iterator[dict[str, int]]:
    """A fake Patroni REST API; ``state["status"]`` is what ``GET /primary`` answers."""
    state = {"status": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(state["status"] if self.path == "/primary" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["port"] = port
    yield state
    server.shutdown()


def run_once(
    tmp: Path, patroni_port: int, backups: list[datetime] | None, **extra: str
) -> tuple[int, str, list[str]]:
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    walg = bin_dir / "wal-g"
    walg.write_text(FAKE_WALG)
    walg.chmod(0o755)
    calls, listing = tmp / "calls", tmp / "list.json"
    calls.write_text("")
    listing.write_text(
        json.dumps(
            [
                {"backup_name": f"base_{k}", "time": t.isoformat().replace("+00:00", "Z")}
                for k, t in enumerate(backups)
            ]
        )
        if backups
        else ""
    )
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PGDATA": "/var/lib/postgresql/data/pgdata",
        "PATRONI_URL": f"http://127.0.0.1:{patroni_port}",
        "BACKUP_EVERY_S": "86400",
        "BACKUP_KEEP": "35",
        "WALG_CALLS": str(calls),
        "WALG_LIST": str(listing),
        **extra,
    }
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--once"], env=env, capture_output=True, text=True, timeout=60
    )
    return r.returncode, r.stdout + r.stderr, calls.read_text().splitlines()


def test_a_replica_takes_no_backup(tmp_path: Path, patroni: dict[str, int]) -> None:
    patroni["status"] = 503
    code, out, calls = run_once(tmp_path, patroni["port"], None)
    assert code == 0 and "check: replica" in out and calls == []


def test_patroni_not_answering_counts_as_not_primary(tmp_path: Path) -> None:
    code, out, calls = run_once(tmp_path, free_port(), None)
    assert code == 0 and "check: replica" in out and calls == []


def test_the_primary_backs_up_when_it_has_none_then_keeps_the_newest(
    tmp_path: Path, patroni: dict[str, int]
) -> None:
    code, out, calls = run_once(tmp_path, patroni["port"], None)
    assert code == 0 and "check: backed-up" in out, out
    assert calls == [
        "backup-list --json",
        "backup-push /var/lib/postgresql/data/pgdata",
        "delete retain FULL 35 --confirm",
    ]


def test_the_primary_waits_while_its_newest_backup_is_fresh(tmp_path: Path, patroni: dict[str, int]) -> None:
    now = datetime.now(UTC)
    code, out, calls = run_once(
        tmp_path, patroni["port"], [now - timedelta(days=3), now - timedelta(hours=2)]
    )
    assert code == 0 and "check: fresh" in out and calls == ["backup-list --json"]
    code, out, calls = run_once(
        tmp_path, patroni["port"], [now - timedelta(days=3), now - timedelta(hours=25)]
    )
    assert code == 0 and "check: backed-up" in out and calls[1].startswith("backup-push")


def test_a_failed_upload_is_reported_and_keeps_every_backup(tmp_path: Path, patroni: dict[str, int]) -> None:
    code, out, calls = run_once(tmp_path, patroni["port"], None, WALG_FAIL_PUSH="1")
    assert code == 1 and "check: failed" in out
    assert not any(c.startswith("delete") for c in calls)
