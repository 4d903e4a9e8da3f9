"""Pydantic models of the federation topology (policies/topology.yaml)."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from controller.schemas import Cores, Gbps, Gpus, MemoryGiB, Milliseconds, Version

CLUSTER_NAME = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
NATIONAL_PRIMARY = "national-primary"
NATIONAL_BACKUP = "national-backup"
NATIONAL_TENANT = "national"


class Tier(StrEnum):
    national = "national"
    province = "province"
    department = "department"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClusterCapacity(Strict):
    cpu: Annotated[Cores, Field(gt=0, description="cores")]
    memory_gib: Annotated[MemoryGiB, Field(gt=0)]
    gpu: Gpus = 0


class Location(Strict):
    lng: Annotated[float, Field(ge=73, le=136, allow_inf_nan=False)]
    lat: Annotated[float, Field(ge=3, le=54, allow_inf_nan=False)]


class Cluster(Strict):
    name: Annotated[str, Field(pattern=CLUSTER_NAME)]
    tier: Tier
    tenant: Annotated[str, Field(pattern=CLUSTER_NAME, description="owning province, ministry or 'national'")]
    display_name: str
    display_name_zh: str = ""
    adcode: Annotated[str | None, Field(pattern=r"^\d{6}$")] = None
    region: Annotated[str, Field(pattern=r"^[a-z0-9-]+$")]
    hub: str | None = None
    hub_side: Annotated[str | None, Field(pattern=r"^(east|west)$")] = None
    location: Location
    capacity: ClusterCapacity
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _tier_fields(self) -> Cluster:
        if self.tier is Tier.province and self.adcode is None:
            raise ValueError("a province cluster needs an adcode")
        if self.tier is Tier.national and self.tenant != NATIONAL_TENANT:
            raise ValueError("a national cluster belongs to tenant 'national'")
        return self

    def all_labels(self) -> dict[str, str]:
        """Labels a constraint can select on: the declared ones plus the derived well-known ones."""
        derived = {"tier": self.tier.value, "region": self.region, "tenant": self.tenant}
        if self.adcode:
            derived["adcode"] = self.adcode
        if self.hub:
            derived["hub"] = re.sub(r"[^a-z0-9]+", "-", self.hub.lower()).strip("-")
        if self.hub_side:
            derived["hub-side"] = self.hub_side
        return {**derived, **self.labels}


class Link(Strict):
    a: str
    b: str
    bandwidth_gbps: Gbps
    latency_ms: Milliseconds


class Topology(Strict):
    version: Version = 1
    clusters: list[Cluster]
    links: list[Link]

    @field_validator("clusters")
    @classmethod
    def _unique_names(cls, clusters: list[Cluster]) -> list[Cluster]:
        seen: set[str] = set()
        for c in clusters:
            if c.name in seen:
                raise ValueError(f"duplicate cluster name {c.name!r}")
            seen.add(c.name)
        return clusters

    @model_validator(mode="after")
    def _links_and_tiers(self) -> Topology:
        names = {c.name for c in self.clusters}
        for required in (NATIONAL_PRIMARY, NATIONAL_BACKUP):
            if required not in names:
                raise ValueError(f"the national tier needs a cluster named {required!r}")
        for i, link in enumerate(self.links):
            for end in (link.a, link.b):
                if end not in names:
                    raise ValueError(f"links[{i}] names unknown cluster {end!r}")
        linked = {x for link in self.links for x in (link.a, link.b)}
        for c in self.clusters:
            if c.tier is not Tier.national and c.name not in linked:
                raise ValueError(f"cluster {c.name!r} has no link to the national tier")
        return self

    def by_name(self) -> dict[str, Cluster]:
        return {c.name: c for c in self.clusters}

    def tenants(self) -> set[str]:
        return {c.tenant for c in self.clusters}


def load_topology(path: Path) -> Topology:
    with path.open(encoding="utf-8") as fh:
        return Topology.model_validate(yaml.safe_load(fh))
