"""Plan and cycle agree: ``pipeline.decide`` (what ``POST /v1/plan`` runs) gives a job the decision
the leader's cycle gives it, over seeded random federations, cluster states, data, quota policies
and usage, placed work (preemption), failover origins and queues of other pending jobs.

The job planned goes first in the cycle (a strictly higher priority than the rest of the queue),
so the decision the cycle makes for it sees the same state the plan saw. The cycle runs on one
long-lived ``BatchScheduler`` per quota policy, as the leader's does (its per-shape caches carried
from case to case); the plan on a fresh one.
"""

from __future__ import annotations

import copy
import functools
import random
from typing import Any

import numpy as np
import pytest

from controller.datasets import Classification, DatasetRead
from controller.jobs import JobCreate, Resources
from controller.policies import QuotaPolicy, ResidencyPolicy, TenantQuota
from controller.scheduler.batch import BatchScheduler
from controller.scheduler.decision import Decision
from controller.scheduler.framework import Snapshot
from controller.scheduler.pipeline import decide
from controller.scheduler.queue import PendingQueue, Running
from controller.scheduler.scheduler import Scheduler
from controller.sim.federation import ALL_PLUGINS, federation, snapshot_of
from controller.topology.model import Topology
from controller.topology.network import NetworkModel

SEEDS = range(8)
CASES_PER_SEED = 40  # 320 cases in all


@functools.cache
def world(ministries: int) -> tuple[Topology, NetworkModel, dict[str, DatasetRead]]:
    topo = federation(ministries=ministries)
    rng = random.Random(ministries)
    owners = [c for c in topo.clusters if c.tier.value != "national"]
    national = [c.name for c in topo.clusters if c.tier.value == "national"]
    catalogue: dict[str, DatasetRead] = {}
    for k in range(30):
        home = rng.choice(owners)
        locs = {home.name} | ({rng.choice(national)} if rng.random() < 0.3 else set())
        catalogue[f"d{k}"] = DatasetRead(
            id=f"d{k}",
            owner=home.tenant,
            size_bytes=rng.choice([10**8, 10**10, 10**12]),
            classification=rng.choice(list(Classification)),
            locations=sorted(locs),
        )
    return topo, NetworkModel(topo), catalogue


def quota_policies(tenants: list[str]) -> list[QuotaPolicy | None]:
    """None; no limits; tight defaults; a few tenants with their own nominal and borrowing limits."""
    tight = TenantQuota(nominal={"cpu": 300, "memory_gib": 4000}, borrowing_limit={"cpu": 600})
    own = {
        t: TenantQuota(nominal={"cpu": 100.0 * (i + 1)}, borrowing_limit={"cpu": 50.0 * i}, weight=1 + i % 3)
        for i, t in enumerate(tenants[:6])
    }
    return [
        None,
        QuotaPolicy(),
        QuotaPolicy(default=tight),
        QuotaPolicy(default=tight, tenants=own, reclaim_borrowed=False),
        QuotaPolicy(tenants=own, preemption=False),
    ]


def spec(rng: random.Random, tenants: list[str], catalogue: dict[str, DatasetRead], **kw: Any) -> JobCreate:
    inputs = rng.sample(sorted(catalogue), rng.choice([0, 0, 1, 1, 2]))
    constraints: dict[str, Any] = {}
    if rng.random() < 0.15:
        constraints["deny_clusters"] = ["national-primary"]
    if rng.random() < 0.1:
        constraints["prefer_clusters"] = ["national-backup"]
    return JobCreate(
        name="j",
        tenant=rng.choice(tenants),
        inputs=inputs,
        resources=Resources(
            cpu=rng.choice([1.0, 8.0, 64.0, 256.0, 1024.0]),
            memory_gib=rng.choice([1.0, 64.0, 512.0]),
            gpu=rng.choice([0, 0, 0, 1]),
        ),
        replicas=rng.choice([1, 1, 2, 4]),
        delay_tolerant=rng.random() < 0.3,
        constraints=constraints,
        **kw,
    )


def state(rng: random.Random, topo: Topology, snap: Snapshot) -> dict[int, list[Running]]:
    """Cluster health, cordons and allocation; the placed jobs behind part of that allocation."""
    n = snap.size
    snap.ready[:] = [rng.random() > 0.1 for _ in range(n)]
    snap.cordoned[:] = [rng.random() < 0.05 for _ in range(n)]
    snap.not_ready_reason = ["Ready" if r else "NotReady" for r in snap.ready]
    running: dict[int, list[Running]] = {}
    tenants = sorted({c.tenant for c in topo.clusters})
    for i in range(n):
        share = rng.choice([0.0, 0.3, 0.7, 0.95, 1.0, 1.0, 1.0])
        snap.allocated[i] = snap.capacity[i] * share
        for k in range(rng.choice([0, 0, 1, 3])):
            demand = snap.allocated[i] / 4
            running.setdefault(i, []).append(
                Running(f"run-{i}-{k}", i, rng.choice([0, 10, 100, 1000]), demand.copy(), rng.choice(tenants))
            )
    usage: dict[str, np.ndarray] = {}
    for r in (r for rs in running.values() for r in rs):
        usage[r.tenant] = usage.get(r.tenant, np.zeros(3)) + r.demand
    snap.tenant_usage = usage
    return running


def comparable(d: Decision) -> dict[str, Any]:
    return d.model_dump(mode="json", exclude={"created_at", "job_id", "epoch"})


@functools.cache
def run_seed(seed: int) -> frozenset[str]:
    """Plans and cycles the cases of one seed, asserting they agree; returns what they reached."""
    rng = random.Random(seed)
    ministries = rng.choice([0, 4, 8])
    topo, net, catalogue = world(ministries)
    tenants = sorted({c.tenant for c in topo.clusters})
    residency = ResidencyPolicy()
    sched = Scheduler.from_policy(
        ALL_PLUGINS.model_copy(update={"locality_wait_max_s": rng.choice([0, 300])})
    )
    quotas = quota_policies(tenants)
    cycles = [BatchScheduler(sched, q) for q in quotas]  # long-lived, one per quota policy
    backups = {c.name: ["national-backup", rng.choice(topo.clusters).name] for c in topo.clusters[2:]}
    outcomes: set[str] = set()
    for case in range(CASES_PER_SEED):
        which = rng.randrange(len(quotas))
        quota, batch = quotas[which], cycles[which]
        snap = snapshot_of(topo, net, datasets=catalogue, residency=residency)
        running = state(rng, topo, snap)
        origin = rng.choice(topo.clusters).name if rng.random() < 0.2 else None
        named = {"priority_class": rng.choice(["high", "nope"])} if quota and rng.random() < 0.2 else {}
        job = spec(rng, tenants, catalogue, priority=rng.choice([500, 2000]), **named)
        others = (
            []
            if named
            else [
                spec(rng, tenants, catalogue, priority=rng.choice([0, 100])) for _ in range(rng.randrange(12))
            ]
        )
        now = 1_000_000.0 + case
        planned_snap = copy.deepcopy(snap)
        planned = decide(
            sched,
            job,
            planned_snap,
            quota=quota,
            running=copy.deepcopy(running),
            backups=backups,
            origin=origin,
            attempt=2 if origin else 1,
            now=now,
        )
        assert np.array_equal(planned_snap.allocated, snap.allocated), "a plan reserved capacity"
        queue = PendingQueue()
        for k, other in enumerate(others):
            queue.push(f"s{seed}-c{case}-o{k}", batch.shapes.intern(other))
        job_id = f"s{seed}-c{case}-job"
        queue.push(job_id, batch.shapes.intern(job, origin), 2 if origin else 1)
        result = batch.run(queue, snap, limit=len(others) + 1, running=running, backups=backups, now=now)
        (ours,) = [d for d in result.decisions if d.job_id == job_id]
        assert result.decisions[0] is ours, f"seed {seed} case {case}: the planned job did not go first"
        cycled = ours.to_decision()
        assert comparable(planned) == comparable(cycled), f"seed {seed} case {case}"
        assert planned.job_id is None and cycled.job_id == job_id
        outcomes.add(cycled.status if cycled.cluster is None else "Scheduled")
        outcomes |= {r.plugin for r in cycled.rejected}
        if ours.victims:
            outcomes.add("preemption")
        if origin is not None and cycled.cluster in backups.get(origin, ()):
            outcomes.add("failover")
    return frozenset(outcomes)


@pytest.mark.parametrize("seed", SEEDS)
def test_plan_and_cycle_agree(seed: int) -> None:
    outcomes = run_seed(seed)
    # Each seed reaches placements and refusals alike, not one easy corner.
    assert {"Scheduled", "Unschedulable", "residency", "capacity", "quota"} <= outcomes, outcomes


def test_the_cases_reach_every_step_of_the_pipeline() -> None:
    reached = frozenset[str]().union(*(run_seed(s) for s in SEEDS))
    steps = {"health", "constraints", "residency", "gang", "capacity", "quota", "locality"}
    assert steps | {"preemption", "failover", "UnschedulableAndUnresolvable"} <= reached, reached


def test_a_single_decision_reserves_only_when_asked() -> None:
    topo, net, catalogue = world(0)
    sched = Scheduler.from_policy(ALL_PLUGINS)
    snap = snapshot_of(topo, net, datasets=catalogue, residency=ResidencyPolicy())
    job = JobCreate(name="j", tenant="hubei", resources=Resources(cpu=8, memory_gib=16), replicas=2)
    before = snap.allocated.copy()
    looked = decide(sched, job, snap)
    assert looked.cluster is not None and np.array_equal(snap.allocated, before)
    taken = decide(sched, job, snap, reserve=True)
    i = snap.index[taken.cluster or ""]
    assert taken.cluster == looked.cluster
    assert snap.allocated[i].tolist() == (before[i] + [16.0, 32.0, 0.0]).tolist()
    assert np.array_equal(np.delete(snap.allocated, i, axis=0), np.delete(before, i, axis=0))
