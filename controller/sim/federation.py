"""The simulated 1+32+N federation: the generated topology plus synthetic ministry clusters.

``controller.topology.generate.build`` knows 16 real ministries; the benchmark federation has 64,
so ministries 17..N are synthetic (``dept-syn-17`` ...), located in Beijing like most central
ministries, sized and linked like the real ones (1,600 cores, 10 Gbit/s to each national node).
Capacity can be scaled by one factor (see ``scaled``) to set the load of a trace replay.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from controller.data import DATA_DIR
from controller.policies import PlacementPolicy, PluginWeight, ResidencyPolicy
from controller.scheduler.framework import Snapshot
from controller.topology.generate import BEIJING, MINISTRIES, MINISTRY_LINK_GBPS, build
from controller.topology.model import Topology
from controller.topology.network import NetworkModel, great_circle_km, rtt_ms_for_distance

# Every plugin on, as the benchmark and the scheduler tests run the batch loop (the service takes
# its list from policies/placement.yaml and applies quota from policies/quota.yaml every cycle).
ALL_PLUGINS = PlacementPolicy(
    filters=["health", "constraints", "residency", "quota", "gang", "capacity"],
    scores=[
        PluginWeight(name="locality", weight=3),
        PluginWeight(name="constraints", weight=1),
        PluginWeight(name="balance", weight=1),
        PluginWeight(name="green", weight=1),
    ],
)

DEFAULT_DATA_DIR = DATA_DIR  # vendored in controller/data/


def federation(
    data_dir: Path = DEFAULT_DATA_DIR,
    ministries: int = 64,
    scale: float = 1.0,
    grow: Mapping[str, float] | None = None,
) -> Topology:
    """The 1+32+N federation (``ministries`` departments, synthetic ones past the real list),
    every cluster's capacity times ``scale``, and the clusters named in ``grow`` times their
    factor on top (the replay's capacity plan: ``replay.setup(plan=True)``)."""
    real = min(ministries, len(MINISTRIES))
    topo, _ = build(data_dir, ministries=real)
    clusters: list[dict[str, Any]] = topo["clusters"]  # the generator's plain documents
    links: list[dict[str, Any]] = topo["links"]
    primary, backup = clusters[0], clusters[1]
    for k in range(real + 1, ministries + 1):
        c: dict[str, Any] = {
            "name": f"dept-syn-{k:02d}",
            "tier": "department",
            "tenant": f"syn-{k:02d}",
            "display_name": f"Synthetic ministry {k}",
            "display_name_zh": f"模拟部委{k}",
            "region": "cn-beijing",
            "location": {"lng": BEIJING[0], "lat": BEIJING[1]},
            "capacity": {"cpu": 1600, "memory_gib": 6400, "gpu": 3},
        }
        clusters.append(c)
        for nat in (primary, backup):
            km = great_circle_km(BEIJING[0], BEIJING[1], nat["location"]["lng"], nat["location"]["lat"])
            links.append(
                {
                    "a": c["name"],
                    "b": nat["name"],
                    "bandwidth_gbps": MINISTRY_LINK_GBPS,
                    "latency_ms": rtt_ms_for_distance(km),
                }
            )
    if scale != 1.0 or grow:
        for cl in clusters:
            f = scale * (grow or {}).get(cl["name"], 1.0)
            cap: dict[str, float] = cl["capacity"]
            cl["capacity"] = {
                "cpu": max(1.0, round(cap["cpu"] * f, 1)),
                "memory_gib": max(1.0, round(cap["memory_gib"] * f, 1)),
                "gpu": round(cap["gpu"] * f),
            }
    return Topology.model_validate(topo)


def snapshot_of(topo: Topology, network: NetworkModel | None = None, **kw: Any) -> Snapshot:
    """A ready, empty snapshot of the topology (datasets and residency from ``kw``)."""
    clusters = list(topo.clusters)
    cap = np.array(
        [[c.capacity.cpu, c.capacity.memory_gib, c.capacity.gpu] for c in clusters], dtype=np.float64
    )
    n = len(clusters)
    return Snapshot(
        clusters=clusters,
        network=network or NetworkModel(topo),
        capacity=cap,
        allocated=np.zeros((n, 3)),
        ready=np.ones(n, dtype=bool),
        cordoned=np.zeros(n, dtype=bool),
        not_ready_reason=["Ready"] * n,
        datasets=kw.pop("datasets", {}),
        residency=kw.pop("residency", ResidencyPolicy()),
        **kw,
    )
