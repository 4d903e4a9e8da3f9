"""Trace loading, baselines and a small replay: residency holds for ours, baselines may break it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from controller.data import TRACE_CSV
from controller.sim.baselines import KarmadaDynamicWeight, OcmAllocatableCpu, RandomFit
from controller.sim.replay import OURS, capacity_scale, replay, setup
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


def test_karmada_picks_the_most_available_replicas() -> None:
    s = snap()
    free = s.capacity.copy()
    free[:, 0] = 10.0
    free[index("prov-hubei"), 0] = 50.0
    free[index("prov-anhui"), 0] = 50.0  # tie: by name, anhui first
    assert s.names[KarmadaDynamicWeight().choose(job(cpu=2.0), np.zeros(3), free, s)] == "prov-anhui"
    assert KarmadaDynamicWeight().choose(job(cpu=60.0), np.array([60.0, 1, 0]), free, s) is None


def test_ocm_ranks_by_allocatable_not_by_free() -> None:
    s = snap()
    free = s.capacity.copy()
    free[index("national-primary")] = 0.0  # full, but the largest allocatable
    spec = job(cpu=1.0)
    assert s.names[OcmAllocatableCpu().choose(spec, spec_demand(spec), free, s)] == "national-primary"


def test_random_fits_and_is_seeded() -> None:
    s = snap()
    free = np.zeros_like(s.capacity)
    free[index("prov-hubei")] = 100.0
    free[index("prov-hunan")] = 100.0
    spec = job(cpu=2.0)
    picks = {s.names[RandomFit(1).choose(spec, spec_demand(spec), free, s)] for _ in range(5)}
    assert picks <= {"prov-hubei", "prov-hunan"}
    a = [RandomFit(7).choose(spec, spec_demand(spec), free, s) for _ in range(3)]
    assert a == [RandomFit(7).choose(spec, spec_demand(spec), free, s) for _ in range(3)]


def spec_demand(spec) -> np.ndarray:  # type: ignore[no-untyped-def]
    r = spec.resources
    return np.array([r.cpu, r.memory_gib, r.gpu]) * spec.replicas


@pytest.fixture(scope="module")
def small_replay() -> tuple:
    jobs, s, meta = setup(trace_path=TRACE, limit=600)
    return jobs, s, meta


def test_replay_small_slice_ours_keeps_residency(small_replay: tuple) -> None:
    jobs, s, _meta = small_replay
    results = {p: replay(p, jobs, s) for p in (OURS, "karmada", "ocm", "random")}
    ours = results[OURS]
    assert ours.residency_violations == 0
    assert ours.finished >= 0.95 * ours.jobs
    for r in results.values():
        assert r.mean_jct_s > 0 and r.p95_jct_s >= r.mean_jct_s * 0 and 0 < r.utilization <= 1
    # Baselines ignore residency: on this workload they place some jobs illegally.
    assert results["karmada"].residency_violations > 0
    assert ours.wan_bytes < results["karmada"].wan_bytes
    for j in jobs:
        if j.cluster >= 0:
            assert j.start >= j.trace.submit and j.finish == pytest.approx(j.start + j.trace.duration)
