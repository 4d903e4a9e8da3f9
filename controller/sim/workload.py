"""Seeded, documented generators for the data-set catalogue and job inputs.

The Alibaba trace carries no data-set information, so the benchmark assigns it (all draws from one
``numpy.random.default_rng(seed)``):

- Data sets: ``n`` of them. Owner: a province with probability 0.55 (provinces weighted by their
  cluster's capacity, a proxy for population), a ministry 0.25, national 0.20. Classification:
  general 0.60, important 0.30, core 0.10. Size: log-normal, median 20 GB, sigma 1.2, clipped to
  0.5 GB..2 TB. Copies: the owner's cluster (``national-primary`` for national data); general data
  also at ``national-backup`` with probability 0.4 (the shared national copy), national data at
  both national nodes with probability 0.5, important data at ``national-backup`` with 0.2.
- Job inputs: a primary data set drawn uniformly; the job's tenant is its owner with probability
  0.8, otherwise a uniformly drawn tenant; 0-2 further inputs drawn from the general data sets
  (shared data). If the tenant cannot read a primary input's classification away from its owner,
  the job still asks for it: residency decides where it may run (the owner's clusters or national).
- Delay tolerance: 0.5 of jobs are delay-tolerant (offline analytics).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controller.datasets import Classification, DatasetRead
from controller.topology.model import NATIONAL_BACKUP, NATIONAL_PRIMARY, Tier, Topology

GB = 1e9


@dataclass(frozen=True)
class Catalogue:
    datasets: dict[str, DatasetRead]
    tenants: list[str]

    @property
    def ids(self) -> list[str]:
        return list(self.datasets)


def owner_cluster(topo: Topology) -> dict[str, str]:
    """tenant -> its (first) cluster."""
    out: dict[str, str] = {}
    for c in topo.clusters:
        out.setdefault(c.tenant, c.name)
    return out


def make_catalogue(topo: Topology, n: int = 600, seed: int = 7) -> Catalogue:
    rng = np.random.default_rng(seed)
    provinces = [c for c in topo.clusters if c.tier is Tier.province]
    ministries = [c for c in topo.clusters if c.tier is Tier.department]
    pw = np.array([c.capacity.cpu for c in provinces], dtype=float)
    pw /= pw.sum()
    home = owner_cluster(topo)
    classes = [Classification.general, Classification.important, Classification.core]
    out: dict[str, DatasetRead] = {}
    for k in range(n):
        u = rng.random()
        if u < 0.55:
            owner = provinces[int(rng.choice(len(provinces), p=pw))].tenant
        elif u < 0.80 and ministries:
            owner = ministries[int(rng.integers(len(ministries)))].tenant
        else:
            owner = "national"
        cls = classes[int(rng.choice(3, p=[0.6, 0.3, 0.1]))]
        size = float(np.clip(rng.lognormal(np.log(20 * GB), 1.2), 0.5 * GB, 2000 * GB))
        locs = [home[owner]]
        r = rng.random()
        if owner == "national":
            if r < 0.5:
                locs = [NATIONAL_PRIMARY, NATIONAL_BACKUP]
        elif (cls is Classification.general and r < 0.4) or (cls is Classification.important and r < 0.2):
            locs.append(NATIONAL_BACKUP)
        ds_id = f"ds-{owner}-{k:05d}"
        out[ds_id] = DatasetRead(
            id=ds_id, owner=owner, size_bytes=int(size), classification=cls, locations=locs
        )
    tenants = sorted({c.tenant for c in topo.clusters})
    return Catalogue(out, tenants)


class InputAssigner:
    """Draws (tenant, inputs, delay_tolerant) for job after job, from one seeded stream."""

    def __init__(self, cat: Catalogue, seed: int = 11) -> None:
        self.cat = cat
        self.rng = np.random.default_rng(seed)
        self.ids = cat.ids
        self.general = [d.id for d in cat.datasets.values() if d.classification is Classification.general]

    def draw(self) -> tuple[str, list[str], bool]:
        rng = self.rng
        primary = self.cat.datasets[self.ids[int(rng.integers(len(self.ids)))]]
        tenant = (
            primary.owner
            if rng.random() < 0.8
            else self.cat.tenants[int(rng.integers(len(self.cat.tenants)))]
        )
        inputs = [primary.id]
        for _ in range(int(rng.integers(0, 3))):
            extra = self.general[int(rng.integers(len(self.general)))]
            if extra not in inputs:
                inputs.append(extra)
        return tenant, inputs, bool(rng.random() < 0.5)
