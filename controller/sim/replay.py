"""Trace replay with a virtual clock, driving the real scheduler over the simulated federation.

Events: a job arrives (its trace submit time) and joins the pending queue; every ``cycle_s``
virtual seconds with something changed, the policy places pending jobs and capacity is reserved
at once (the whole gang, on one cluster); the job then waits for its inputs to arrive over the
network model (each input from its nearest copy, in parallel: the slowest bounds the wait; no
link contention is modelled) and runs for its trace duration; at its end the capacity is freed.

Metrics per policy: WAN bytes moved, mean/p95 job completion time (finish - submit), p95 wait
(start - submit: queueing plus input transfer), utilisation (core-seconds running over
capacity x the submission window: the load the trace offers while it arrives), residency violations (jobs placed where one of
their inputs may not go: baselines do not look at residency; ours must never violate).
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from controller.jobs import JobCreate, Resources
from controller.policies import PlacementPolicy, ResidencyPolicy
from controller.scheduler.batch import BatchScheduler, PendingQueue
from controller.scheduler.framework import CycleState, JobInfo, Snapshot
from controller.scheduler.plugins.locality import transfer_estimate
from controller.scheduler.plugins.residency import ResidencyFilter
from controller.scheduler.scheduler import Scheduler
from controller.settings import REPO_POLICIES
from controller.sim.baselines import BASELINES, Baseline
from controller.sim.federation import DEFAULT_DATA_DIR, federation, snapshot_of
from controller.sim.trace import TraceJob, load_trace
from controller.sim.workload import Catalogue, InputAssigner, make_catalogue
from controller.topology.model import Topology
from controller.topology.network import NetworkModel

OURS = "yiwang"
TARGET_UTILISATION = 0.7
ESTIMATE_SIGMA = 1.0
LOCAL_LOOKAHEAD = 64


def ours_policy() -> PlacementPolicy:
    """The shipped placement policy (policies/placement.yaml): the replay runs what a deployment
    runs (filters health, constraints, residency, gang, capacity; scores locality x3,
    constraints, balance, green; delay scheduling for locality)."""
    return PlacementPolicy.model_validate(yaml.safe_load((REPO_POLICIES / "placement.yaml").read_text()))


@dataclass
class SimJob:
    trace: TraceJob
    spec: JobCreate
    info: JobInfo
    demand: np.ndarray
    legal: np.ndarray  # clusters residency allows
    seconds: np.ndarray  # input transfer time to each cluster
    moved: np.ndarray  # bytes moved to each cluster
    cluster: int = -1
    start: float = 0.0
    finish: float = 0.0


@dataclass
class OursPlacer:
    """The real batch scheduler (plugins, shapes, reservations) on the replay's snapshot."""

    snap: Snapshot
    name: str = OURS
    batch: BatchScheduler = field(init=False)
    queue: PendingQueue = field(default_factory=PendingQueue)
    by_id: dict[str, SimJob] = field(default_factory=dict)
    policy: PlacementPolicy = field(default_factory=lambda: ours_policy())

    def __post_init__(self) -> None:
        self.batch = BatchScheduler(Scheduler.from_policy(self.policy), None)

    def add(self, job: SimJob) -> None:
        self.by_id[job.trace.job_id] = job
        spec = job.spec
        self.queue.push(job.trace.job_id, self.batch.shapes.intern(spec), runtime=spec.expected_runtime_s)

    def place(self, free: np.ndarray, now: float) -> list[tuple[SimJob, int]]:
        self.snap.allocated = self.snap.capacity - free
        result = self.batch.run(self.queue, self.snap, limit=5000, now=now)
        out = []
        for d in result.decisions:
            if d.chosen >= 0 and d.job_id is not None:
                out.append((self.by_id.pop(d.job_id), d.chosen))
        return out

    def waiting(self) -> bool:
        """Jobs wait for a cluster holding their inputs (delay scheduling)."""
        return bool(self.batch.waiting_since)


@dataclass
class BaselinePlacer:
    baseline: Baseline
    snap: Snapshot
    pending: list[SimJob] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.baseline.name

    def add(self, job: SimJob) -> None:
        self.pending.append(job)

    def waiting(self) -> bool:
        return False

    def place(self, free: np.ndarray, now: float) -> list[tuple[SimJob, int]]:
        placed, keep = [], []
        for job in self.pending[:5000]:
            c = self.baseline.choose(job.spec, job.demand, free, self.snap)
            if c is None:
                keep.append(job)
                continue
            placed.append((job, c))
            free[c] -= job.demand  # reserve now: later jobs of the cycle see it
        self.pending = keep + self.pending[5000:]
        for job, c in placed:
            free[c] += job.demand  # the replay reserves (or queues) below
        return placed


def build_jobs(trace: list[TraceJob], cat: Catalogue, snap: Snapshot, seed: int = 11) -> list[SimJob]:
    assign = InputAssigner(cat, seed)
    residency = ResidencyFilter()
    # The submitter's runtime estimate: the trace duration times a log-normal error (sigma 1:
    # half of the estimates are off by more than x2 either way), seeded.
    error = np.random.default_rng(seed + 1).lognormal(0.0, ESTIMATE_SIGMA, size=len(trace))
    out = []
    for t, err in zip(trace, error, strict=True):
        tenant, inputs, tolerant = assign.draw()
        spec = JobCreate(
            name=f"trace-{t.job_id}",
            tenant=tenant,
            inputs=inputs,
            delay_tolerant=tolerant,
            replicas=t.replicas,
            resources=Resources(cpu=t.cpu, memory_gib=t.memory_gib),
            expected_runtime_s=float(min(max(t.duration * err, 1.0), 30 * 86400)),
        )
        info = JobInfo(id=t.job_id, spec=spec, inputs=[cat.datasets[d] for d in inputs], missing_inputs=[])
        legal = residency.filter(CycleState(), info, snap).codes == 0
        seconds, moved = transfer_estimate(info, snap)
        out.append(SimJob(t, spec, info, info.demand, legal, seconds, moved))
    return out


def capacity_scale(trace: list[TraceJob], topo: Topology, target: float = TARGET_UTILISATION) -> float:
    """Scale every cluster by one factor so that the core-seconds the trace offers inside its
    submission window [0, W] (each job as if it started on arrival, cut at W) are ``target`` of
    the federation's cores over W: s = offered / (target x W x cores)."""
    window = max(max(j.submit for j in trace), 1.0)
    offered = sum(j.cores * max(0.0, min(j.submit + j.duration, window) - j.submit) for j in trace)
    cores = sum(c.capacity.cpu for c in topo.clusters)
    return offered / (target * window * cores)


@dataclass
class ReplayResult:
    policy: str
    jobs: int
    finished: int
    wan_bytes: float
    mean_jct_s: float
    p95_jct_s: float
    p95_wait_s: float
    utilization: float
    memory_utilization: float
    residency_violations: int
    makespan_s: float
    wall_s: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def replay(
    placer_name: str, jobs: list[SimJob], snap: Snapshot, cycle_s: float = 5.0, seed: int = 3
) -> ReplayResult:
    t_wall = time.perf_counter()
    for j in jobs:
        j.cluster, j.start, j.finish = -1, 0.0, 0.0
    snap = Snapshot(
        clusters=snap.clusters,
        network=snap.network,
        capacity=snap.capacity,
        allocated=np.zeros_like(snap.capacity),
        ready=snap.ready,
        cordoned=snap.cordoned,
        not_ready_reason=snap.not_ready_reason,
        datasets=snap.datasets,
        residency=snap.residency,
    )
    placer: OursPlacer | BaselinePlacer
    placer = OursPlacer(snap) if placer_name == OURS else BaselinePlacer(BASELINES[placer_name](seed), snap)
    free = snap.capacity.copy()
    # Member-cluster queues: a baseline that places without a fit check (OCM) queues the job at
    # the member cluster until it fits there, as a Kubernetes cluster keeps pods Pending.
    local: dict[int, list[SimJob]] = {}
    events: list[tuple[float, int, int, int]] = []  # (time, order, kind, job index)
    arrive, finish = 0, 1
    for i, j in enumerate(jobs):
        events.append((j.trace.submit, 1, arrive, i))
    heapq.heapify(events)
    busy_core_s = 0.0  # running core-seconds inside the submission window
    busy_mem_s = 0.0
    window = max((j.trace.submit for j in jobs), default=1.0) or 1.0
    wan = 0.0
    violations = 0
    next_cycle = 0.0
    dirty = False  # something changed since the last cycle
    done = 0
    t = 0.0

    def start(j: SimJob, c: int, now: float) -> None:
        nonlocal busy_core_s, busy_mem_s, wan, violations
        free[c] -= j.demand
        j.cluster = c
        j.start = now + float(j.seconds[c])
        j.finish = j.start + j.trace.duration
        run_lo, run_hi = min(j.start, window), min(j.finish, window)
        busy_core_s += float(j.demand[0]) * (run_hi - run_lo)
        busy_mem_s += float(j.demand[1]) * (run_hi - run_lo)
        wan += float(j.moved[c])
        if not j.legal[c]:
            violations += 1
        heapq.heappush(events, (j.finish, 0, finish, index[id(j)]))

    index = {id(j): i for i, j in enumerate(jobs)}
    while events:
        # Take every event up to the next cycle; a cycle runs only after something changed.
        if not dirty or events[0][0] <= next_cycle:
            t, _, kind, i = heapq.heappop(events)
            j = jobs[i]
            if kind == arrive:
                placer.add(j)
            else:
                free[j.cluster] += j.demand
                done += 1
                q = local.get(j.cluster)
                if q:
                    # The member cluster starts queued jobs that fit now, looking at most
                    # LOCAL_LOOKAHEAD jobs past the first that does not (a bounded scan, like
                    # a scheduler's queue; keeps the replay linear).
                    waiting, misses = [], 0
                    for k, w in enumerate(q):
                        if misses < LOCAL_LOOKAHEAD and (free[j.cluster] >= w.demand).all():
                            start(w, j.cluster, t)
                        else:
                            misses += 1
                            waiting.append(w)
                            if misses >= LOCAL_LOOKAHEAD:
                                waiting.extend(q[k + 1 :])
                                break
                    local[j.cluster] = waiting
            dirty = True
            next_cycle = max(next_cycle, t)
            if events and events[0][0] <= next_cycle:
                continue
        t = max(t, next_cycle)
        for j, c in placer.place(free, t):
            if (free[c] >= j.demand).all():
                start(j, c, t)
            else:
                local.setdefault(c, []).append(j)
        # A job waiting for a cluster that holds its inputs needs a later cycle even if
        # nothing else changes (its wait is bounded, so this ends).
        dirty = placer.waiting()
        next_cycle = t + cycle_s
    placed = [j for j in jobs if j.cluster >= 0]
    jct = np.array([j.finish - j.trace.submit for j in placed]) if placed else np.zeros(1)
    wait = np.array([j.start - j.trace.submit for j in placed]) if placed else np.zeros(1)
    makespan = max((j.finish for j in placed), default=1.0)
    return ReplayResult(
        policy=placer_name,
        jobs=len(jobs),
        finished=len(placed),
        wan_bytes=wan,
        mean_jct_s=round(float(jct.mean()), 2),
        p95_jct_s=round(float(np.percentile(jct, 95)), 2),
        p95_wait_s=round(float(np.percentile(wait, 95)), 2),
        utilization=round(busy_core_s / (float(snap.capacity[:, 0].sum()) * window), 4),
        memory_utilization=round(busy_mem_s / (float(snap.capacity[:, 1].sum()) * window), 4),
        residency_violations=violations,
        makespan_s=round(makespan, 1),
        wall_s=round(time.perf_counter() - t_wall, 2),
    )


def setup(
    trace_path: Path | None = None,
    limit: int | None = None,
    ministries: int = 64,
    data_dir: Path = DEFAULT_DATA_DIR,
    target: float = TARGET_UTILISATION,
) -> tuple[list[SimJob], Snapshot, dict[str, Any]]:
    trace = load_trace(trace_path or data_dir / "alibaba_v2017_batch_task.csv", limit=limit)
    base = federation(data_dir, ministries=ministries)
    scale = capacity_scale(trace, base, target)
    topo = federation(data_dir, ministries=ministries, scale=scale)
    cat = make_catalogue(topo)
    snap = snapshot_of(topo, NetworkModel(topo), datasets=cat.datasets, residency=ResidencyPolicy())
    jobs = build_jobs(trace, cat, snap)
    meta = {
        "jobs": len(jobs),
        "clusters": len(topo.clusters),
        "capacity_scale": round(scale, 4),
        "federation_cores": round(float(snap.capacity[:, 0].sum()), 1),
        "target_utilization": target,
        "submission_window_s": max(j.trace.submit for j in jobs) if jobs else 0.0,
    }
    return jobs, snap, meta


def replay_all(
    jobs: list[SimJob], snap: Snapshot, policies: list[str] | None = None
) -> dict[str, ReplayResult]:
    names = policies or [OURS, *BASELINES]
    return {name: replay(name, jobs, snap) for name in names}
