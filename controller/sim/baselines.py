"""Fair baseline placement policies, implemented after their sources (read, not copied).

Every baseline obeys residency the way a real deployment of it would be configured: a cluster
selector that admits only the clusters residency allows for the job's inputs (Karmada's
``ClusterAffinity``, OCM's ``predicates``), so every policy here has 0 residency violations by
construction and the comparison is about placement and order, not about breaking the law. The
queue order is a separate factor (``controller/scheduler/ordering.py``), applied by the replay to
every policy alike.

- ``karmada``: Karmada's dynamic weighting by available replicas
  (``ReplicaSchedulingStrategy{type: Divided, weightPreference.dynamicWeight: AvailableReplicas}``;
  karmada-io/karmada ``pkg/scheduler/core/division_algorithm.go`` / ``pkg/util/helper/binding.go``;
  docs "Divide replicas by dynamic weight"), after the ``ClusterAffinity`` filter
  (``pkg/scheduler/framework/plugins/clusteraffinity``) restricted to the legal clusters. A
  cluster's weight is how many replicas of the job's per-replica request it can still take (the
  general estimator: the minimum over cpu, memory and gpu of free / request). Our jobs are gangs
  on one cluster, so the one gang goes to the legal cluster with the largest weight that can take
  all replicas, ties by name; none: the job waits.
- ``ocm``: Open Cluster Management ``Placement`` with ``numberOfClusters: 1``, a predicate
  restricting it to the legal clusters, and its prioritizers in the default ``Additive`` mode:
  ``Balance`` and ``Steady`` at weight 1 (the defaults: open-cluster-management-io/ocm
  ``pkg/placement/controllers/scheduling/scheduling.go``, ``defaultPrioritizerConfig``) plus
  ``ResourceAllocatableCPU`` and ``ResourceAllocatableMemory`` at weight 1 (enhancement
  "15-resourcebasedscheduling"; ``pkg/placement/plugins/resource``). Balance
  (``plugins/balance``): a cluster with no decisions scores 100, else
  ``2 * 100 * (0.5 - count / max_count)``, counting other placements' decisions (here: jobs
  placed there and not finished). Steady (``plugins/steady``): 100 for clusters this placement
  already chose, else 0: each job is a new placement, so 0 everywhere. ResourceAllocatable:
  ``200 * (a - min) / (max - min) - 100`` over the candidates' *allocatable* (not free). Highest
  sum wins, ties by name. OCM does not check fit: a job that does not fit waits in the member
  cluster's queue (the replay models that queue).
- ``iridium``: locality-greedy, after Iridium (Pu et al., "Low Latency Geo-distributed Data
  Analytics", SIGCOMM 2015: place tasks to minimise WAN transfer): among the legal clusters whose
  free capacity holds the gang, the one that moves the fewest input bytes (at the inputs if it
  fits), then the fastest fetch, then the most free cpu, then by name; none fits: the job waits.
- ``random``: a uniformly random legal cluster among those whose free capacity holds the gang
  (seeded).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from controller.jobs import JobCreate
from controller.scheduler.framework import Snapshot

BoolArray = npt.NDArray[np.bool_]


class Baseline:
    """A placement policy over one job. ``legal`` is the cluster selector (residency);
    ``moved``/``seconds`` the input bytes and fetch time to each cluster."""

    name = "baseline"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def choose(
        self,
        spec: JobCreate,
        demand: np.ndarray,
        free: np.ndarray,
        snap: Snapshot,
        legal: BoolArray | None = None,
        moved: np.ndarray | None = None,
        seconds: np.ndarray | None = None,
    ) -> int | None:
        raise NotImplementedError

    def placed(self, cluster: int) -> None:
        """A job was placed on ``cluster`` (its decision exists until it finishes)."""

    def finished(self, cluster: int) -> None:
        """A job placed on ``cluster`` finished."""

    @staticmethod
    def candidates(snap: Snapshot, legal: BoolArray | None) -> BoolArray:
        ok: BoolArray = snap.ready & ~snap.cordoned
        return ok if legal is None else ok & legal

    def fitting(
        self, snap: Snapshot, legal: BoolArray | None, free: np.ndarray, demand: np.ndarray
    ) -> np.ndarray:
        """Indices of the candidate clusters whose free capacity holds ``demand`` now."""
        return np.flatnonzero(self.candidates(snap, legal) & (free >= demand).all(axis=1))


class KarmadaDynamicWeight(Baseline):
    name = "karmada"

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self._order: np.ndarray | None = None

    def choose(
        self,
        spec: JobCreate,
        demand: np.ndarray,
        free: np.ndarray,
        snap: Snapshot,
        legal: BoolArray | None = None,
        moved: np.ndarray | None = None,
        seconds: np.ndarray | None = None,
    ) -> int | None:
        r = spec.resources
        per = np.array([r.cpu, r.memory_gib, r.gpus])
        with np.errstate(divide="ignore", invalid="ignore"):
            avail = np.where(per > 0, np.floor(np.maximum(free, 0) / np.where(per > 0, per, 1.0)), np.inf)
        weight = avail.min(axis=1)
        weight[~self.candidates(snap, legal)] = 0
        ok = weight >= spec.replicas
        if not ok.any():
            return None
        if self._order is None or len(self._order) != snap.size:
            self._order = np.argsort(np.array(snap.names))  # ties: by cluster name
        order = self._order
        w = np.where(ok, weight, -1.0)[order]
        return int(order[int(np.argmax(w))])


class OcmPlacement(Baseline):
    name = "ocm"

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self.decisions: np.ndarray | None = None
        self._rank: np.ndarray | None = None

    def _counts(self, n: int) -> np.ndarray:
        if self.decisions is None or len(self.decisions) != n:
            self.decisions = np.zeros(n, dtype=np.int64)
        return self.decisions

    def placed(self, cluster: int) -> None:
        if self.decisions is not None:
            self.decisions[cluster] += 1

    def finished(self, cluster: int) -> None:
        if self.decisions is not None:
            self.decisions[cluster] -= 1

    @staticmethod
    def allocatable_score(values: np.ndarray, usable: BoolArray) -> np.ndarray:
        lo, hi = float(values[usable].min()), float(values[usable].max())
        if hi == lo:
            return np.where(usable, 100.0, 0.0)
        return np.where(usable, np.trunc(200.0 * (values - lo) / (hi - lo) - 100.0), 0.0)

    def choose(
        self,
        spec: JobCreate,
        demand: np.ndarray,
        free: np.ndarray,
        snap: Snapshot,
        legal: BoolArray | None = None,
        moved: np.ndarray | None = None,
        seconds: np.ndarray | None = None,
    ) -> int | None:
        # Predicates (the legal-cluster selector); no fit check (OCM places, the member queues),
        # but a cluster whose allocatable can never hold the gang is left out (its workload would
        # never start there: a deployment sets that as a claim selector too).
        usable = self.candidates(snap, legal) & (snap.capacity >= demand).all(axis=1)
        if not usable.any():
            return None
        counts = self._counts(snap.size)
        max_count = int(counts.max())
        balance = np.full(snap.size, 100.0)
        if max_count > 0:
            has = counts > 0
            balance[has] = 2.0 * np.trunc(100.0 * (0.5 - counts[has] / max_count))
        steady = np.zeros(snap.size)  # a new placement has no decisions to keep
        score = (
            balance
            + steady
            + self.allocatable_score(snap.capacity[:, 0], usable)
            + self.allocatable_score(snap.capacity[:, 1], usable)
        )
        if self._rank is None or len(self._rank) != snap.size:
            self._rank = np.argsort(np.argsort(np.array(snap.names)))  # ties: by name
        key = np.where(usable, score * 1e4 - self._rank, -np.inf)
        return int(np.argmax(key))


class LocalityGreedy(Baseline):
    name = "iridium"

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self._rank: np.ndarray | None = None

    def choose(
        self,
        spec: JobCreate,
        demand: np.ndarray,
        free: np.ndarray,
        snap: Snapshot,
        legal: BoolArray | None = None,
        moved: np.ndarray | None = None,
        seconds: np.ndarray | None = None,
    ) -> int | None:
        ok = self.fitting(snap, legal, free, demand)
        if not len(ok):
            return None
        n = snap.size
        b = moved if moved is not None else np.zeros(n)
        s = seconds if seconds is not None else np.zeros(n)
        if self._rank is None or len(self._rank) != n:
            self._rank = np.argsort(np.argsort(np.array(snap.names)))
        first = np.lexsort((self._rank[ok], -free[ok, 0], s[ok], b[ok]))[0]
        return int(ok[first])


class RandomFit(Baseline):
    name = "random"

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self.rng = np.random.default_rng(seed)

    def choose(
        self,
        spec: JobCreate,
        demand: np.ndarray,
        free: np.ndarray,
        snap: Snapshot,
        legal: BoolArray | None = None,
        moved: np.ndarray | None = None,
        seconds: np.ndarray | None = None,
    ) -> int | None:
        ok = self.fitting(snap, legal, free, demand)
        if not len(ok):
            return None
        return int(ok[int(self.rng.integers(len(ok)))])


BASELINES: dict[str, Callable[[int], Baseline]] = {
    KarmadaDynamicWeight.name: KarmadaDynamicWeight,
    OcmPlacement.name: OcmPlacement,
    LocalityGreedy.name: LocalityGreedy,
    RandomFit.name: RandomFit,
}
