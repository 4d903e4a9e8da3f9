"""The local executor's run-once guards with real processes: jobs die with their agent (even a
SIGKILLed one), the fence pauses jobs when renewals are late and stops them at the lease
deadline even when the agent does nothing (frozen), and a restarted agent never runs an attempt
of its predecessor again, but knows whether it finished."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from controller.executors.base import REASON_FENCED, REASON_INTERRUPTED
from controller.executors.local import LocalExecutor
from tests.executors.conftest import build_assignment, wait_terminal
from tests.executors.test_executor_local import _dead, _wait_dead, _wait_file


def _state(pid: int) -> str:
    """The process state letter from /proc (R, S, T for stopped, Z, ...); '' once gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:  # gone (reading the stat of an exiting process can fail with ESRCH)
        return ""


def _wait(probe, what: str, timeout_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _sleeper(pidfile: Path, seconds: int = 120) -> dict[str, object]:
    """A job whose own shell (it writes its pid) runs a child that outlives a killed parent."""
    return {"runtime": {"command": ["sh", "-c", f"echo $$ > {pidfile}; sleep {seconds} & wait"]}}


AGENT = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {root!r})
    from controller.executors.local import LocalExecutor
    from tests.executors.conftest import build_assignment
    ex = LocalExecutor({base!r}, kill_grace_s=0.5)
    ex.start(build_assignment(runtime={{"command": ["sh", "-c", "echo $$ > {pidfile}; sleep 120 & wait"]}}))
    print("started", flush=True)
    time.sleep(600)
    """
)


def test_a_killed_agents_jobs_die_with_it(tmp_path: Path) -> None:
    root = str(Path(__file__).resolve().parents[2])
    pidfile = tmp_path / "pid"
    script = AGENT.format(root=root, base=str(tmp_path / "runs"), pidfile=str(pidfile))
    agent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert agent.stdout is not None and agent.stdout.readline().strip() == "started"
        job_pid = int(_wait_file(pidfile))
        assert not _dead(job_pid)
        agent.send_signal(signal.SIGKILL)  # no clean-up code of the agent runs
        agent.wait()
        assert _wait_dead(job_pid), "the job's shell outlived its agent"
        # Its child (same process group) too: the fence kills the whole group.
        _wait(lambda: not os.listdir(tmp_path / "runs" / ".live"), "the fence to clear the live groups")
    finally:
        agent.kill()
        agent.wait()


def test_the_fence_pauses_late_jobs_and_stops_them_at_the_deadline(tmp_path: Path) -> None:
    ex = LocalExecutor(tmp_path / "runs", kill_grace_s=0.5)
    try:
        pidfile = tmp_path / "pid"
        t = time.monotonic()
        ex.fence(t + 30, t + 60)  # a fresh lease
        ex.start(build_assignment(**_sleeper(pidfile)))
        pid = int(_wait_file(pidfile))
        assert _state(pid) in ("S", "R")
        # Renewals are late: the fence pauses the job (SIGSTOP) ...
        ex.fence(time.monotonic() - 0.1, time.monotonic() + 60)
        _wait(lambda: _state(pid) == "T", "the job to be paused")
        # ... a renewal lets it go on ...
        t = time.monotonic()
        ex.fence(t + 30, t + 60)
        _wait(lambda: _state(pid) in ("S", "R"), "the job to be continued")
        # ... and past the deadline the fence stops it, with nobody (a frozen agent) asking.
        t = time.monotonic()
        ex.fence(t, t + 0.2)
        status = wait_terminal(ex, "job-1")
        assert (status.phase, status.reason) == ("Failed", REASON_FENCED), status
        assert _wait_dead(pid)
    finally:
        ex.close()


def test_a_new_agent_never_reruns_its_predecessors_attempts(tmp_path: Path) -> None:
    base = tmp_path / "runs"
    first = LocalExecutor(base, kill_grace_s=0.5)
    done = build_assignment("done", runtime={"command": ["sh", "-c", "echo result"]})
    first.start(done)
    assert wait_terminal(first, "done").phase == "Succeeded"
    pidfile = tmp_path / "pid"
    cut = build_assignment("cut", **_sleeper(pidfile))
    first.start(cut)
    pid = int(_wait_file(pidfile))
    # The agent dies without closing its executor; its successor over the same directory kills
    # what is left, and reports each old attempt from its record instead of running it again.
    second = LocalExecutor(base, kill_grace_s=0.5)
    try:
        assert _wait_dead(pid)
        second.start(done)
        second.start(cut)
        assert (second.poll("done", 1).phase, second.poll("done", 1).reason) == ("Succeeded", "Completed")
        cut_status = second.poll("cut", 1)
        assert (cut_status.phase, cut_status.reason) == ("Failed", REASON_INTERRUPTED)
        assert second.active() == []
    finally:
        second.close()
        first.close()
