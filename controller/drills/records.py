"""What the executors themselves saw: one record per attempt with when it started and stopped.

The double-run detector works on these records, not on the controller's view: the controller
can only say what it believes; the executors say what actually ran. Times are ``time.monotonic``
(one clock for every executor of the embedded federation) plus the wall time for reports.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from controller.assignments import Assignment
from controller.executors.base import ExecutionStatus
from controller.executors.simulated import SimNode, SimulatedExecutor, _SimAttempt


@dataclass
class ExecutionRecord:
    cluster: str
    job_id: str
    attempt: int
    started: float  # monotonic: the executor accepted the attempt
    started_wall: float
    ended: float | None = None  # monotonic: it stopped running (finished, failed or stopped)
    ended_wall: float | None = None
    end_reason: str = ""

    def overlaps(self, other: ExecutionRecord) -> float:
        """Seconds both were executing (0 when they never were at the same time)."""
        end_a = self.ended if self.ended is not None else float("inf")
        end_b = other.ended if other.ended is not None else float("inf")
        return max(0.0, min(end_a, end_b) - max(self.started, other.started))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DoubleRun:
    job_id: str
    first: ExecutionRecord
    second: ExecutionRecord
    overlap_s: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "first": self.first.as_dict(),
            "second": self.second.as_dict(),
            "overlap_s": None if self.overlap_s == float("inf") else round(self.overlap_s, 4),
        }


def by_job(records: Iterable[ExecutionRecord]) -> dict[str, list[ExecutionRecord]]:
    """The records of each job, in the order given."""
    out: dict[str, list[ExecutionRecord]] = {}
    for r in records:
        out.setdefault(r.job_id, []).append(r)
    return out


def find_double_runs(records: Iterable[ExecutionRecord]) -> list[DoubleRun]:
    """Every pair of executions of one job that overlapped in time: two attempts, or one attempt
    on two clusters. Touching intervals (one ends exactly when the other starts) do not count."""
    found = []
    for job_id, recs in sorted(by_job(records).items()):
        recs = sorted(recs, key=lambda r: r.started)
        for i, a in enumerate(recs):
            for b in recs[i + 1 :]:
                overlap = a.overlaps(b)
                if overlap > 0:
                    found.append(DoubleRun(job_id, a, b, overlap))
    return found


class RecordingSimulatedExecutor(SimulatedExecutor):
    """A simulated cluster that writes down when each attempt started and when it stopped
    (the simulated end time for completions, the moment of the call for stops)."""

    def __init__(
        self,
        cluster: str,
        nodes: Sequence[SimNode],
        sink: RecordSink,
        *,
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(nodes, clock=clock, time_scale=time_scale)
        self.cluster = cluster
        self.sink = sink
        self._records: dict[tuple[str, int], ExecutionRecord] = {}

    def start(self, assignment: Assignment) -> None:
        key = (assignment.job_id, assignment.attempt)
        with self._lock:
            new = key not in self._attempts
            super().start(assignment)
            if new and key in self._attempts and key not in self._records:
                at = self._now
                rec = ExecutionRecord(self.cluster, key[0], key[1], at, _wall(at))
                self._records[key] = rec
                self.sink.add(rec)
                att = self._attempts[key]
                if att.status is not None:  # refused at once (does not fit): never executed
                    rec.ended, rec.ended_wall, rec.end_reason = at, _wall(at), att.status.reason

    def _end(self, att: _SimAttempt, status: ExecutionStatus) -> None:
        first = att.status is None
        super()._end(att, status)
        rec = self._records.get(att.key)
        if first and rec is not None and rec.ended is None:
            at = max(self._now, rec.started)
            rec.ended, rec.ended_wall, rec.end_reason = at, _wall(at), status.reason


def _wall(mono: float) -> float:
    return time.time() - (time.monotonic() - mono)


class RecordSink:
    """Thread-safe collection of every executor's records."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[ExecutionRecord] = []

    def add(self, rec: ExecutionRecord) -> None:
        with self._lock:
            self._records.append(rec)

    def snapshot(self) -> list[ExecutionRecord]:
        with self._lock:
            return list(self._records)
