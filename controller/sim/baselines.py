"""Baseline placement policies, implemented after their sources (read, not copied):

- ``karmada``: Karmada's dynamic weighting by available replicas
  (``ReplicaSchedulingStrategy{type: Divided, weightPreference.dynamicWeight: AvailableReplicas}``;
  karmada-io/karmada ``pkg/util/helper/binding.go`` and the scheduler's ``assignReplicas``; docs
  "Divide replicas by dynamic weight"). A cluster's weight is how many replicas of the job's
  per-replica request it can still take (the general estimator: the minimum over cpu, memory and
  gpu of free / request). Replicas are divided in proportion to the weights, the remainder to the
  heaviest clusters, ties by name. Our jobs are gangs that run in one cluster, so one unit (the
  gang) is divided: it goes to the cluster with the largest weight that can take all replicas.
  Capacity only: no locality, no residency.
- ``ocm``: Open Cluster Management placement with the ``ResourceAllocatableCPU`` prioritizer
  (``spec.prioritizerPolicy.configurations[].scoreCoordinate.builtIn``, ``numberOfClusters: 1``;
  open-cluster-management-io ``pkg/placement/plugins/resource``; enhancement
  "15-resourcebasedscheduling"). Each cluster scores ``200 * (a - min) / (max - min) - 100`` on
  its *allocatable* cpu as reported in ``ManagedCluster.status.allocatable`` (the cluster's
  allocatable, not what is free now); the top cluster is chosen. OCM does not check fit: a job
  that does not fit waits in the member cluster's queue (the replay models that queue).
- ``random``: a uniformly random cluster among those whose free capacity holds the gang (seeded).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from controller.jobs import JobCreate
from controller.scheduler.framework import Snapshot


class Baseline(Protocol):
    name: str

    def choose(self, spec: JobCreate, demand: np.ndarray, free: np.ndarray, snap: Snapshot) -> int | None: ...


class KarmadaDynamicWeight:
    name = "karmada"

    def __init__(self, seed: int = 0) -> None:
        self._order: np.ndarray | None = None

    def choose(self, spec: JobCreate, demand: np.ndarray, free: np.ndarray, snap: Snapshot) -> int | None:
        r = spec.resources
        per = np.array([r.cpu, r.memory_gib, float(r.gpu)])
        with np.errstate(divide="ignore", invalid="ignore"):
            avail = np.where(per > 0, np.floor(np.maximum(free, 0) / np.where(per > 0, per, 1.0)), np.inf)
        weight = avail.min(axis=1)
        weight[~snap.ready | snap.cordoned] = 0
        ok = weight >= spec.replicas
        if not ok.any():
            return None
        if self._order is None or len(self._order) != snap.size:
            self._order = np.argsort(np.array(snap.names))  # ties: by cluster name
        order = self._order
        w = np.where(ok, weight, -1.0)[order]
        return int(order[int(np.argmax(w))])


class OcmAllocatableCpu:
    name = "ocm"

    def __init__(self, seed: int = 0) -> None:
        pass

    def choose(self, spec: JobCreate, demand: np.ndarray, free: np.ndarray, snap: Snapshot) -> int | None:
        usable = snap.ready & ~snap.cordoned & (snap.capacity >= demand).all(axis=1)
        if not usable.any():
            return None
        alloc = snap.capacity[:, 0]
        lo, hi = float(alloc[usable].min()), float(alloc[usable].max())
        score = np.full(snap.size, -np.inf)
        score[usable] = 100.0 if hi == lo else 200.0 * (alloc[usable] - lo) / (hi - lo) - 100.0
        return int(np.argmax(score))


class RandomFit:
    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def choose(self, spec: JobCreate, demand: np.ndarray, free: np.ndarray, snap: Snapshot) -> int | None:
        ok = np.flatnonzero(snap.ready & ~snap.cordoned & (free >= demand).all(axis=1))
        if not len(ok):
            return None
        return int(ok[int(self.rng.integers(len(ok)))])


BASELINES: dict[str, Callable[[int], Baseline]] = {
    KarmadaDynamicWeight.name: KarmadaDynamicWeight,
    OcmAllocatableCpu.name: OcmAllocatableCpu,
    RandomFit.name: RandomFit,
}
