"""The agents' tests' live controller (``controller.live.LiveController`` with a fast loop
and a short lease, SQLite in a temp dir) and small helpers for their jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controller.live import LiveController, wait_for

__all__ = [
    "FAST",
    "LiveController",
    "live_controller",
    "marker_command",
    "starts",
    "wait_file_then_exit",
    "wait_for",
]

# The tests' controller: a fast control loop and a short leader lease.
FAST = {"loop_interval_s": 0.05, "leader_ttl_s": 1.0}


def live_controller(db: Path, **settings: Any) -> LiveController:
    """A LiveController (controller.live) over ``db`` with the tests' timings."""
    return LiveController(db, **{**FAST, **settings})


def marker_command(marker: Path, *then: str) -> list[str]:
    """A tiny real job: append 'job attempt cluster' to ``marker`` (one line per process start),
    then run ``then`` (a shell snippet)."""
    script = f'echo "$YIWANG_JOB_ID $YIWANG_ATTEMPT $YIWANG_CLUSTER" >> {marker}; {" ".join(then) or "true"}'
    return ["/bin/sh", "-c", script]


def wait_file_then_exit(go: Path, code: int = 0) -> str:
    return f"while [ ! -e {go} ]; do sleep 0.05; done; exit {code}"


def starts(marker: Path) -> list[tuple[str, int, str]]:
    if not marker.exists():
        return []
    out = []
    for line in marker.read_text().splitlines():
        job, attempt, cluster = line.split()
        out.append((job, int(attempt), cluster))
    return out
