"""Small federations and jobs for scheduler tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from controller.datasets import Classification, DatasetRead
from controller.jobs import JobCreate, Resources
from controller.policies import PlacementPolicy, QuotaPolicy, ResidencyPolicy
from controller.scheduler.batch import BatchScheduler
from controller.scheduler.framework import Snapshot
from controller.scheduler.queue import PendingQueue
from controller.scheduler.scheduler import Scheduler
from controller.sim.federation import ALL_PLUGINS, federation, snapshot_of
from controller.topology.network import NetworkModel

TOPO = federation(ministries=8)
NET = NetworkModel(TOPO)
RESIDENCY = ResidencyPolicy()
ALL = ALL_PLUGINS
DATASETS = {
    "gd-tax": DatasetRead(
        id="gd-tax",
        owner="guangdong",
        size_bytes=50 * 10**9,
        classification=Classification.important,
        locations=["prov-guangdong"],
    ),
    "gd-core": DatasetRead(
        id="gd-core",
        owner="guangdong",
        size_bytes=10**9,
        classification=Classification.core,
        locations=["prov-guangdong"],
    ),
    "open-weather": DatasetRead(
        id="open-weather",
        owner="national",
        size_bytes=200 * 10**9,
        classification=Classification.general,
        locations=["national-primary"],
    ),
}


def snap(**kw: Any) -> Snapshot:
    return snapshot_of(TOPO, NET, datasets=kw.pop("datasets", DATASETS), residency=RESIDENCY, **kw)


def job(tenant: str = "guangdong", cpu: float = 1.0, replicas: int = 1, **kw: Any) -> JobCreate:
    mem = kw.pop("memory_gib", 1.0)
    return JobCreate(
        name="j", tenant=tenant, resources=Resources(cpu=cpu, memory_gib=mem), replicas=replicas, **kw
    )


def batch(quota: QuotaPolicy | None = None, policy: PlacementPolicy = ALL) -> BatchScheduler:
    return BatchScheduler(Scheduler.from_policy(policy), quota)


def enqueue(bs: BatchScheduler, specs: list[JobCreate], prefix: str = "j") -> PendingQueue:
    q = PendingQueue()
    for i, s in enumerate(specs):
        q.push(f"{prefix}{i:05d}", bs.shapes.intern(s))
    return q


def index(name: str) -> int:
    return [c.name for c in TOPO.clusters].index(name)


def fill(s: Snapshot, name: str, share: float) -> None:
    i = index(name)
    s.allocated[i] = s.capacity[i] * share


def overcommitted(s: Snapshot) -> bool:
    return bool((s.allocated > s.capacity + 1e-6).any())


__all__ = ["np"]
