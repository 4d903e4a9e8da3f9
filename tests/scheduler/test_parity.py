"""Parity: the cached, vectorised batch loop decides exactly as the reference path.

``BatchScheduler(caches=False)`` evaluates every shape through the plugins one by one and decides
each job with the plugins' own kernels; the default path caches the static results by what each
plugin reads, evaluates many shapes at once and fuses the capacity and balance kernels. Over a
seeded random queue of distinct jobs (every classification, gangs, constraints, priorities,
missing inputs), a partly full federation with a cluster down, one cordoned and node shapes,
quotas and preemption, several cycles: every decision and its stored body must be equal."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from controller.jobs import JobCreate
from controller.policies import PlacementPolicy, QuotaPolicy, TenantQuota
from controller.scheduler.batch import BatchScheduler
from controller.scheduler.queue import PendingQueue, Running
from controller.scheduler.scheduler import Scheduler
from controller.sim.federation import ALL_PLUGINS, snapshot_of
from controller.sim.mixed import MixedJobs
from controller.sim.workload import make_catalogue
from tests.scheduler.helpers import NET, RESIDENCY, TOPO

CAT = make_catalogue(TOPO, n=120, seed=3)


def queue_specs(seed: int, n: int) -> list[JobCreate]:
    specs = MixedJobs(TOPO, CAT, seed).draw(n)
    rng = np.random.default_rng(seed)
    out = []
    for spec in specs:
        if rng.random() < 0.02:  # an input the catalogue does not have
            spec = spec.model_copy(update={"inputs": [*spec.inputs, "ds-nowhere-00001"]})
        if rng.random() < 0.1:  # large gangs: capacity and gang rejections, preemption
            spec = spec.model_copy(update={"replicas": int(rng.integers(20, 200))})
        u = rng.random()
        if u < 0.03:  # a priority class the quota policy does not have, or one it has
            spec = spec.model_copy(update={"priority_class": "nope" if u < 0.015 else "high"})
        out.append(spec)
    return out


def federation_state(seed: int) -> Any:
    rng = np.random.default_rng(seed + 100)
    s = snapshot_of(TOPO, NET, datasets=CAT.datasets, residency=RESIDENCY)
    s.allocated[:] = s.capacity * rng.uniform(0.0, 0.95, size=(len(s.capacity), 1))
    s.ready[3] = False
    s.not_ready_reason[3] = "Unreachable"
    s.cordoned[5] = True
    s.labels[7] = {**s.labels[7], "node-cpu": "16", "node-memory-gib": "64"}
    s.labels[9] = {**s.labels[9], "node-cpu": "4"}
    return s


def quota() -> QuotaPolicy:
    return QuotaPolicy(
        default=TenantQuota(nominal={"cpu": 400, "memory_gib": 4000, "gpu": 4}, borrowing_limit={"cpu": 800}),
        priority_classes={"high": 1000},
    )


def running_view(seed: int, n: int) -> dict[int, list[Running]]:
    rng = np.random.default_rng(seed + 200)
    tenants = sorted({c.tenant for c in TOPO.clusters})
    out: dict[int, list[Running]] = {}
    for k in range(300):
        c = int(rng.integers(n))
        out.setdefault(c, []).append(
            Running(
                f"run-{k}",
                c,
                int(rng.choice([0, 50, 100])),
                np.array([2.0, 4.0, 0.0]),
                str(rng.choice(tenants)),
            )
        )
    return out


def decide(bs: BatchScheduler, specs: list[JobCreate], seed: int, cycles: int) -> list[Any]:
    snap = federation_state(seed)
    running = running_view(seed, snap.size)
    q = PendingQueue()
    for i, spec in enumerate(specs):
        q.push(f"job-{i:05d}", bs.shapes.intern(spec), runtime=spec.expected_runtime_s)
    out = []
    for cycle in range(cycles):
        res = bs.run(q, snap, limit=len(specs) // 2, running=running, now=1000.0 + 100 * cycle)
        for d in res.decisions:
            out.append(
                (
                    d.job_id,
                    d.status,
                    d.cluster,
                    [(v.job_id, v.cluster) for v in d.victims],
                    d.to_body(),
                    d.summary(),
                )
            )
        # capacity frees between cycles, as jobs finish
        snap.allocated *= 0.7
    return out


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("wait", [0.0, 300.0])
def test_cached_path_decides_as_the_reference(seed: int, wait: float) -> None:
    policy = PlacementPolicy.model_validate({**ALL_PLUGINS.model_dump(), "locality_wait_max_s": wait})
    specs = queue_specs(seed, 400)
    got = decide(BatchScheduler(Scheduler.from_policy(policy), quota()), copy.deepcopy(specs), seed, 3)
    ref = decide(BatchScheduler(Scheduler.from_policy(policy), quota(), caches=False), specs, seed, 3)
    assert len(got) == len(ref) > 400
    for a, b in zip(got, ref, strict=True):
        assert a == b
    statuses = {x[1] for x in ref}
    assert {"Scheduled", "Unschedulable", "UnschedulableAndUnresolvable"} <= statuses


@pytest.mark.parametrize("seed", range(2))
def test_evaluated_in_chunks_decides_as_the_reference(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    """``evaluate_many`` works ``EVALUATE_CHUNK`` shapes at a time; a chunk of 37 splits every
    cycle here, and the decisions are still the reference's."""
    import controller.scheduler.batch as batch

    monkeypatch.setattr(batch, "EVALUATE_CHUNK", 37)
    specs = queue_specs(seed, 400)
    policy = PlacementPolicy.model_validate({**ALL_PLUGINS.model_dump(), "locality_wait_max_s": 300.0})
    got = decide(BatchScheduler(Scheduler.from_policy(policy), quota()), copy.deepcopy(specs), seed, 3)
    ref = decide(BatchScheduler(Scheduler.from_policy(policy), quota(), caches=False), specs, seed, 3)
    assert len(got) == len(ref) > 400
    for a, b in zip(got, ref, strict=True):
        assert a == b


def test_caches_are_bounded_and_counted() -> None:
    bs = BatchScheduler(Scheduler.from_policy(ALL_PLUGINS), None, shape_cache=100, component_cache=50)
    specs = queue_specs(1, 600)
    decide(bs, specs, 1, 2)
    stats = bs.cache_stats()
    assert stats["shapes"]["size"] <= 100 and stats["shapes"]["misses"] >= 500
    for name, st in stats.items():
        if name != "datasets":
            assert st["size"] <= st["max"], name
    # The data-set table starts again when a cycle begins above its bound.
    assert stats["datasets"]["resets"] >= 1 and stats["datasets"]["size"] <= 50 + len(CAT.datasets)
    roomy = BatchScheduler(Scheduler.from_policy(ALL_PLUGINS), None)
    decide(roomy, specs, 1, 2)
    assert roomy.cache_stats()["datasets"]["hit_rate"] > 0.8


def test_the_data_set_table_outlives_heartbeats_but_not_what_it_reads() -> None:
    """The data-set table (residency, transfers per data set) is kept while the clusters' names
    and owners, the catalogue, the network and the residency policy are the same; a heartbeat's
    capacity or health makes a new generation without rebuilding it. A tighter residency policy
    or a new data set rebuilds it, and every cycle decides as the reference."""
    from controller.datasets import Classification
    from controller.policies import Movement, ResidencyPolicy

    tighter = ResidencyPolicy(
        movement={
            Classification.core: Movement.none,
            Classification.important: Movement.owner_or_national,
            Classification.general: Movement.owner_or_national,
        }
    )
    some = next(iter(CAT.datasets.values()))
    extra = some.model_copy(update={"id": "ds-new-00001", "classification": Classification.general})
    steps: list[tuple[str, Any]] = [
        ("base", None),
        ("heartbeat", None),  # a cluster's capacity and another's health change
        ("tighter residency", tighter),
        ("a new data set", tighter),
    ]
    policy = PlacementPolicy.model_validate({**ALL_PLUGINS.model_dump(), "locality_wait_max_s": 0.0})
    got_bs = BatchScheduler(Scheduler.from_policy(policy), quota())
    ref_bs = BatchScheduler(Scheduler.from_policy(policy), quota(), caches=False)
    tables = []
    general_moved = 0
    for step, (what, residency) in enumerate(steps):
        specs = queue_specs(10 + step, 200)
        if what == "a new data set":
            specs = [s.model_copy(update={"inputs": ["ds-new-00001"]}) for s in specs[:50]] + specs[50:]
        out = []
        for bs in (got_bs, ref_bs):
            snap = federation_state(step)
            if residency is not None:
                snap.residency = residency
            if what == "a new data set":
                snap.datasets = {**CAT.datasets, extra.id: extra}
            if what == "heartbeat":
                snap.capacity[2, 0] -= 3.0
                snap.ready[4] = False
                snap.not_ready_reason[4] = "Unreachable"
            q = PendingQueue()
            for i, spec in enumerate(specs):
                q.push(f"job-{step}-{i:04d}", bs.shapes.intern(spec), runtime=spec.expected_runtime_s)
            res = bs.run(q, snap, limit=len(specs), running={}, now=1000.0 + step)
            out.append([(d.job_id, d.status, d.cluster, d.to_body(), d.summary()) for d in res.decisions])
            if bs is got_bs:
                tables.append(bs._table)
                if residency is tighter:  # general data now stays with its owner or the national nodes
                    for d in res.decisions:
                        reads = [snap.datasets[i] for i in d.shape.inputs if i in snap.datasets]
                        if d.chosen >= 0 and any(ds.classification == Classification.general for ds in reads):
                            general_moved += 1
                            c = snap.clusters[d.chosen]
                            assert all(
                                ds.owner == c.tenant or c.tier.value == "national" or c.name in ds.locations
                                for ds in reads
                                if ds.classification != Classification.core
                            ), (d.job_id, c.name)
        assert out[0] == out[1], what
    assert tables[1] is tables[0]  # kept across the heartbeat's generation
    assert tables[2] is not tables[1] and tables[3] is not tables[2]
    assert general_moved > 0  # the tighter rule was exercised
