"""The one interface every executor implements, and the values it reports.

An executor runs assignments (one attempt of one job) on one member cluster and answers the
agent's questions about them. The agent drives it from an asyncio loop, and in the embedded
federation many agents share one process.

Synchronous and thread-safe, by choice: the official ``kubernetes`` client is synchronous, a
local process is started and checked with non-blocking system calls, and the simulated cluster
is pure computation. An asyncio interface would only wrap blocking calls in threads inside each
executor; instead every method is short, never sleeps or waits on a child process, holds an
internal lock, and may be called from any thread. The agent calls the local and simulated
executors inline and the Kubernetes executor (network I/O) through ``asyncio.to_thread``.

Guarantees every implementation keeps:
- ``start`` is idempotent per (job_id, attempt): starting an attempt again never runs it twice,
  also after it finished.
- ``stop`` is idempotent and never raises for an unknown or finished attempt; it is used for
  cancellation and for lease loss, so it must not wait for the work to end.
- ``poll`` of an attempt this executor never started raises ``ExecutionNotFound``.
- A stopped attempt reports ``Failed`` with reason ``Stopped`` (the controller, which asked for
  the stop, turns that into ``Cancelled`` or a re-placement).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Annotated, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from controller.assignments import Assignment, StatusReport
from controller.errors import NotFound, TemporarilyUnavailable
from controller.jobs import JobCreate

MAX_MESSAGE = 4096  # StatusReport.message
MAX_OUTPUT_TAIL = 65536  # StatusReport.output_tail

# Machine-readable reasons; identical wording everywhere so reports can be counted.
REASON_COMPLETED = "Completed"
REASON_EXIT_CODE = "NonZeroExitCode"
REASON_SIGNALED = "Signaled"
REASON_DEADLINE = "DeadlineExceeded"
REASON_STOPPED = "Stopped"
REASON_NO_COMMAND = "NoCommand"
REASON_UNSUPPORTED = "UnsupportedRuntime"
REASON_UNSCHEDULABLE = "Unschedulable"
REASON_WAITING = "WaitingForCapacity"
REASON_INJECTED = "InjectedFailure"
REASON_CLUSTER_FAILURE = "ClusterFailure"
REASON_LOST = "Lost"
# The attempt did not end by itself and did not finish: the agent gives it back to the controller
# (release: re-placed with the attempt raised) instead of reporting a failure of the job.
REASON_FENCED = "Fenced"  # stopped because the agent's lease ran out (its fence, or the agent)
REASON_INTERRUPTED = "Interrupted"  # a previous agent's attempt that died with that agent
RELEASE_REASONS = frozenset({REASON_FENCED, REASON_INTERRUPTED})


class ExecutionNotFound(NotFound):
    """poll() for an attempt this executor never started."""


class ExecutorUnavailable(TemporarilyUnavailable):
    """The executor's backend (Kubernetes API, simulated cluster) cannot be reached now."""


class ExecutionStatus(BaseModel):
    """What an executor knows about one attempt."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    phase: Literal["Running", "Succeeded", "Failed"]
    exit_code: int | None = None
    reason: str = ""
    message: Annotated[str, Field(max_length=MAX_MESSAGE)] = ""
    output_tail: Annotated[str, Field(max_length=MAX_OUTPUT_TAIL)] = ""

    @property
    def terminal(self) -> bool:
        return self.phase != "Running"

    @classmethod
    def running(cls, message: str = "", reason: str = "") -> ExecutionStatus:
        return cls(phase="Running", reason=reason, message=clip_message(message))

    @classmethod
    def failed(
        cls, reason: str, message: str, exit_code: int | None = None, output_tail: str = ""
    ) -> ExecutionStatus:
        return cls(
            phase="Failed",
            reason=reason,
            message=clip_message(f"{reason}: {message}"),
            exit_code=exit_code,
            output_tail=clip_tail(output_tail),
        )

    def report(self, assignment: Assignment) -> StatusReport:
        """The status report the agent sends for this attempt."""
        return StatusReport(
            job_id=assignment.job_id,
            attempt=assignment.attempt,
            epoch=assignment.epoch,
            phase=self.phase,
            exit_code=self.exit_code,
            message=self.message,
            output_tail=self.output_tail,
        )


@dataclass(frozen=True)
class ResourceAmounts:
    """cpu cores, memory GiB and GPUs: a cluster's capacity or what its attempts hold."""

    cpu: float = 0.0
    memory_gib: float = 0.0
    gpu: float = 0.0  # fractional when attempts share GPUs (gpu_milli)

    def __add__(self, other: ResourceAmounts) -> ResourceAmounts:
        return ResourceAmounts(self.cpu + other.cpu, self.memory_gib + other.memory_gib, self.gpu + other.gpu)

    def __sub__(self, other: ResourceAmounts) -> ResourceAmounts:
        return ResourceAmounts(self.cpu - other.cpu, self.memory_gib - other.memory_gib, self.gpu - other.gpu)

    def fits_in(self, other: ResourceAmounts) -> bool:
        eps = 1e-9
        return (
            self.cpu <= other.cpu + eps
            and self.memory_gib <= other.memory_gib + eps
            and self.gpu <= other.gpu + eps
        )

    @classmethod
    def per_replica(cls, spec: JobCreate) -> ResourceAmounts:
        r = spec.resources
        return cls(r.cpu, r.memory_gib, r.gpus)

    @classmethod
    def for_job(cls, spec: JobCreate) -> ResourceAmounts:
        r = spec.resources
        n = spec.replicas
        return cls(r.cpu * n, r.memory_gib * n, r.gpus * n)


@runtime_checkable
class Executor(Protocol):
    """Runs attempts on one member cluster. All methods are thread-safe and return promptly."""

    name: str

    def start(self, assignment: Assignment) -> None:
        """Start the attempt; a second call for the same (job_id, attempt) does nothing."""
        ...

    def poll(self, job_id: str, attempt: int) -> ExecutionStatus:
        """The attempt's current status; ExecutionNotFound if never started here."""
        ...

    def stop(self, job_id: str, attempt: int, reason: str) -> None:
        """Stop the attempt (cancellation, lease loss); idempotent, does not wait."""
        ...

    def active(self) -> list[tuple[str, int]]:
        """(job_id, attempt) of every attempt that is not terminal, sorted."""
        ...

    def capacity(self) -> ResourceAmounts:
        """What the cluster offers, for heartbeats."""
        ...

    def allocated(self) -> ResourceAmounts:
        """What the active attempts hold, for heartbeats."""
        ...


def clip_message(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


def clip_tail(text: str) -> str:
    return text if len(text) <= MAX_OUTPUT_TAIL else text[-MAX_OUTPUT_TAIL:]


_NOT_ENV = re.compile(r"[^A-Z0-9_]")


def input_env_name(dataset_id: str) -> str:
    """YIWANG_INPUT_<ID>: the data set id upper-cased, every other character made '_'."""
    return "YIWANG_INPUT_" + _NOT_ENV.sub("_", dataset_id.upper())


def job_environment(assignment: Assignment) -> dict[str, str]:
    """The variables every executor gives a job: runtime.env, then Yiwang's own (which win).

    YIWANG_INPUTS is the authoritative JSON map (data set id -> path or URI). Two ids that map
    to the same YIWANG_INPUT_<ID> name (``a.b`` and ``a-b``) get no per-id variable at all rather
    than a wrong one.
    """
    env = dict(assignment.spec.runtime.env)
    env["YIWANG_JOB_ID"] = assignment.job_id
    env["YIWANG_ATTEMPT"] = str(assignment.attempt)
    env["YIWANG_TENANT"] = assignment.tenant
    env["YIWANG_CLUSTER"] = assignment.cluster
    env["YIWANG_REPLICAS"] = str(assignment.spec.replicas)
    env["YIWANG_INPUTS"] = json.dumps(dict(sorted(assignment.inputs.items())), separators=(",", ":"))
    by_name: dict[str, list[str]] = {}
    for dataset_id in sorted(assignment.inputs):
        by_name.setdefault(input_env_name(dataset_id), []).append(dataset_id)
    for name, ids in by_name.items():
        if len(ids) == 1:
            env[name] = assignment.inputs[ids[0]]
    return env
