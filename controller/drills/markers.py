"""Agent-side evidence of what really ran: marker lines the jobs themselves append to one file.

Every job of a process drill runs a small bash script (``marker_command``) that appends

    start <job> <attempt> <cluster> <pid> <wall time>
    end   <job> <attempt> <cluster> <pid> <wall time>     (the work finished)
    term  <job> <attempt> <cluster> <pid> <wall time>     (it was stopped by a signal)

to the file named by ``DRILL_MARKERS`` (appends of short lines with O_APPEND are atomic). The
times are ``$EPOCHREALTIME`` (wall clock; every process of a drill runs on one machine). One
execution is one ``start`` line, keyed by (job, attempt, cluster, pid); an execution killed with
SIGKILL (or still running) has no end line. The runner also watches the pid of every execution
without an end (``/proc``, from outside: a zombie counts as dead) and notes when it was first seen
gone; such an execution counts as running until then, and one never seen gone until the horizon,
the drill's end. (The pid is the job's own shell; its pid is not reused within a drill.)

From these lines alone (never from the controller's view) ``analyse`` counts:
- duplicate successes: jobs with two or more ``end`` lines (the work was done twice);
- overlapping jobs: jobs with two executions that ran at the same time for a positive duration.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("start", "end", "term")

# $EPOCHREALTIME (bash >= 5) has no fork; `sleep & wait` lets the TERM trap run at once.
_SCRIPT = r"""
m() { echo "$1 $YIWANG_JOB_ID $YIWANG_ATTEMPT $YIWANG_CLUSTER $$ $EPOCHREALTIME" >> "$DRILL_MARKERS"; }
trap 'm term; exit 143' TERM INT HUP
m start
sleep "$DRILL_WORK_S" & wait $!
rc=$?
if [ "$rc" -ne 0 ]; then m term; exit "$rc"; fi
m end
"""


def marker_command() -> list[str]:
    """The job's command; it reads DRILL_MARKERS and DRILL_WORK_S from runtime.env."""
    return ["/bin/bash", "-c", _SCRIPT.strip()]


def marker_env(markers: Path, work_s: float) -> dict[str, str]:
    return {"DRILL_MARKERS": str(markers), "DRILL_WORK_S": f"{work_s:g}"}


@dataclass
class Execution:
    job_id: str
    attempt: int
    cluster: str
    pid: int
    started: float  # wall seconds
    ended: float | None = None  # first end or term line
    how: str = ""  # "end" (finished its work), "term" (stopped) or "" (no end seen)
    gone: float | None = None  # wall time it was first seen dead without an end line

    def until(self, horizon: float) -> float:
        if self.ended is not None:
            return self.ended
        return self.gone if self.gone is not None else max(horizon, self.started)

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "attempt": self.attempt,
            "cluster": self.cluster,
            "pid": self.pid,
            "started": round(self.started, 4),
            "ended": None if self.ended is None else round(self.ended, 4),
            "seen_gone": None if self.gone is None else round(self.gone, 4),
            "how": self.how or "no end seen",
        }


@dataclass(frozen=True)
class Overlap:
    job_id: str
    first: Execution
    second: Execution
    overlap_s: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "first": self.first.as_dict(),
            "second": self.second.as_dict(),
            "overlap_s": round(self.overlap_s, 4),
        }


@dataclass
class MarkerAnalysis:
    executions: int
    jobs_executed: int
    successes: int  # end lines
    duplicate_successes: int  # jobs with >= 2 end lines
    overlapping_jobs: int  # jobs with >= 1 overlapping pair
    stopped: int  # executions ended by a signal (term)
    no_end: int  # executions with neither end nor term (SIGKILLed, or still running)
    malformed_lines: int
    horizon: float
    duplicate_jobs: list[str] = field(default_factory=list)
    overlaps: list[Overlap] = field(default_factory=list)

    def counters(self) -> dict[str, int]:
        return {
            "executions": self.executions,
            "jobs_executed": self.jobs_executed,
            "successful_executions": self.successes,
            "duplicate_successes": self.duplicate_successes,
            "overlapping_jobs": self.overlapping_jobs,
            "executions_stopped": self.stopped,
            "executions_without_end": self.no_end,
            "malformed_marker_lines": self.malformed_lines,
        }


class MarkerLog:
    """Reads a marker file incrementally (only complete lines) and keeps every execution."""

    def __init__(self, path: Path, *, watch_pids: bool = False) -> None:
        self.path = path
        self.watch = watch_pids  # a live drill: note when executions without an end are gone
        self._offset = 0
        self._partial = b""
        self.by_key: dict[tuple[str, int, str, int], Execution] = {}
        self.ends: dict[str, int] = {}  # job id -> end lines
        self.orphan_ends: list[str] = []  # end/term lines without a start (should not happen)
        self.malformed = 0

    def feed_lines(self, lines: Iterable[str]) -> list[Execution]:
        """Apply lines; return the executions that started in them."""
        new: list[Execution] = []
        for raw in lines:
            parts = raw.split()
            if not parts:
                continue
            try:
                kind, job_id, attempt, cluster, pid, at = parts
                if kind not in KINDS:
                    raise ValueError(kind)
                key = (job_id, int(attempt), cluster, int(pid))
                t = float(at)
            except ValueError:
                self.malformed += 1
                continue
            if kind == "start":
                if key not in self.by_key:
                    ex = Execution(job_id, key[1], cluster, key[3], t)
                    self.by_key[key] = ex
                    new.append(ex)
                continue
            if kind == "end":
                self.ends[job_id] = self.ends.get(job_id, 0) + 1
            ex0 = self.by_key.get(key)
            if ex0 is None:
                self.orphan_ends.append(raw.strip())
            elif ex0.ended is None:
                ex0.ended, ex0.how = t, kind
        return new

    def poll(self) -> list[Execution]:
        """Read what was appended since the last call."""
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        data = self._partial + data
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        new = self.feed_lines(data[:cut].decode("utf-8", errors="replace").splitlines())
        if self.watch:
            self.watch_pids()
        return new

    def watch_pids(self, t: float | None = None) -> None:
        """Note when each execution without an end was first seen gone (killed without a trace)."""
        t = time.time() if t is None else t
        for ex in self.by_key.values():
            if ex.ended is None and ex.gone is None and not pid_alive(ex.pid):
                ex.gone = t

    @property
    def executions(self) -> list[Execution]:
        return list(self.by_key.values())


def analyse(log: MarkerLog, horizon: float, detail_limit: int = 200) -> MarkerAnalysis:
    """Count duplicate successes and overlapping executions; ``horizon`` is when an execution
    without an end was last possibly alive (the drill's end)."""
    by_job: dict[str, list[Execution]] = {}
    for ex in log.by_key.values():
        by_job.setdefault(ex.job_id, []).append(ex)
    overlaps: list[Overlap] = []
    overlapping: set[str] = set()
    for job_id, exs in by_job.items():
        if len(exs) < 2:
            continue
        exs.sort(key=lambda e: e.started)
        for i, a in enumerate(exs):
            for b in exs[i + 1 :]:
                both = min(a.until(horizon), b.until(horizon)) - max(a.started, b.started)
                if both > 0:
                    overlapping.add(job_id)
                    overlaps.append(Overlap(job_id, a, b, both))
    dup = sorted(j for j, n in log.ends.items() if n >= 2)
    execs = log.by_key.values()
    return MarkerAnalysis(
        executions=len(log.by_key),
        jobs_executed=len(by_job),
        successes=sum(log.ends.values()),
        duplicate_successes=len(dup),
        overlapping_jobs=len(overlapping),
        stopped=sum(1 for e in execs if e.how == "term"),
        no_end=sum(1 for e in execs if e.ended is None),
        malformed_lines=log.malformed + len(log.orphan_ends),
        horizon=horizon,
        duplicate_jobs=dup[:detail_limit],
        overlaps=sorted(overlaps, key=lambda o: -o.overlap_s)[:detail_limit],
    )


def load(path: Path) -> MarkerLog:
    log = MarkerLog(path)
    log.poll()
    return log


def pid_alive(pid: int) -> bool:
    """Running (or stopped); False once gone or a zombie (it runs nothing more)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):  # gone meanwhile (reading its stat can fail with ESRCH)
        return False
