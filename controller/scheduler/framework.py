"""Extension points and per-cycle data of the scheduler, at cluster granularity.

Plugins work on whole vectors of clusters at once (numpy), so one decision costs a few array
operations rather than a Python loop per cluster. A filter returns one reason code per cluster
(0 = passes) and the messages those codes stand for; the first filter in the configured order
that rejects a cluster is the one recorded for it, as in kube-scheduler's diagnosis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from controller.datasets import Classification, DatasetRead
from controller.jobs import JobCreate
from controller.policies import QuotaPolicy, ResidencyPolicy
from controller.topology.model import Cluster
from controller.topology.network import NetworkModel

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
CodeArray = npt.NDArray[np.int16]

CPU, MEM, GPU = 0, 1, 2


class Code(StrEnum):
    Success = "Success"
    Unschedulable = "Unschedulable"  # may fit later (capacity frees up, a cluster recovers)
    UnschedulableAndUnresolvable = "UnschedulableAndUnresolvable"  # waiting will not help
    Error = "Error"


@dataclass
class Snapshot:
    """The federation as one scheduling cycle sees it; arrays are indexed like ``clusters``."""

    clusters: list[Cluster]
    network: NetworkModel
    capacity: FloatArray  # (n, 3): cpu, memory GiB, gpu
    allocated: FloatArray  # (n, 3)
    ready: BoolArray
    cordoned: BoolArray
    not_ready_reason: list[str]
    datasets: dict[str, DatasetRead]
    residency: ResidencyPolicy
    # Derived once per snapshot, shared by every job of the cycle.
    names: list[str] = field(init=False)
    index: dict[str, int] = field(init=False)
    tenants: npt.NDArray[np.str_] = field(init=False)
    national: BoolArray = field(init=False)
    labels: list[dict[str, str]] = field(init=False)
    hub_west: BoolArray = field(init=False)
    hub_east: BoolArray = field(init=False)
    # Tenant quotas and the federation-wide usage per tenant (cpu, memory GiB, gpu), read by the
    # quota plugin; without a policy every tenant is unlimited.
    quota: QuotaPolicy | None = None
    tenant_usage: dict[str, FloatArray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.names = [c.name for c in self.clusters]
        self.index = {n: i for i, n in enumerate(self.names)}
        self.tenants = np.array([c.tenant for c in self.clusters])
        self.national = np.array([c.tier.value == "national" for c in self.clusters])
        self.labels = [c.all_labels() for c in self.clusters]
        self.hub_west = np.array([c.hub_side == "west" for c in self.clusters], dtype=bool)
        self.hub_east = np.array([c.hub_side == "east" for c in self.clusters], dtype=bool)
        if self.network.names != self.names:
            raise ValueError("network model and snapshot disagree on the cluster order")

    @property
    def size(self) -> int:
        return len(self.clusters)

    def free(self) -> FloatArray:
        return self.capacity - self.allocated

    def locations_mask(self, dataset: DatasetRead) -> BoolArray:
        mask = np.zeros(self.size, dtype=bool)
        for loc in dataset.locations:
            i = self.index.get(loc)
            if i is not None:
                mask[i] = True
        return mask


@dataclass
class JobInfo:
    """A job as the scheduler needs it: demand for the whole gang and its resolved inputs."""

    id: str | None
    spec: JobCreate
    inputs: list[DatasetRead]
    missing_inputs: list[str]

    @property
    def demand(self) -> FloatArray:
        r = self.spec.resources
        return np.array([r.cpu, r.memory_gib, r.gpus], dtype=np.float64) * self.spec.replicas

    def classified(self, c: Classification) -> list[DatasetRead]:
        return [d for d in self.inputs if d.classification is c]


def demand_triple(spec: JobCreate) -> tuple[float, float, float]:
    """The gang's whole demand as floats: replicas x per-replica (cpu, memory GiB, gpu)."""
    r, n = spec.resources, spec.replicas
    return (float(r.cpu * n), float(r.memory_gib * n), float(r.gpus * n))


def demand_vector(spec: JobCreate) -> FloatArray:
    """``demand_triple`` as an array."""
    return np.array(demand_triple(spec), dtype=np.float64)


class CycleState(dict[str, Any]):
    """Per-attempt data keyed by plugin name (e.g. locality's transfer estimates)."""


@dataclass
class FilterResult:
    codes: CodeArray  # 0 = passes; k > 0 = messages[k - 1]
    messages: list[str]
    unresolvable: bool = False  # waiting cannot make the rejected clusters fit

    @classmethod
    def passes(cls, n: int) -> FilterResult:
        return cls(np.zeros(n, dtype=np.int16), [])


class FilterPlugin(Protocol):
    NAME: str

    def filter(self, state: CycleState, job: JobInfo, snap: Snapshot) -> FilterResult: ...


class DynamicFilterPlugin(FilterPlugin, Protocol):
    """A filter that reads free capacity. The batch loop evaluates its kernel for every job on the
    statically feasible clusters only, with the free capacity of that moment."""

    def fits(self, free: FloatArray, capacity: FloatArray, demand: FloatArray) -> BoolArray: ...

    def classify(
        self, free: FloatArray, capacity: FloatArray, demand: FloatArray
    ) -> tuple[CodeArray, list[str], bool]: ...


class ScorePlugin(Protocol):
    NAME: str

    def score(self, state: CycleState, job: JobInfo, snap: Snapshot, feasible: BoolArray) -> FloatArray:
        """Scores 0-100 for every cluster (only feasible entries are read)."""
        ...


class DynamicScorePlugin(ScorePlugin, Protocol):
    """A score that reads free capacity: ``score_free`` on rows of (free, capacity)."""

    def score_free(self, free: FloatArray, capacity: FloatArray, demand: FloatArray) -> FloatArray: ...


def is_dynamic(plugin: object) -> bool:
    return hasattr(plugin, "fits") or hasattr(plugin, "score_free")


def normalize_lower_is_better(values: FloatArray, feasible: BoolArray) -> FloatArray:
    """Map the feasible clusters' values to 0..100, the lowest value scoring 100."""
    out = np.zeros_like(values, dtype=np.float64)
    if not feasible.any():
        return out
    v = values[feasible]
    lo, hi = float(v.min()), float(v.max())
    if hi - lo <= 1e-12:
        out[feasible] = 100.0
    else:
        out[feasible] = 100.0 * (hi - v) / (hi - lo)
    return out
