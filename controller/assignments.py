"""What the controller hands a member cluster's agent, and what the agent reports back.

An assignment is one attempt of one job on one cluster, fenced by the controller's leader epoch
and held under a lease that the agent's heartbeats renew. A report for an attempt or epoch that
is not current is refused (StaleAttempt), so a job never runs twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from controller.jobs import JobCreate


class Assignment(BaseModel):
    model_config = ConfigDict(frozen=True)

    job_id: str
    attempt: Annotated[int, Field(ge=1)]
    epoch: Annotated[int, Field(ge=1, description="the controller leader's fencing epoch")]
    cluster: str
    tenant: str
    spec: JobCreate
    lease_expires_at: datetime
    # Where each input data set can be read from on this cluster (dataset id -> URI or path).
    inputs: dict[str, str] = {}


class StatusReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_id: str
    attempt: Annotated[int, Field(ge=1)]
    epoch: Annotated[int, Field(ge=1)]
    phase: Literal["Running", "Succeeded", "Failed"]
    exit_code: int | None = None
    message: Annotated[str, Field(max_length=4096)] = ""
    output_tail: Annotated[str, Field(max_length=65536)] = ""
