"""Agent side (pull mode): heartbeat, take assignments, report status."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path
from pydantic import BaseModel, ConfigDict, Field

from controller.api.deps import Agent, ControllerDep
from controller.assignments import Assignment, HeartbeatReport, StatusReport
from controller.jobs import JobRead
from controller.schemas import Attempt, Epoch
from controller.topology.model import CLUSTER_NAME

router = APIRouter(prefix="/v1/agents/{cluster}", tags=["agents"], dependencies=[Agent])
Cluster = Path(pattern=CLUSTER_NAME, max_length=63)


@router.post("/heartbeat")
def heartbeat(
    ctl: ControllerDep, cluster: str = Cluster, reported: HeartbeatReport | None = Body(default=None)
) -> dict[str, Any]:
    """Marks the cluster Ready and renews the leases of its attempts."""
    return ctl.heartbeat(cluster, reported.stored() if reported is not None else None)


@router.get("/assignments", response_model=list[Assignment])
def assignments(ctl: ControllerDep, cluster: str = Cluster) -> list[Assignment]:
    return ctl.assignments(cluster)


@router.post("/status", response_model=JobRead)
def report(rep: StatusReport, ctl: ControllerDep, cluster: str = Cluster) -> JobRead:
    """409 (stale attempt) tells the agent to stop that attempt."""
    return ctl.report(cluster, rep)


class AttemptRelease(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_id: Annotated[str, Field(max_length=128)]
    attempt: Attempt
    epoch: Epoch
    reason: Annotated[str, Field(max_length=1024)] = ""


@router.post("/release", response_model=JobRead)
def release(rel: AttemptRelease, ctl: ControllerDep, cluster: str = Cluster) -> JobRead:
    """The agent stopped this attempt (it lost its lease): re-queue the job (attempt + 1) now.
    409 when the attempt is no longer current (already re-placed, cancelled or finished)."""
    return ctl.release(cluster, rel.job_id, rel.attempt, rel.epoch, rel.reason or "released")
