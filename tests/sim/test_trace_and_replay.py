"""Trace loading, baselines and a small replay: residency holds for ours, baselines may break it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from controller.data import TRACE_CSV
from controller.sim.baselines import KarmadaDynamicWeight, LocalityGreedy, OcmPlacement, RandomFit
from controller.sim.replay import (
    OURS,
    PLAN_SLACK,
    RESOURCES,
    busiest_pool,
    capacity_scale,
    jain,
    replay,
    setup,
    wan_lower_bound,
)
from controller.sim.trace import MACHINE_MEMORY_GIB, load_trace
from tests.scheduler.helpers import index, job, snap

TRACE = TRACE_CSV  # vendored, whole (controller/data/)
HEADER = (
    "task_create_time, task_end_time, job_id, task_id,number_of_instances, status, "
    "number_of_cpus_requested_per_instance_in_the_task,normalized_memory_requested_per_instance_in_the_task\n"
)


def write_trace(tmp_path: Path, rows: list[str]) -> Path:
    p = tmp_path / "trace.csv"
    p.write_text(HEADER + "\n".join(rows) + "\n")
    return p


def test_trace_job_semantics(tmp_path: Path) -> None:
    path = write_trace(
        tmp_path,
        [
            "100,200,7,1,4,Terminated,50,0.01",  # 4 x 0.5 core for 100 s = 200 core-s
            "150,300,7,2,2,Terminated,100,0.02",  # 2 x 1 core for 150 s = 300 core-s (largest)
            "50,60,8,3,1,Waiting,,",  # no request: dropped
            "90,90,9,4,1,Failed,100,0.01",  # never ran: dropped
            "10,20,10,5,1,Terminated,200,0.5",
        ],
    )
    jobs = {j.job_id: j for j in load_trace(path)}
    assert set(jobs) == {"7", "10"}
    j7 = jobs["7"]
    assert j7.submit == 90.0  # 100 - the first job's submit (10)
    assert j7.cpu == 1.0 and j7.memory_gib == pytest.approx(0.02 * MACHINE_MEMORY_GIB)
    assert j7.cores * j7.duration == pytest.approx(500.0)  # work is conserved
    assert jobs["10"].submit == 0.0 and jobs["10"].cpu == 2.0


def test_capacity_scale_targets_the_load(tmp_path: Path) -> None:
    from controller.sim.federation import federation

    path = write_trace(
        tmp_path, ["0,1000,1,1,10,Terminated,100,0.01", "1000,2000,2,1,10,Terminated,100,0.01"]
    )
    trace = load_trace(path)
    topo = federation(ministries=8)
    cores = sum(c.capacity.cpu for c in topo.clusters)
    s = capacity_scale(trace, topo, 0.5)
    # Offered inside the window [0, 1000]: job 1 fully (10 cores x 1000 s), job 2 not at all.
    assert s * cores * 0.5 * 1000 == pytest.approx(10_000)


def test_capacity_scale_follows_the_scarcest_resource(tmp_path: Path) -> None:
    from controller.sim.federation import federation

    path = write_trace(tmp_path, ["0,1000,1,1,10,Terminated,100,0.01", "500,600,2,1,1,Terminated,100,0.01"])
    trace = load_trace(path)
    topo = federation(ministries=8)
    gpus = sum(c.capacity.gpu for c in topo.clusters)
    # Job 1: 10 replicas x 0.5 GPU for the whole window [0, 500]: GPUs are the scarcest resource.
    s = capacity_scale(trace, topo, 0.5, [500, 0])
    assert s * gpus * 0.5 * 500 == pytest.approx(10 * 0.5 * 500)
    assert s > capacity_scale(trace, topo, 0.5)  # cpu alone would need far less


def legal_only(*names: str) -> np.ndarray:
    m = np.zeros(len(snap().names), dtype=bool)
    for n in names:
        m[index(n)] = True
    return m


def test_karmada_picks_the_most_available_replicas_among_legal_clusters() -> None:
    s = snap()
    free = s.capacity.copy()
    free[:, 0] = 10.0
    free[index("prov-hubei"), 0] = 50.0
    free[index("prov-anhui"), 0] = 50.0  # tie: by name, anhui first
    assert s.names[KarmadaDynamicWeight().choose(job(cpu=2.0), np.zeros(3), free, s)] == "prov-anhui"
    assert KarmadaDynamicWeight().choose(job(cpu=60.0), np.array([60.0, 1, 0]), free, s) is None
    # ClusterAffinity restricted to the legal clusters: the best legal one, not the best overall.
    legal = legal_only("prov-hunan", "national-backup")
    free[index("national-backup"), 0] = 20.0
    assert (
        s.names[KarmadaDynamicWeight().choose(job(cpu=2.0), np.zeros(3), free, s, legal)] == "national-backup"
    )


def test_ocm_balance_steady_and_allocatable_among_legal_clusters() -> None:
    s = snap()
    free = s.capacity.copy()
    free[index("national-primary")] = 0.0  # full, but the largest allocatable: OCM does not check fit
    spec = job(cpu=1.0)
    ocm = OcmPlacement()
    assert s.names[ocm.choose(spec, spec_demand(spec), free, s)] == "national-primary"
    # Balance: decisions already on national-primary lower its score below national-backup's.
    for _ in range(5):
        ocm.placed(index("national-primary"))
    assert s.names[ocm.choose(spec, spec_demand(spec), free, s)] == "national-backup"
    for _ in range(5):
        ocm.finished(index("national-primary"))
    assert s.names[ocm.choose(spec, spec_demand(spec), free, s)] == "national-primary"
    legal = legal_only("prov-hubei", "prov-hainan")
    assert s.names[ocm.choose(spec, spec_demand(spec), free, s, legal)] == "prov-hubei"  # larger


def test_iridium_places_at_the_inputs_if_it_fits() -> None:
    s = snap()
    free = s.capacity.copy()
    spec = job(cpu=2.0)
    moved = np.full(s.size, 5e10)
    moved[index("prov-hainan")] = 0.0  # the inputs are there
    legal = np.ones(s.size, dtype=bool)
    pick = LocalityGreedy().choose(spec, spec_demand(spec), free, s, legal, moved, np.zeros(s.size))
    assert s.names[pick] == "prov-hainan"
    free[index("prov-hainan")] = 0.0  # full: the least bytes among those that fit
    moved[index("prov-hubei")] = 1e9
    pick = LocalityGreedy().choose(spec, spec_demand(spec), free, s, legal, moved, np.zeros(s.size))
    assert s.names[pick] == "prov-hubei"


def test_random_fits_is_legal_and_is_seeded() -> None:
    s = snap()
    free = np.zeros_like(s.capacity)
    free[index("prov-hubei")] = 100.0
    free[index("prov-hunan")] = 100.0
    free[index("prov-hainan")] = 100.0
    spec = job(cpu=2.0)
    legal = legal_only("prov-hubei", "prov-hunan")
    picks = {s.names[RandomFit(1).choose(spec, spec_demand(spec), free, s, legal)] for _ in range(10)}
    assert picks <= {"prov-hubei", "prov-hunan"}
    a = [RandomFit(7).choose(spec, spec_demand(spec), free, s, legal) for _ in range(3)]
    assert a == [RandomFit(7).choose(spec, spec_demand(spec), free, s, legal) for _ in range(3)]


def spec_demand(spec) -> np.ndarray:  # type: ignore[no-untyped-def]
    r = spec.resources
    return np.array([r.cpu, r.memory_gib, r.gpus]) * spec.replicas


def test_jain_index() -> None:
    assert jain(np.array([2.0, 2.0, 2.0])) == pytest.approx(1.0)
    assert jain(np.array([1.0, 0.0, 0.0, 0.0])) == pytest.approx(0.25)


@pytest.fixture(scope="module")
def small_replay() -> tuple:
    jobs, s, meta = setup(trace_path=TRACE, limit=600)
    return jobs, s, meta


def test_small_replay_every_policy_is_legal_and_counts_every_job(small_replay: tuple) -> None:
    jobs, s, meta = small_replay
    assert meta["gpu_jobs"] > 0 and meta["scarcest_resource"] in ("cpu", "memory", "gpu")
    feasible = [j for j in jobs if j.feasible]
    results = {p: replay(p, jobs, s, "sjf") for p in (OURS, "karmada", "ocm", "iridium", "random")}
    for r in results.values():
        assert r.residency_violations == 0  # fair baselines: restricted to legal clusters
        assert r.finished + r.unplaced == len(feasible) and r.infeasible == len(jobs) - len(feasible)
        assert r.mean_jct_s > 0 and 0 < r.utilization <= 1 and 0 <= r.gpu_utilization <= 1
        assert 0 < r.jain_slowdown <= 1
        assert r.tenant_p95_wait_max_s >= r.median_wait_s
    assert results[OURS].wan_bytes < results["random"].wan_bytes
    # No policy that obeys residency moves fewer bytes than the capacity-free lower bound.
    bound = meta["wan_lower_bound_bytes"]
    assert bound == wan_lower_bound(jobs, s) and bound > 0
    assert all(r.wan_bytes >= bound for r in results.values())
    for j in jobs:
        if j.cluster >= 0:
            assert j.legal[j.cluster]
            assert j.start >= j.trace.submit and j.finish == pytest.approx(j.start + j.trace.duration)


def test_the_busiest_pool_is_the_plain_loops(small_replay: tuple) -> None:
    """``busiest_pool`` (set inclusion and sums as matrices) against a plain loop over the
    distinct sets of clusters the jobs may run on."""
    jobs, s, meta = small_replay
    feasible = [j for j in jobs if j.feasible]
    window = max(j.trace.submit for j in feasible)
    sets = {tuple(j.legal & (s.capacity >= j.demand).all(axis=1)) for j in feasible}
    best = (0.0, "", 0)
    for S in sets:
        inside = [
            j
            for j in feasible
            if all(b for a, b in zip(j.legal & (s.capacity >= j.demand).all(axis=1), S, strict=True) if a)
        ]
        work = sum(
            j.demand * max(0.0, min(j.trace.submit + j.trace.duration, window) - j.trace.submit)
            for j in inside
        )
        cap = s.capacity[np.array(S)].sum(axis=0) * window
        for r in range(3):
            if cap[r] > 0 and work[r] / cap[r] > best[0]:
                best = (work[r] / cap[r], RESOURCES[r], len(inside))
    got = busiest_pool(jobs, s)
    assert got == meta["busiest_pool"]
    assert got["load"] == pytest.approx(best[0], abs=1e-3) and got["resource"] == best[1]
    assert got["jobs"] == best[2] and got["load"] > 0


def test_a_capacity_plan_bounds_the_busiest_pool() -> None:
    """``setup(plan=True)`` grows the clusters of overloaded pools until none is loaded above the
    target (within its slack); without it the first 3,000 jobs overload the national nodes."""
    _, _, uniform = setup(limit=3000, target=0.9)
    assert uniform["busiest_pool"]["load"] > 1.0 and uniform["plan"] == {}
    jobs, s, planned = setup(limit=3000, target=0.9, plan=True)
    assert planned["busiest_pool"]["load"] <= 0.9 * (1 + PLAN_SLACK)
    assert planned["plan"] and all(f > 1.0 for f in planned["plan"].values())
    assert {"national-primary", "national-backup"} <= set(planned["plan"])
    # The rest of the federation is as the uniform scale made it; the federation as a whole is a
    # pool too, so it is at most at the target.
    assert planned["capacity_scale"] == uniform["capacity_scale"]
    assert planned["offered_load"] <= 0.9 * (1 + PLAN_SLACK)
    assert busiest_pool(jobs, s) == planned["busiest_pool"]


def test_unplaced_jobs_are_counted_censored_at_the_end(small_replay: tuple) -> None:
    """Shrink one legal cluster's GPUs under a job nothing else may run: it waits to the end and
    counts, its wait censored at the end of the replay."""
    jobs, s, _ = small_replay
    r = replay("karmada", jobs, s, "fifo")
    assert r.unplaced == 0
    j = next(j for j in jobs if j.feasible)
    saved = j.demand.copy()
    j.demand = j.demand + np.array([0.0, 0.0, 1e6])  # feasible by its flag, never fits
    try:
        r2 = replay("karmada", jobs, s, "fifo")
    finally:
        j.demand = saved
    assert r2.unplaced == 1 and r2.finished == r.finished - 1
    assert r2.mean_wait_s > r.mean_wait_s  # its wait runs to the end of the replay
