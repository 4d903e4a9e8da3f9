"""Runs a job's command as a local OS process: the embedded default for one machine.

Each attempt gets its own working directory ``<base>/<job>/attempt-<n>`` (created exclusively,
so an attempt is never started twice, not even by a second executor over the same base dir), a
clean environment (the agent's own variables, which may hold tokens, are not inherited), its
stdout and stderr in files there, and its own session, so that stopping it signals the whole
process group: SIGTERM, then SIGKILL after a grace period.

Nothing here blocks: exits are detected with ``waitid(WNOHANG | WNOWAIT)``, which leaves the
exited leader a zombie until the group's stragglers are killed, so its pid (the group id) cannot
be reused by an unrelated process while we still signal it. Deadlines and SIGKILL escalations are
enforced on every call and by one watchdog thread that runs only while processes are alive.

A gang (replicas > 1) runs as one process that is told the gang size in ``YIWANG_REPLICAS``;
``allocated()`` still counts every replica's resources, as the controller reserved them.

Run once, also when the agent fails (docs/agents.md, "Run once"):
- the job runs under ``setpriv --pdeathsig KILL`` and a tiny ``sh`` that records its exit code
  in ``.exit`` beside its logs, so a job dies with its agent, and a restarted agent that finds an
  attempt of its predecessor knows whether it finished (and how) or was interrupted;
- every live process group is listed in ``<base>/.live/``; a fence process (``fence.py``, in a
  session of its own) stops them all when the agent's lease deadline (``fence()``) passes, even
  if the agent is frozen, and when the agent dies; a new executor over the same directory first
  kills whatever a previous one left running there.

Why one module of this length: an attempt's folder, process group, output files and stop escalation
are one lifecycle, read best in one place.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from controller.assignments import Assignment
from controller.executors.base import (
    REASON_COMPLETED,
    REASON_DEADLINE,
    REASON_EXIT_CODE,
    REASON_FENCED,
    REASON_INTERRUPTED,
    REASON_NO_COMMAND,
    REASON_SIGNALED,
    REASON_STOPPED,
    REASON_UNSUPPORTED,
    ExecutionNotFound,
    ExecutionStatus,
    ResourceAmounts,
    clip_tail,
    job_environment,
)
from controller.executors.fence import LIVE_DIR, kill_all, write_lease

REASON_START_FAILED = "StartFailed"
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
EXIT_FILE = ".exit"
FENCE_SCRIPT = Path(__file__).with_name("fence.py")
# Runs the job as its child and records its exit code ($1: the file; the rest: the command).
EXIT_RECORDER = 'f=$1; shift; "$@"; rc=$?; echo "$rc" > "$f"; exit "$rc"'


@dataclass
class _Attempt:
    assignment: Assignment
    workdir: Path
    popen: subprocess.Popen[bytes] | None = None
    deadline: float = 0.0
    started_at: float = 0.0
    terminate_reason: str | None = None  # REASON_DEADLINE or REASON_STOPPED once decided
    terminate_detail: str = ""
    term_sent_at: float | None = None
    kill_sent: bool = False
    status: ExecutionStatus | None = None  # set once terminal, never changed after
    resources: ResourceAmounts = field(default_factory=ResourceAmounts)


_SIGNALS = frozenset(int(s) for s in signal.Signals)


def _dir_name(job_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", job_id).lstrip(".") or "job"
    if safe != job_id:
        safe = f"{safe[:100]}-{hashlib.sha256(job_id.encode()).hexdigest()[:8]}"
    return safe[:120]


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # the group is already gone


def _leader_exited(pid: int) -> bool:
    """True once the session leader has exited; it is not reaped (WNOWAIT)."""
    try:
        result = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return result is not None and result.si_pid != 0


def _read_tail(path: Path, limit: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            data = f.read()
    except FileNotFoundError:
        return ""
    return data.decode("utf-8", errors="replace")


def _detect_capacity() -> ResourceAmounts:
    cpu = float(os.cpu_count() or 1)
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        memory = 0.0
    return ResourceAmounts(cpu=cpu, memory_gib=round(memory, 2), gpu=0)


class LocalExecutor:
    """Runs attempts as local process groups under ``base_dir``."""

    name = "local"

    def __init__(
        self,
        base_dir: str | Path,
        *,
        kill_grace_s: float = 5.0,
        capacity: ResourceAmounts | None = None,
        tail_bytes: int = 16384,
        watchdog_interval_s: float = 0.2,
        path: str = DEFAULT_PATH,
        clock: Callable[[], float] = time.monotonic,
        fence: bool = True,
    ) -> None:
        self.base_dir = Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.kill_grace_s = kill_grace_s
        self._capacity = capacity or _detect_capacity()
        self._tail_bytes = tail_bytes
        self._interval = watchdog_interval_s
        self._path = path
        self._clock = clock
        self._lock = threading.RLock()
        self._attempts: dict[tuple[str, int], _Attempt] = {}
        self._watchdog: threading.Thread | None = None
        self._closed = threading.Event()
        self._on_exit: Callable[[], None] | None = None
        self._use_fence = fence
        self._fence: subprocess.Popen[bytes] | None = None
        self._setpriv = shutil.which("setpriv")
        # Whatever a previous executor (a killed agent) left running here dies first: this
        # agent does not hold those attempts, and their successors may be placed any moment.
        kill_all(self.base_dir)
        write_lease(self.base_dir, None)
        (self.base_dir / LIVE_DIR).mkdir(exist_ok=True)

    # -- the Executor interface ------------------------------------------------------------

    def start(self, assignment: Assignment) -> None:
        key = (assignment.job_id, assignment.attempt)
        with self._lock:
            if key in self._attempts:
                return
            workdir = self.workdir(assignment.job_id, assignment.attempt)
            att = _Attempt(assignment=assignment, workdir=workdir)
            self._attempts[key] = att
            try:
                workdir.parent.mkdir(parents=True, exist_ok=True)
                workdir.mkdir()
            except FileExistsError:
                att.status = self._earlier_run(att)
                return
            runtime = assignment.spec.runtime
            if runtime.kind != "container":
                att.status = ExecutionStatus.failed(
                    REASON_UNSUPPORTED, f"the local executor cannot run a {runtime.kind} runtime"
                )
                return
            if not runtime.command:
                att.status = ExecutionStatus.failed(
                    REASON_NO_COMMAND, "runtime.command is empty: the local executor has nothing to run"
                )
                return
            self._spawn(att)

    def poll(self, job_id: str, attempt: int) -> ExecutionStatus:
        with self._lock:
            att = self._attempts.get((job_id, attempt))
            if att is None:
                raise ExecutionNotFound(f"attempt {attempt} of job {job_id} was not started by this executor")
            self._check(att, self._clock())
            if att.status is not None:
                return att.status
            pid = att.popen.pid if att.popen is not None else 0
            elapsed = self._clock() - att.started_at
            return ExecutionStatus(
                phase="Running",
                message=f"running as process group {pid} for {elapsed:.0f}s",
                output_tail=self._output_tail(att),
            )

    def stop(self, job_id: str, attempt: int, reason: str) -> None:
        with self._lock:
            att = self._attempts.get((job_id, attempt))
            if att is None or att.status is not None:
                return
            if att.terminate_reason is None:
                att.terminate_reason = REASON_STOPPED
                att.terminate_detail = reason or "stop requested"
            self._check(att, self._clock())
            self._ensure_watchdog()

    def active(self) -> list[tuple[str, int]]:
        with self._lock:
            self._check_all()
            return sorted(k for k, a in self._attempts.items() if a.status is None)

    def capacity(self) -> ResourceAmounts:
        return self._capacity

    def fence(self, suspend_at: float | None, deadline: float | None) -> None:
        """The agent's lease, on ``time.monotonic``: past ``suspend_at`` (renewals are late) the
        fence process pauses every attempt until the next renewal; past ``deadline`` it stops
        them, whatever the agent is doing. None: no lease."""
        lease = None if suspend_at is None or deadline is None else (min(suspend_at, deadline), deadline)
        write_lease(self.base_dir, lease)

    def set_exit_listener(self, listener: Callable[[], None] | None) -> None:
        """Called (from the watchdog thread) when an attempt ends, so its report goes at once."""
        self._on_exit = listener

    def allocated(self) -> ResourceAmounts:
        with self._lock:
            self._check_all()
            total = ResourceAmounts()
            for att in self._attempts.values():
                if att.status is None:
                    total = total + att.resources
            return total

    # -- helpers ---------------------------------------------------------------------------

    def workdir(self, job_id: str, attempt: int) -> Path:
        return self.base_dir / _dir_name(job_id) / f"attempt-{attempt}"

    def close(self, timeout_s: float = 5.0) -> None:
        """Kill every live process group and stop the watchdog and the fence (for shutdown and
        tests)."""
        with self._lock:
            if self._fence is not None:
                self._fence.kill()
                self._fence.wait()
                self._fence = None
            for att in self._attempts.values():
                if att.status is None and att.popen is not None:
                    att.terminate_reason = att.terminate_reason or REASON_STOPPED
                    att.terminate_detail = att.terminate_detail or "executor closed"
                    _signal_group(att.popen.pid, signal.SIGKILL)
                    att.kill_sent = True
            self._closed.set()
            watchdog = self._watchdog
        if watchdog is not None:
            watchdog.join(timeout_s)
        deadline = time.monotonic() + timeout_s
        with self._lock:
            for att in self._attempts.values():
                if att.status is None and att.popen is not None:
                    try:
                        att.popen.wait(max(0.0, deadline - time.monotonic()))
                    except subprocess.TimeoutExpired:
                        continue
                    self._check(att, self._clock())

    def _environment(self, att: _Attempt) -> dict[str, str]:
        env = {
            "PATH": self._path,
            "HOME": str(att.workdir),
            "TMPDIR": str(att.workdir / "tmp"),
            "LANG": "C.UTF-8",
            "PWD": str(att.workdir),
        }
        env.update(job_environment(att.assignment))
        return env

    def _earlier_run(self, att: _Attempt) -> ExecutionStatus:
        """This attempt was started by an earlier executor over this directory (the agent was
        restarted): it is never run again. Its recorded exit code says how it ended; without
        one it died unfinished with that agent, and is to be released and re-placed."""
        try:
            code = int((att.workdir / EXIT_FILE).read_text().strip())
        except (FileNotFoundError, ValueError):
            return ExecutionStatus.failed(
                REASON_INTERRUPTED,
                f"started by an earlier agent over {att.workdir}, which stopped before the attempt "
                "finished; it is not run again here",
            )
        return self._final_status(att, code)

    def _start_fence(self) -> None:
        if not self._use_fence or (self._fence is not None and self._fence.poll() is None):
            return
        self._fence = subprocess.Popen(
            [sys.executable, str(FENCE_SCRIPT), str(self.base_dir), str(os.getpid()), str(self.kill_grace_s)],
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a signal to the agent's process group does not reach it
            close_fds=True,
        )

    def _command(self, att: _Attempt) -> list[str]:
        """The job's command under the exit recorder, dying with this process (pdeathsig)."""
        command = [
            "sh",
            "-c",
            EXIT_RECORDER,
            "yiwang-attempt",
            str(att.workdir / EXIT_FILE),
            *att.assignment.spec.runtime.command,
        ]
        if self._setpriv is not None:
            command = [self._setpriv, "--pdeathsig", "KILL", "--", *command]
        return command

    def _spawn(self, att: _Attempt) -> None:
        spec = att.assignment.spec
        (att.workdir / "tmp").mkdir()
        att.resources = ResourceAmounts.for_job(spec)
        program = spec.runtime.command[0]
        if shutil.which(program, path=self._path) is None:
            reason = "No such file or directory" if not os.path.exists(program) else "Permission denied"
            code = 127 if reason.startswith("No such") else 126
            att.status = ExecutionStatus.failed(
                REASON_START_FAILED, f"cannot start {program!r}: {reason}", code
            )
            return
        self._start_fence()
        try:
            with (
                (att.workdir / "stdout.log").open("wb") as out,
                (att.workdir / "stderr.log").open("wb") as err,
            ):
                att.popen = subprocess.Popen(
                    self._command(att),
                    cwd=att.workdir,
                    env=self._environment(att),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                    close_fds=True,
                )
        except OSError as exc:
            code = 127 if isinstance(exc, FileNotFoundError) else 126
            att.status = ExecutionStatus.failed(
                REASON_START_FAILED, f"cannot start {spec.runtime.command[0]!r}: {exc.strerror}", code
            )
            return
        (self.base_dir / LIVE_DIR / str(att.popen.pid)).touch()
        att.started_at = self._clock()
        att.deadline = att.started_at + spec.max_runtime_s
        self._ensure_watchdog()

    def _check_all(self) -> None:
        now = self._clock()
        for att in self._attempts.values():
            self._check(att, now)

    def _check(self, att: _Attempt, now: float) -> None:
        """Advance one attempt: notice its exit, enforce its deadline, escalate its kill."""
        if att.status is not None or att.popen is None:
            return
        pgid = att.popen.pid
        if _leader_exited(pgid):
            # Kill stragglers while the unreaped leader still pins the group id, then reap.
            _signal_group(pgid, signal.SIGKILL)
            returncode = att.popen.wait()
            live = self.base_dir / LIVE_DIR / str(pgid)
            fenced = live.with_name(f"{pgid}.fenced")
            if att.terminate_reason is None and fenced.exists():
                att.terminate_reason = REASON_FENCED
                att.terminate_detail = "the agent's lease deadline passed; its fence stopped the attempt"
            att.status = self._final_status(att, returncode)
            live.unlink(missing_ok=True)
            fenced.unlink(missing_ok=True)
            if self._on_exit is not None:
                self._on_exit()
            return
        if att.terminate_reason is None and now >= att.deadline:
            att.terminate_reason = REASON_DEADLINE
            att.terminate_detail = (
                f"exceeded max_runtime_s={att.assignment.spec.max_runtime_s}; the process group was killed"
            )
        if att.terminate_reason is None:
            return
        if att.term_sent_at is None:
            _signal_group(pgid, signal.SIGTERM)
            _signal_group(pgid, signal.SIGCONT)  # paused by the fence: it acts on SIGTERM only when continued
            att.term_sent_at = now
        elif not att.kill_sent and now - att.term_sent_at >= self.kill_grace_s:
            _signal_group(pgid, signal.SIGKILL)
            att.kill_sent = True

    def _final_status(self, att: _Attempt, returncode: int) -> ExecutionStatus:
        tail = self._output_tail(att)
        exit_code = 128 - returncode if returncode < 0 else returncode
        if att.terminate_reason is not None:
            return ExecutionStatus.failed(att.terminate_reason, att.terminate_detail, exit_code, tail)
        if returncode == 0:
            return ExecutionStatus(
                phase="Succeeded",
                exit_code=0,
                reason=REASON_COMPLETED,
                message="exited with code 0",
                output_tail=clip_tail(tail),
            )
        signum = -returncode if returncode < 0 else returncode - 128
        if signum in _SIGNALS:  # killed by a signal (seen directly, or through the recorder's sh)
            name = signal.Signals(signum).name
            return ExecutionStatus.failed(REASON_SIGNALED, f"killed by {name}", exit_code, tail)
        return ExecutionStatus.failed(REASON_EXIT_CODE, f"exited with code {returncode}", exit_code, tail)

    def _output_tail(self, att: _Attempt) -> str:
        out = _read_tail(att.workdir / "stdout.log", self._tail_bytes)
        err = _read_tail(att.workdir / "stderr.log", self._tail_bytes)
        if not err:
            return clip_tail(out)
        return clip_tail(f"{out}\n--- stderr ---\n{err}" if out else f"--- stderr ---\n{err}")

    def _ensure_watchdog(self) -> None:
        if self._closed.is_set() or (self._watchdog is not None and self._watchdog.is_alive()):
            return
        self._watchdog = threading.Thread(target=self._watch, name="local-executor-watchdog", daemon=True)
        self._watchdog.start()

    def _watch(self) -> None:
        while not self._closed.wait(self._interval):
            with self._lock:
                self._check_all()
                if all(a.status is not None for a in self._attempts.values()):
                    self._watchdog = None
                    return
