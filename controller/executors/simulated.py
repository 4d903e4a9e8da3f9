"""A simulated member cluster: virtual nodes, virtual runtimes, injectable faults.

For scale tests, drills and the trace replay. An attempt asks for ``replicas`` pods of its
per-replica resources; they are placed first-fit on the nodes in their listed order, all of them
or none (gang), and the attempt then runs for ``spec.expected_runtime_s × time_scale`` on the
injected clock (a ``VirtualClock`` for tests and replays, ``time.monotonic`` for wall time). An
attempt that does not fit now waits, in arrival order with backfill, like pods Pending on a real
cluster; one that could never fit even on the empty cluster fails as ``Unschedulable``. An
attempt whose expected runtime exceeds ``max_runtime_s`` fails with ``DeadlineExceeded`` when the
deadline passes.

Time is advanced as a discrete-event simulation whenever the executor is called: completions are
processed in time order and waiting attempts are admitted at the moment capacity was freed, so
results do not depend on how often anyone polls.

Faults: ``fail_job``, ``fail_node`` / ``restore_node``, ``fail_cluster`` / ``recover_cluster``
and a seeded ``failure_rate``.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from controller.assignments import Assignment
from controller.executors.base import (
    REASON_CLUSTER_FAILURE,
    REASON_COMPLETED,
    REASON_DEADLINE,
    REASON_INJECTED,
    REASON_STOPPED,
    REASON_UNSCHEDULABLE,
    REASON_WAITING,
    ExecutionNotFound,
    ExecutionStatus,
    ExecutorUnavailable,
    ResourceAmounts,
)

REASON_NODE_FAILURE = "NodeFailure"


class VirtualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        with self._lock:
            self._now += seconds
            return self._now


@dataclass(frozen=True)
class SimNode:
    name: str
    cpu: float
    memory_gib: float
    gpu: float = 0.0

    @property
    def amounts(self) -> ResourceAmounts:
        return ResourceAmounts(self.cpu, self.memory_gib, self.gpu)


@dataclass
class _SimAttempt:
    assignment: Assignment
    seq: int
    per_replica: ResourceAmounts
    placement: list[str] = field(default_factory=list)  # node per replica, once admitted
    admitted_at: float | None = None
    ends_at: float = 0.0
    end_status: ExecutionStatus | None = None  # how it ends at ends_at
    status: ExecutionStatus | None = None  # terminal status, once reached

    @property
    def key(self) -> tuple[str, int]:
        return (self.assignment.job_id, self.assignment.attempt)


class SimulatedExecutor:
    name = "simulated"

    def __init__(
        self,
        nodes: Sequence[SimNode],
        *,
        clock: Callable[[], float] = time.monotonic,
        time_scale: float = 1.0,
        failure_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        if not nodes:
            raise ValueError("a simulated cluster needs at least one node")
        if len({n.name for n in nodes}) != len(nodes):
            raise ValueError("node names must be unique")
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self._nodes = {n.name: n for n in nodes}
        self._free = {n.name: n.amounts for n in nodes}
        self._down_nodes: set[str] = set()
        self._clock = clock
        self.time_scale = time_scale
        self.failure_rate = failure_rate
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._attempts: dict[tuple[str, int], _SimAttempt] = {}
        self._waiting: list[_SimAttempt] = []
        self._ends: list[tuple[float, int, tuple[str, int]]] = []  # heap of (ends_at, seq, key)
        self._seq = 0
        self._now = clock()
        self.cluster_down = False

    # -- the Executor interface ------------------------------------------------------------

    def start(self, assignment: Assignment) -> None:
        key = (assignment.job_id, assignment.attempt)
        with self._lock:
            if self.cluster_down:
                raise ExecutorUnavailable("the simulated cluster is down")
            if key in self._attempts:
                return
            self._advance()
            self._seq += 1
            att = _SimAttempt(assignment, self._seq, ResourceAmounts.per_replica(assignment.spec))
            self._attempts[key] = att
            if self._place(att, {n: self._nodes[n].amounts for n in self._up_nodes()}) is None:
                att.status = ExecutionStatus.failed(
                    REASON_UNSCHEDULABLE,
                    f"a gang of {assignment.spec.replicas} × {_fmt(att.per_replica)} does not fit "
                    f"even on the empty cluster ({len(self._up_nodes())} nodes)",
                )
                return
            self._waiting.append(att)
            self._admit_waiting(self._now)

    def poll(self, job_id: str, attempt: int) -> ExecutionStatus:
        with self._lock:
            att = self._attempts.get((job_id, attempt))
            if att is None:
                raise ExecutionNotFound(f"attempt {attempt} of job {job_id} was not started by this executor")
            self._advance()
            if att.status is not None:
                return att.status
            if att.admitted_at is None:
                return ExecutionStatus.running(
                    f"waiting for capacity: a gang of {att.assignment.spec.replicas} × {_fmt(att.per_replica)}",
                    REASON_WAITING,
                )
            nodes = ", ".join(sorted(set(att.placement)))
            return ExecutionStatus.running(
                f"running {len(att.placement)} replicas on {nodes} since t={att.admitted_at:.1f}"
            )

    def stop(self, job_id: str, attempt: int, reason: str) -> None:
        with self._lock:
            att = self._attempts.get((job_id, attempt))
            if att is None:
                return
            self._advance()
            self._end(att, ExecutionStatus.failed(REASON_STOPPED, reason or "stop requested"))
            self._admit_waiting(self._now)

    def active(self) -> list[tuple[str, int]]:
        with self._lock:
            self._advance()
            return sorted(k for k, a in self._attempts.items() if a.status is None)

    def capacity(self) -> ResourceAmounts:
        with self._lock:
            if self.cluster_down:
                return ResourceAmounts()
            total = ResourceAmounts()
            for name in self._up_nodes():
                total = total + self._nodes[name].amounts
            return total

    def allocated(self) -> ResourceAmounts:
        """What admitted attempts hold; attempts waiting for capacity hold nothing yet."""
        with self._lock:
            self._advance()
            total = ResourceAmounts()
            for att in self._attempts.values():
                if att.status is None and att.admitted_at is not None:
                    for _ in att.placement:
                        total = total + att.per_replica
            return total

    # -- faults ----------------------------------------------------------------------------

    def fail_job(self, job_id: str, attempt: int, message: str = "injected failure") -> None:
        with self._lock:
            att = self._attempts.get((job_id, attempt))
            if att is None:
                raise ExecutionNotFound(f"attempt {attempt} of job {job_id} is unknown")
            self._advance()
            self._end(att, ExecutionStatus.failed(REASON_INJECTED, message, exit_code=1))
            self._admit_waiting(self._now)

    def fail_node(self, name: str) -> None:
        """The node disappears; every attempt with a replica on it fails (backoffLimit 0)."""
        with self._lock:
            if name not in self._nodes:
                raise KeyError(name)
            self._advance()
            for att in list(self._attempts.values()):
                if att.status is None and name in att.placement:
                    self._end(att, ExecutionStatus.failed(REASON_NODE_FAILURE, f"node {name} failed"))
            self._down_nodes.add(name)
            for att in list(self._waiting):  # what could only fit with that node can never run now
                if self._place(att, {n: self._nodes[n].amounts for n in self._up_nodes()}) is None:
                    self._end(
                        att,
                        ExecutionStatus.failed(REASON_UNSCHEDULABLE, f"no longer fits: node {name} failed"),
                    )
            self._admit_waiting(self._now)

    def restore_node(self, name: str) -> None:
        with self._lock:
            self._advance()
            self._down_nodes.discard(name)
            self._free[name] = self._nodes[name].amounts
            self._admit_waiting(self._now)

    def fail_cluster(self, message: str = "simulated cluster failure") -> None:
        """Every attempt fails and start() is refused until recover_cluster()."""
        with self._lock:
            self._advance()
            for att in list(self._attempts.values()):
                if att.status is None:
                    self._end(att, ExecutionStatus.failed(REASON_CLUSTER_FAILURE, message))
            self.cluster_down = True

    def recover_cluster(self) -> None:
        with self._lock:
            self._advance()
            self.cluster_down = False

    # -- simulation ------------------------------------------------------------------------

    def _up_nodes(self) -> list[str]:
        return [n for n in self._nodes if n not in self._down_nodes]

    def _place(self, att: _SimAttempt, free: dict[str, ResourceAmounts]) -> list[str] | None:
        """First-fit placement of every replica on a copy of ``free``; None if the gang does not fit."""
        free = dict(free)
        placement = []
        for _ in range(att.assignment.spec.replicas):
            for name, left in free.items():
                if att.per_replica.fits_in(left):
                    free[name] = left - att.per_replica
                    placement.append(name)
                    break
            else:
                return None
        return placement

    def _admit_waiting(self, now: float) -> None:
        if self.cluster_down:
            return
        still_waiting = []
        for att in self._waiting:
            if att.status is not None:
                continue
            up_free = {n: self._free[n] for n in self._up_nodes()}
            placement = self._place(att, up_free)
            if placement is None:
                still_waiting.append(att)
                continue
            for name in placement:
                self._free[name] = self._free[name] - att.per_replica
            att.placement = placement
            att.admitted_at = now
            self._schedule_end(att, now)
        self._waiting = still_waiting

    def _schedule_end(self, att: _SimAttempt, now: float) -> None:
        spec = att.assignment.spec
        runtime = spec.expected_runtime_s * self.time_scale
        deadline = spec.max_runtime_s * self.time_scale
        if self.failure_rate > 0 and self._rng.random() < self.failure_rate:
            att.ends_at = now + runtime * self._rng.random()
            att.end_status = ExecutionStatus.failed(
                REASON_INJECTED, "random failure (failure_rate)", exit_code=1
            )
        elif runtime > deadline:
            att.ends_at = now + deadline
            att.end_status = ExecutionStatus.failed(
                REASON_DEADLINE, f"exceeded max_runtime_s={spec.max_runtime_s}"
            )
        else:
            att.ends_at = now + runtime
            att.end_status = ExecutionStatus(
                phase="Succeeded", exit_code=0, reason=REASON_COMPLETED, message="completed (simulated)"
            )
        heapq.heappush(self._ends, (att.ends_at, att.seq, att.key))

    def _end(self, att: _SimAttempt, status: ExecutionStatus) -> None:
        if att.status is not None:
            return
        att.status = status
        if att.admitted_at is not None:
            for name in att.placement:
                if name not in self._down_nodes:
                    self._free[name] = self._free[name] + att.per_replica

    def _advance(self) -> None:
        """Process every end up to now, in time order, admitting waiters as capacity frees."""
        now = max(self._clock(), self._now)
        while self._ends and self._ends[0][0] <= now:
            at, _, key = heapq.heappop(self._ends)
            att = self._attempts[key]
            if att.status is not None or att.end_status is None:
                continue
            self._now = max(self._now, at)
            self._end(att, att.end_status)
            self._admit_waiting(self._now)
        self._now = now


def _fmt(r: ResourceAmounts) -> str:
    return f"(cpu {r.cpu:g}, memory {r.memory_gib:g}Gi, gpu {r.gpu:g})"
