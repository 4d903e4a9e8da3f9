"""A realistic pending queue for the benchmarks and the scheduler's parity tests: every job
distinct.

``MixedJobs(topo, cat, seed)`` draws jobs from one seeded ``numpy`` stream, each on its own:

- tenant and inputs, as ``InputAssigner`` does, over the replay's catalogue (600 data sets of all
  three classifications, general 0.6 / important 0.3 / core 0.1, with their copies: the owner's
  cluster, ``national-backup`` for part of the general and important data, both national nodes
  for half the national data): a primary data set (the job's tenant is its owner with
  probability 0.8, else any tenant) and 0-2 further general inputs; 10 % of the jobs read nothing;
- size per replica: 1-8 cores (0.5 with probability 0.1), 1-32 GiB, a GPU with probability 0.02;
- gang size (replicas): 1 with probability 0.4, 2-4 with 0.5, 8-16 with 0.1 (a 10,000-job batch
  asks for about 60 % of the federation's cores, so most of it fits an empty federation);
- runtime estimate: log-normal, median 10 minutes, sigma 1.5 (every job its own);
- priority: 0 / 50 / 100 / 200 / 1000 with probabilities 0.15 / 0.15 / 0.5 / 0.15 / 0.05;
- constraints on 20 % of the jobs: a deny list (1-2 clusters, 6 %), an allow list (8 clusters,
  4 %), a preferred cluster (4 %), required labels (``tier``, 3 %) or preferred labels
  (``hub-side``, 3 %);
- delay tolerance with probability 0.5; a distinct name.

``bodies(n)`` gives the JSON bodies a client would POST, ``draw(n)`` validated ``JobCreate``s,
``construct(n)`` unvalidated ones (``model_construct``; the memory benchmarks, which need
millions quickly). The three give the same jobs for the same seed and position in the stream.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from controller.datasets import Classification
from controller.jobs import Constraints, JobCreate, Resources
from controller.sim.workload import Catalogue
from controller.topology.model import Topology

PRIORITIES = [0, 50, 100, 200, 1000]
PRIORITY_P = [0.15, 0.15, 0.5, 0.15, 0.05]


class MixedJobs:
    def __init__(self, topo: Topology, cat: Catalogue, seed: int = 5) -> None:
        self.names = [c.name for c in topo.clusters]
        self.cat = cat
        self.ids = cat.ids
        self.owners = [cat.datasets[d].owner for d in self.ids]
        self.general = [d.id for d in cat.datasets.values() if d.classification is Classification.general]
        self.tenants = cat.tenants
        self.rng = np.random.default_rng(seed)
        self.count = 0

    def bodies(self, n: int, tiny: bool = False) -> list[dict[str, Any]]:
        """``n`` jobs as the JSON bodies a client would POST. ``tiny`` (the API benchmark: no job
        runs, and every submission must be placed): every size a hundredth, no GPU and no
        constraints (an allow list can contradict residency: such a job is never placed)."""
        rng = self.rng
        primary = rng.integers(len(self.ids), size=n)
        own = rng.random(n) < 0.8
        other = rng.integers(len(self.tenants), size=n)
        extras = rng.integers(0, 3, size=n)
        extra_pick = rng.integers(len(self.general), size=(n, 2))
        none = rng.random(n) < 0.1
        half = rng.random(n) < 0.1
        cpu = rng.integers(1, 9, size=n)
        mem = rng.integers(1, 33, size=n)
        gpu = rng.random(n) < 0.02
        u = rng.random(n)
        small = rng.integers(2, 5, size=n)
        large = rng.integers(8, 17, size=n)
        prio = rng.choice(len(PRIORITIES), size=n, p=PRIORITY_P)
        runtime = np.clip(rng.lognormal(np.log(600), 1.5, size=n), 1, 30 * 86400)
        tolerant = rng.random(n) < 0.5
        c = rng.random(n)
        k_deny = rng.integers(1, 3, size=n)
        picks = rng.random((n, len(self.names))).argsort(axis=1)[:, :8]
        tier = rng.random(n) < 0.5
        side = rng.random(n) < 0.5
        names = self.names
        out: list[dict[str, Any]] = []
        for j in range(n):
            p = int(primary[j])
            tenant = self.owners[p] if own[j] else self.tenants[int(other[j])]
            inputs = [self.ids[p]]
            for e in range(int(extras[j])):
                ds = self.general[int(extra_pick[j, e])]
                if ds not in inputs:
                    inputs.append(ds)
            replicas = 1 if u[j] < 0.4 else int(large[j]) if u[j] > 0.9 else int(small[j])
            body: dict[str, Any] = {
                "name": f"mx-{self.count}",
                "tenant": tenant,
                "inputs": [] if none[j] else inputs,
                "resources": {
                    "cpu": (0.5 if half[j] else float(cpu[j])) / (100 if tiny else 1),
                    "memory_gib": float(mem[j]) / (100 if tiny else 1),
                    "gpu": 1 if gpu[j] and not tiny else 0,
                },
                "replicas": replicas,
                "priority": PRIORITIES[int(prio[j])],
                "expected_runtime_s": round(float(runtime[j]), 3),
                "delay_tolerant": bool(tolerant[j]),
            }
            self.count += 1
            cj = 1.0 if tiny else c[j]
            if cj < 0.06:
                body["constraints"] = {"deny_clusters": [names[int(i)] for i in picks[j, : int(k_deny[j])]]}
            elif cj < 0.10:
                body["constraints"] = {"allow_clusters": [names[int(i)] for i in picks[j]]}
            elif cj < 0.14:
                body["constraints"] = {"prefer_clusters": [names[int(picks[j, 0])]]}
            elif cj < 0.17:
                body["constraints"] = {"require_labels": {"tier": "province" if tier[j] else "department"}}
            elif cj < 0.20:
                body["constraints"] = {"prefer_labels": {"hub-side": "east" if side[j] else "west"}}
            out.append(body)
        return out

    def draw(self, n: int) -> list[JobCreate]:
        return [JobCreate.model_validate(b) for b in self.bodies(n)]

    def construct(self, n: int) -> list[JobCreate]:
        """Unvalidated specs (the bodies are valid by construction), ten times faster: copies of
        a template with the drawn fields set."""
        out = []
        for b in self.bodies(n):
            c = b.get("constraints")
            update = {
                **b,
                "resources": _RESOURCES.model_copy(update=b["resources"]),
                "constraints": _NO_CONSTRAINTS.model_copy(update=c) if c else _NO_CONSTRAINTS,
            }
            out.append(_TEMPLATE.model_copy(update=update))
        return out


_NO_CONSTRAINTS = Constraints()
_RESOURCES = Resources()
_TEMPLATE = JobCreate(name="template", tenant="template")
