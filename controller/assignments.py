"""What the controller hands a member cluster's agent, and what the agent reports back.

An assignment is one attempt of one job on one cluster, fenced by the controller's leader epoch
and held under a lease that the agent's heartbeats renew. A report for an attempt or epoch that
is not current is refused (StaleAttempt), so a job never runs twice.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from controller.jobs import JobCreate
from controller.schemas import Attempt, Cores, Count, Epoch, ExitCode, GpuAmount, MemoryGiB

log = logging.getLogger("yiwang.agents")


class Assignment(BaseModel):
    model_config = ConfigDict(frozen=True)

    job_id: str
    attempt: Attempt
    epoch: Epoch
    cluster: str
    tenant: str
    spec: JobCreate
    lease_expires_at: datetime
    # Where each input data set can be read from on this cluster (dataset id -> URI or path).
    inputs: dict[str, str] = {}


class StatusReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_id: Annotated[str, Field(max_length=128)]
    attempt: Attempt
    epoch: Epoch
    phase: Literal["Running", "Succeeded", "Failed"]
    exit_code: ExitCode | None = None
    message: Annotated[str, Field(max_length=4096)] = ""
    output_tail: Annotated[str, Field(max_length=65536)] = ""


class ReportedResources(BaseModel):
    """cpu cores, memory GiB and GPUs an agent reports: finite, bounded, typed. GPUs may be
    fractional: attempts on shared GPUs hold thousandths of one (``gpu_milli``)."""

    model_config = ConfigDict(extra="forbid")

    cpu: Cores = 0.0
    memory_gib: MemoryGiB = 0.0
    gpu: GpuAmount = 0.0


class HeartbeatReport(BaseModel):
    """The body of ``POST /v1/agents/{cluster}/heartbeat`` (all optional): the executor's
    capacity and what its attempts hold. Anything else, or a number outside its bounds, is a
    422 naming the field; the controller stores exactly the fields sent."""

    model_config = ConfigDict(extra="forbid")

    executor: Annotated[str, Field(max_length=64)] = ""
    active: Count = 0
    capacity: ReportedResources | None = None
    allocated: ReportedResources | None = None
    executor_error: Annotated[str, Field(max_length=1000)] = ""

    def stored(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


def sanitize_reported(value: Any) -> dict[str, Any] | None:
    """A stored heartbeat body as loaded from the database: the validated fields, or None (with
    a warning) when it is not one the API would accept, so a bad row written before the bounds
    existed, or by hand, cannot stop the controller."""
    if value is None:
        return None
    try:
        return HeartbeatReport.model_validate(value).stored()
    except ValidationError as exc:
        log.warning("ignoring a stored heartbeat body that is not valid: %s", str(exc).splitlines()[0:2])
        return None
