"""The local executor's fence: a small watchdog process that stops an agent's jobs when the agent
can no longer vouch for them, even if the agent itself is frozen (SIGSTOP) or dead (SIGKILL).

It runs as ``python fence.py BASE AGENT_PID KILL_GRACE_S`` in a session of its own, so a signal
sent to the agent's process group does not reach it, and uses only the standard library (it is
started as a script, without importing the ``controller`` package). Every ``INTERVAL_S`` it:

- reads ``BASE/.lease``: two times on ``CLOCK_MONOTONIC`` (one clock for every process of the
  machine, not stopped by SIGSTOP), written by the agent after each renewal: ``suspend_at`` and
  ``deadline``. Past ``suspend_at`` (the agent has missed renewals) every process group listed in
  ``BASE/.live/`` is paused with SIGSTOP, so no attempt finishes while its agent cannot report it
  (a job that ended unseen would be re-placed and run again); a renewal moves the times on and
  the groups get SIGCONT. Past ``deadline`` they get SIGTERM, then SIGKILL after
  ``KILL_GRACE_S``, and ``BASE/.live/<pgid>.fenced`` records why, so the executor reports the
  attempt as fenced (to be released and re-placed), not as the job's own failure;
- checks that the agent is still its parent; once it is not (the agent died), SIGKILLs every
  listed group, removes their files and exits.

The agent's deadline is a margin below its lease with the controller (which re-places the jobs
only after lease + grace from its last contact), so the jobs are stopped before the controller
can start them elsewhere: an attempt never overlaps its successor.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

INTERVAL_S = 0.1
LEASE_FILE = ".lease"
LIVE_DIR = ".live"


def read_lease(base: Path) -> tuple[float, float] | None:
    """(suspend_at, deadline), or None when the agent holds no lease."""
    try:
        suspend_at, deadline = (float(x) for x in (base / LEASE_FILE).read_text().split())
    except (FileNotFoundError, ValueError):
        return None
    return suspend_at, deadline


def write_lease(base: Path, lease: tuple[float, float] | None) -> None:
    """Atomically replace the lease file (the fence never reads half of it); None removes it."""
    path = base / LEASE_FILE
    if lease is None:
        path.unlink(missing_ok=True)
        return
    tmp = base / f"{LEASE_FILE}.{os.getpid()}.tmp"
    tmp.write_text(f"{lease[0]:.6f} {lease[1]:.6f}\n")
    os.replace(tmp, path)


def live_groups(base: Path) -> list[int]:
    try:
        names = os.listdir(base / LIVE_DIR)
    except FileNotFoundError:
        return []
    return sorted(int(n) for n in names if n.isdigit())


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """False once the group is gone."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_all(base: Path) -> None:
    """SIGKILL every listed group and forget it (the agent that started them is gone)."""
    for pgid in live_groups(base):
        signal_group(pgid, signal.SIGKILL)
        (base / LIVE_DIR / str(pgid)).unlink(missing_ok=True)
        (base / LIVE_DIR / f"{pgid}.fenced").unlink(missing_ok=True)


def watch(base: Path, agent_pid: int, kill_grace_s: float) -> None:
    term_sent: dict[int, float] = {}
    suspended: set[int] = set()
    while True:
        if os.getppid() != agent_pid:
            kill_all(base)
            return
        lease = read_lease(base)
        t = time.monotonic()
        groups = live_groups(base)
        if lease is not None and t >= lease[1]:
            for pgid in groups:
                marker = base / LIVE_DIR / f"{pgid}.fenced"
                if not marker.exists():
                    marker.write_text(f"lease deadline {lease[1]:.3f} passed at {t:.3f}\n")
                first = term_sent.setdefault(pgid, t)
                signal_group(pgid, signal.SIGKILL if t - first >= kill_grace_s else signal.SIGTERM)
                if pgid in suspended:  # a stopped process acts on SIGTERM only once continued
                    signal_group(pgid, signal.SIGCONT)
            suspended.clear()
        elif lease is not None and t >= lease[0]:
            for pgid in groups:
                if pgid not in suspended and signal_group(pgid, signal.SIGSTOP):
                    suspended.add(pgid)
        else:
            term_sent.clear()
            for pgid in sorted(suspended):
                signal_group(pgid, signal.SIGCONT)
            suspended.clear()
        suspended &= set(groups)
        time.sleep(INTERVAL_S)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: fence.py BASE AGENT_PID KILL_GRACE_S", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for the agent is the agent's
    watch(Path(argv[0]), int(argv[1]), float(argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
