"""Jobs: the submission schema and events (the phase state machine: controller/domain/phases.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, model_validator

from controller.datasets import DATASET_ID, NAME
from controller.domain.phases import TERMINAL, TRANSITIONS, JobPhase, check_transition
from controller.schemas import Cores, Gpus, MemoryGiB, Priority

__all__ = [
    "TERMINAL",
    "TRANSITIONS",
    "FailoverSpec",
    "JobCreate",
    "JobEvent",
    "JobList",
    "JobPhase",
    "JobRead",
    "check_transition",
]

LABEL_KEY = r"^[a-z0-9]([a-z0-9./_-]{0,61}[a-z0-9])?$"
LABEL_VALUE = r"^[A-Za-z0-9._-]{0,63}$"


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cpu: Annotated[Cores, Field(gt=0, le=4096, description="cores per replica")] = 1.0
    memory_gib: Annotated[MemoryGiB, Field(le=16384)] = 1.0
    gpu: Annotated[Gpus, Field(le=64, description="whole GPUs per replica")] = 0
    gpu_milli: Annotated[
        int,
        Field(
            strict=True,
            ge=0,
            le=64_000,
            description="GPU per replica in thousandths, for shared (fractional) GPUs: 250 is a "
            "quarter of a GPU; give it or gpu, not both",
        ),
    ] = 0

    @model_validator(mode="after")
    def _one_gpu_form(self) -> Resources:
        if self.gpu and self.gpu_milli and self.gpu_milli != self.gpu * 1000:
            raise ValueError(
                "give gpu (whole GPUs) or gpu_milli (thousandths of a GPU) per replica, not both"
            )
        return self

    @property
    def gpus(self) -> float:
        """GPUs per replica, fractional when given in thousandths."""
        return self.gpu_milli / 1000.0 if self.gpu_milli else float(self.gpu)


class Constraints(BaseModel):
    """Explicit placement constraints, like Karmada's ClusterAffinity."""

    model_config = ConfigDict(extra="forbid")

    allow_clusters: Annotated[list[Annotated[str, Field(pattern=NAME)]], Field(max_length=200)] = Field(
        default_factory=list
    )
    deny_clusters: Annotated[list[Annotated[str, Field(pattern=NAME)]], Field(max_length=200)] = Field(
        default_factory=list
    )
    prefer_clusters: Annotated[list[Annotated[str, Field(pattern=NAME)]], Field(max_length=200)] = Field(
        default_factory=list
    )
    require_labels: dict[
        Annotated[str, Field(pattern=LABEL_KEY)], Annotated[str, Field(pattern=LABEL_VALUE)]
    ] = Field(default_factory=dict)
    prefer_labels: dict[
        Annotated[str, Field(pattern=LABEL_KEY)], Annotated[str, Field(pattern=LABEL_VALUE)]
    ] = Field(default_factory=dict)


class Runtime(BaseModel):
    """What runs: a container command (Kubernetes Job), a Spark application, or a local command."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["container", "spark"] = "container"
    image: Annotated[str, Field(max_length=512)] = "registry.yiwang.gov.cn/analytics/python:3.11"
    command: Annotated[list[Annotated[str, Field(max_length=4096)]], Field(max_length=256)] = Field(
        default_factory=list
    )
    main_application_file: Annotated[str | None, Field(max_length=1024)] = None
    env: dict[
        Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")],
        Annotated[str, Field(max_length=4096)],
    ] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _spark_needs_file(self) -> Runtime:
        if self.kind == "spark" and not self.main_application_file:
            raise ValueError("a spark runtime needs main_application_file")
        return self


class FailoverSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy: Literal["backup-group", "anywhere-legal", "none"] = "backup-group"


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=NAME)]
    tenant: Annotated[str, Field(pattern=NAME, description="submitting province, ministry or 'national'")]
    priority: Priority = 100
    priority_class: Annotated[
        str | None,
        Field(pattern=NAME, description="a class of policies/quota.yaml; when set it gives the priority"),
    ] = None
    resources: Resources = Field(default_factory=Resources)
    replicas: Annotated[int, Field(ge=1, le=10_000, description="gang: all replicas start together")] = 1
    inputs: Annotated[list[Annotated[str, Field(pattern=DATASET_ID)]], Field(max_length=64)] = Field(
        default_factory=list
    )
    constraints: Constraints = Field(default_factory=Constraints)
    failover: FailoverSpec = Field(default_factory=FailoverSpec)
    runtime: Runtime = Field(default_factory=Runtime)
    max_runtime_s: Annotated[int, Field(ge=1, le=30 * 86400)] = 3600
    expected_runtime_s: Annotated[
        float,
        Field(gt=0, le=30 * 86400, allow_inf_nan=False, description="estimate used by simulated clusters"),
    ] = 5.0
    delay_tolerant: StrictBool = False
    labels: dict[Annotated[str, Field(pattern=LABEL_KEY)], Annotated[str, Field(pattern=LABEL_VALUE)]] = (
        Field(default_factory=dict)
    )

    @model_validator(mode="after")
    def _unique_inputs(self) -> JobCreate:
        if len(set(self.inputs)) != len(self.inputs):
            raise ValueError("inputs must not repeat a data set")
        return self


class JobEvent(BaseModel):
    at: datetime
    type: str
    from_phase: JobPhase | None = None
    to_phase: JobPhase | None = None
    cluster: str | None = None
    attempt: int
    reason: str


class JobRead(BaseModel):
    id: str
    spec: JobCreate
    phase: JobPhase
    cluster: str | None
    attempt: int
    epoch: int = Field(
        default=0, description="the leader epoch that dispatched the current attempt (0: not dispatched)"
    )
    created_at: datetime
    updated_at: datetime
    message: str = ""
    events: list[JobEvent] = []


def new_job_json(job_id: str, spec: dict[str, Any], at: datetime, message: str) -> bytes:
    """A job just stored as Pending, as the API answers it: the bytes of
    ``JobRead(id=job_id, spec=..., phase=Pending, cluster=None, attempt=1, created_at=at,
    updated_at=at, message=message).model_dump_json()``, from ``spec`` as the job's row holds it
    (``JobCreate.model_dump(mode="json")``), written by orjson without building the model
    (building and serialising it was about a tenth of the API's CPU a submission).
    tests/api/test_job_answer.py holds the two to the same bytes."""
    return orjson.dumps(
        {
            "id": job_id,
            "spec": spec,
            "phase": JobPhase.Pending.value,
            "cluster": None,
            "attempt": 1,
            "epoch": 0,
            "created_at": at,
            "updated_at": at,
            "message": message,
            "events": [],
        },
        option=orjson.OPT_UTC_Z,
    )


class JobList(BaseModel):
    items: list[JobRead]
    next_cursor: str | None


def spec_as_stored(raw: dict[str, Any]) -> JobCreate:
    """A stored spec as it is stored, when this version does not accept it (written by another
    version, or by hand; its job fails when a cycle reads it): built without validation, each
    nested model from its stored fields, so the job can still be read and listed. Serialised,
    it shows the stored values (pydantic warns where a value is not of its field's type)."""
    fields: dict[str, Any] = {}
    for name, field in JobCreate.model_fields.items():
        if name not in raw:
            continue
        value, kind = raw[name], field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel) and isinstance(value, dict):
            value = kind.model_construct(**{k: v for k, v in value.items() if k in kind.model_fields})
        fields[name] = value
    return JobCreate.model_construct(**fields)


def stored_spec(raw: dict[str, Any]) -> JobCreate:
    """A stored spec, validated; one this version does not accept as it is stored
    (``spec_as_stored``): one such row must not make its job, every listing it is in, or its
    cluster's assignments unreadable."""
    try:
        return JobCreate.model_validate(raw)
    except ValidationError:
        return spec_as_stored(raw)
