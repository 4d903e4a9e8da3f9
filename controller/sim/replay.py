"""Trace replay with a virtual clock, driving the real scheduler over the simulated federation.

Events: a job arrives (its trace submit time) and joins the pending queue; every ``cycle_s``
virtual seconds with something changed, the policy places pending jobs in the queue order under
test and capacity is reserved at once (the whole gang, on one cluster); the job then waits for
its inputs to arrive over the network model (each input from its nearest copy, in parallel: the
slowest bounds the wait; no link contention is modelled) and runs for its trace duration; at its
end the capacity is freed.

Two factors vary separately: the placement policy (ours, or a baseline from ``baselines.py``,
each restricted to the residency-legal clusters) and the queue order (``ordering.py``: fifo, sjf,
constrained-first with ageing), applied to every policy alike.

Metrics per run (``ReplayResult``): WAN bytes moved; job completion time (finish - submit) and
wait (start - submit: queueing plus input transfer) over *every* feasible job: a job still
waiting when the replay ends counts with its wait so far (censored at the end, a lower bound)
and is counted in ``unplaced``; per-tenant p95 wait against the federation's median wait;
Jain's fairness index over tenants' mean bounded slowdown; cpu, memory and GPU utilisation
inside the submission window; residency violations (jobs placed where one of their inputs may
not go; 0 for every policy here). A job that no policy can ever place (no residency-legal cluster
is large enough for its gang) is ``infeasible``: counted, and left out of every policy's numbers.

Why one module of this length: the virtual clock, the event loop and the metrics of one replay read
as one procedure; the workload, baselines and report are their own modules.
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
from controller.scheduler.batch import SLOWDOWN_FLOOR_S, BatchScheduler
from controller.scheduler.framework import CycleState, JobInfo, Snapshot
from controller.scheduler.ordering import ORDER_CONSTRAINED_FIRST, SORTED_ORDERS, sorted_positions
from controller.scheduler.plugins.locality import transfer_estimate
from controller.scheduler.plugins.residency import ResidencyFilter
from controller.scheduler.queue import PendingQueue
from controller.scheduler.scheduler import Scheduler
from controller.settings import REPO_POLICIES
from controller.sim.baselines import BASELINES, Baseline
from controller.sim.federation import DEFAULT_DATA_DIR, federation, snapshot_of
from controller.sim.gpu import GPU_JOB_FRACTION, GpuAssigner
from controller.sim.trace import TraceJob, load_trace
from controller.sim.workload import Catalogue, InputAssigner, make_catalogue
from controller.topology.model import Topology
from controller.topology.network import NetworkModel

OURS = "yiwang"
TARGET_UTILISATION = 0.7
LOADS = (0.5, 0.7, 0.9)
ESTIMATE_SIGMA = 1.0
LOCAL_LOOKAHEAD = 64
CYCLE_LIMIT = 5000
RESOURCES = ("cpu", "memory", "gpu")
PLAN_STEPS = 8  # ``setup(plan=True)``: at most this many growth steps
PLAN_SLACK = 0.02  # a pool within 2 % of the target is at the target


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
    flexibility: int = 0  # legal clusters large enough for the gang
    seq: int = 0
    cluster: int = -1
    start: float = 0.0
    finish: float = 0.0

    @property
    def feasible(self) -> bool:
        return self.flexibility > 0


def tenant_share(usage: dict[str, np.ndarray], total: np.ndarray, tenant: str) -> float:
    u = usage.get(tenant)
    if u is None:
        return 0.0
    return float(np.max(np.divide(u, total, out=np.zeros(3), where=total > 0)))


@dataclass
class OursPlacer:
    """The real batch scheduler (plugins, shapes, reservations, ageing, holds) on the replay's
    snapshot, with the queue order under test."""

    snap: Snapshot
    order: str = ORDER_CONSTRAINED_FIRST
    name: str = OURS
    batch: BatchScheduler = field(init=False)
    queue: PendingQueue = field(default_factory=PendingQueue)
    by_id: dict[str, SimJob] = field(default_factory=dict)
    policy: PlacementPolicy = field(default_factory=lambda: ours_policy())
    running: set[str] = field(default_factory=set)  # placed, not finished: what a controller knows

    def __post_init__(self) -> None:
        self.batch = BatchScheduler(Scheduler.from_policy(self.policy), None)
        self.batch.order = self.order

    def add(self, job: SimJob, now: float) -> None:
        self.by_id[job.trace.job_id] = job
        spec = job.spec
        self.queue.push(job.trace.job_id, self.batch.shapes.intern(spec), runtime=spec.expected_runtime_s)

    def place(self, free: np.ndarray, now: float, usage: dict[str, np.ndarray]) -> list[tuple[SimJob, int]]:
        self.snap.allocated = self.snap.capacity - free
        self.snap.tenant_usage = usage
        # The ledger of expected ends learns which jobs ended, as the store tells a controller.
        self.batch.ends.retain(self.running)
        result = self.batch.run(self.queue, self.snap, limit=CYCLE_LIMIT, now=now)
        out = []
        for d in result.decisions:
            if d.chosen >= 0 and d.job_id is not None:
                out.append((self.by_id.pop(d.job_id), d.chosen))
                self.running.add(d.job_id)
        return out

    def finished(self, job: SimJob) -> None:
        self.running.discard(job.trace.job_id)

    def pending(self) -> int:
        return len(self.queue)

    def waiting(self) -> bool:
        """Jobs wait for a cluster holding their inputs (delay scheduling)."""
        return bool(self.batch.waiting_since)


@dataclass
class BaselinePlacer:
    baseline: Baseline
    snap: Snapshot
    order: str = ORDER_CONSTRAINED_FIRST
    queue: list[SimJob] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.baseline.name

    def finished(self, job: SimJob) -> None:
        self.baseline.finished(job.cluster)

    def add(self, job: SimJob, now: float) -> None:
        self.queue.append(job)

    def pending(self) -> int:
        return len(self.queue)

    def waiting(self) -> bool:
        return False

    def place(self, free: np.ndarray, now: float, usage: dict[str, np.ndarray]) -> list[tuple[SimJob, int]]:
        total = self.snap.capacity.sum(axis=0)
        shares = {t: tenant_share(usage, total, t) for t in {j.spec.tenant for j in self.queue}}
        order = self.order
        queue = self.queue
        positions = sorted_positions(
            order,
            [j.spec.priority for j in queue],
            [now - j.trace.submit for j in queue],
            [j.flexibility for j in queue],
            [shares[j.spec.tenant] for j in queue],
            [j.spec.expected_runtime_s for j in queue],
            [j.seq for j in queue],
        )
        self.queue = [queue[i] for i in positions]
        placed, keep = [], []
        for job in self.queue[:CYCLE_LIMIT]:
            c = self.baseline.choose(job.spec, job.demand, free, self.snap, job.legal, job.moved, job.seconds)
            if c is None:
                keep.append(job)
                continue
            placed.append((job, c))
            free[c] -= job.demand  # reserve now: later jobs of the cycle see it
        self.queue = keep + self.queue[CYCLE_LIMIT:]
        for job, c in placed:
            free[c] += job.demand  # the replay reserves (or queues) below
        return placed


def trace_gpu(trace: list[TraceJob], fraction: float, seed: int = 13) -> list[int]:
    """Per-replica milli-GPU demand of each trace job (0 for cpu-only; see ``gpu.py``)."""
    if fraction <= 0:
        return [0] * len(trace)
    draw = GpuAssigner(fraction, seed)
    return [draw.draw(t.cpu) for t in trace]


def build_jobs(
    trace: list[TraceJob], cat: Catalogue, snap: Snapshot, gpu_milli: list[int] | None = None, seed: int = 11
) -> list[SimJob]:
    assign = InputAssigner(cat, seed)
    residency = ResidencyFilter()
    gpu_milli = gpu_milli or [0] * len(trace)
    # The submitter's runtime estimate: the trace duration times a log-normal error (sigma 1:
    # half of the estimates are off by more than x2 either way), seeded.
    error = np.random.default_rng(seed + 1).lognormal(0.0, ESTIMATE_SIGMA, size=len(trace))
    out = []
    for k, (t, err, g) in enumerate(zip(trace, error, gpu_milli, strict=True)):
        tenant, inputs, tolerant = assign.draw()
        spec = JobCreate(
            name=f"trace-{t.job_id}",
            tenant=tenant,
            inputs=inputs,
            delay_tolerant=tolerant,
            replicas=t.replicas,
            resources=Resources(cpu=t.cpu, memory_gib=t.memory_gib, gpu_milli=g),
            expected_runtime_s=float(min(max(t.duration * err, 1.0), 30 * 86400)),
        )
        info = JobInfo(id=t.job_id, spec=spec, inputs=[cat.datasets[d] for d in inputs], missing_inputs=[])
        legal = residency.filter(CycleState(), info, snap).codes == 0
        seconds, moved = transfer_estimate(info, snap)
        demand = info.demand
        flex = int(_holders(legal, demand, snap).sum())
        out.append(SimJob(t, spec, info, demand, legal, seconds, moved, flex, k))
    return out


def _holders(legal: np.ndarray, demand: np.ndarray, snap: Snapshot) -> np.ndarray:
    """The clusters a job may run on: residency-legal and large enough for its gang."""
    ok: np.ndarray = legal & (snap.capacity >= demand).all(axis=1)
    return ok


def _span(job: TraceJob, window: float) -> float:
    """The seconds a job runs inside the submission window [0, ``window``] if started on arrival."""
    return max(0.0, min(job.submit + job.duration, window) - job.submit)


def wan_lower_bound(jobs: list[SimJob], snap: Snapshot) -> float:
    """Bytes moved if every feasible job ran on the legal cluster (large enough for its gang)
    that needs the fewest bytes moved, capacity ignored: no policy that obeys residency can move
    fewer. The locality-greedy baseline places at the inputs whenever they fit, so this bound,
    divided by its bytes, is the lowest WAN ratio any policy could reach against it."""
    total = 0.0
    for j in jobs:
        ok = _holders(j.legal, j.demand, snap)
        if ok.any():
            total += float(j.moved[ok].min())
    return total


def busiest_pool(jobs: list[SimJob], snap: Snapshot) -> dict[str, Any]:
    """The most loaded pool of clusters: over the distinct sets of clusters the feasible jobs may
    run on (legal and large enough for the gang), the offered load, per resource, of the jobs
    confined to a subset of the set, against the set's capacity, inside the submission window
    (each job as if it started on arrival, cut at the window, as ``capacity_scale`` counts).

    A pool loaded above 1 cannot keep up under any placement: its backlog grows for the whole
    trace (Hall's condition: the jobs confined to a set of clusters need no more than the set
    holds). The federation-wide load (``target``) can hide one: on the GPU trace the jobs
    confined to the two national nodes (gangs larger than any province, and national data) offer
    1.52 times their GPUs at the 50 % setting and 3.49 times at 90 %; at 70 % the national nodes
    with prov-guangdong, 1.41 times (docs/benchmarks.md)."""
    return _pool_summary(_busiest(jobs, snap), snap.names)


def _pool_summary(
    pool: tuple[float, int, np.ndarray, int] | None, cluster_names: list[str]
) -> dict[str, Any]:
    """``busiest_pool``'s report of a ``_busiest`` result."""
    if pool is None:
        return {"load": 0.0, "resource": "", "clusters": [], "jobs": 0}
    load, resource, clusters, n = pool
    names = [cluster_names[int(c)] for c in clusters]
    return {
        "load": round(load, 3),
        "resource": RESOURCES[resource],
        "clusters": names if len(names) <= 8 else [f"{len(names)} clusters"],
        "jobs": n,
    }


def _busiest(jobs: list[SimJob], snap: Snapshot) -> tuple[float, int, np.ndarray, int] | None:
    """``busiest_pool``'s (load, resource index, cluster indices, jobs confined); None: no job."""
    feasible = [j for j in jobs if j.feasible]
    if not feasible:
        return None
    window = max(max(j.trace.submit for j in feasible), 1.0)
    sets: dict[bytes, int] = {}
    work: list[np.ndarray] = []
    members: list[np.ndarray] = []
    counts: list[int] = []
    for j in feasible:
        ok = _holders(j.legal, j.demand, snap)
        key = np.packbits(ok).tobytes()
        k = sets.get(key)
        if k is None:
            k = sets[key] = len(members)
            members.append(ok)
            work.append(np.zeros(3))
            counts.append(0)
        counts[k] += 1
        work[k] = work[k] + j.demand * _span(j.trace, window)
    M = np.array(members, dtype=np.float64)  # sets x clusters, 0/1
    W = np.array(work)  # sets x resources
    # inside[a, b]: set a is a subset of set b (all of a's clusters are in b: |a & b| = |a|)
    sizes = M.sum(axis=1)
    inside = sizes[:, None] == M @ M.T
    confined = inside.T.astype(np.float64) @ W  # per set: the work of the jobs confined to it
    cap = M @ snap.capacity  # per set: its capacity
    load = np.divide(confined, cap * window, out=np.zeros_like(confined), where=cap > 0)
    b, r = np.unravel_index(int(load.argmax()), load.shape)
    return float(load[b, r]), int(r), np.flatnonzero(M[b]), int(np.array(counts)[inside[:, b]].sum())


def offered_per_resource(trace: list[TraceJob], gpu_milli: list[int]) -> tuple[np.ndarray, float]:
    """(cpu, memory, gpu) the trace offers inside its submission window [0, W], each job as if it
    started on arrival, cut at W; and W."""
    window = max(max((j.submit for j in trace), default=1.0), 1.0)
    offered = np.zeros(3)
    for j, g in zip(trace, gpu_milli, strict=True):
        offered += np.array([j.cpu, j.memory_gib, g / 1000.0]) * j.replicas * _span(j, window)
    return offered, window


def capacity_scale(
    trace: list[TraceJob],
    topo: Topology,
    target: float = TARGET_UTILISATION,
    gpu_milli: list[int] | None = None,
) -> float:
    """Scale every cluster by one factor so that the scarcest resource's offered load inside the
    submission window is ``target`` of the federation's capacity of it over W:
    s = max over resources of offered / (target x W x capacity)."""
    offered, window = offered_per_resource(trace, gpu_milli or [0] * len(trace))
    cap = np.array(
        [
            sum(c.capacity.cpu for c in topo.clusters),
            sum(c.capacity.memory_gib for c in topo.clusters),
            sum(c.capacity.gpu for c in topo.clusters),
        ],
        dtype=np.float64,
    )
    ratios = np.divide(offered, target * window * cap, out=np.zeros(3), where=cap > 0)
    return float(ratios.max())


def scarcest_resource(trace: list[TraceJob], topo: Topology, gpu_milli: list[int]) -> str:
    offered, _ = offered_per_resource(trace, gpu_milli)
    cap = np.array(
        [
            sum(c.capacity.cpu for c in topo.clusters),
            sum(c.capacity.memory_gib for c in topo.clusters),
            sum(c.capacity.gpu for c in topo.clusters),
        ],
        dtype=np.float64,
    )
    return RESOURCES[int(np.argmax(np.divide(offered, cap, out=np.zeros(3), where=cap > 0)))]


def jain(x: np.ndarray) -> float:
    """Jain's fairness index (sum x)^2 / (n sum x^2): 1 when all equal, 1/n when one has all."""
    if not len(x) or not np.any(x):
        return 1.0
    return float(x.sum() ** 2 / (len(x) * (x**2).sum()))


@dataclass
class ReplayResult:
    policy: str
    order: str
    jobs: int
    infeasible: int
    finished: int
    unplaced: int
    wan_bytes: float
    mean_jct_s: float
    p95_jct_s: float
    mean_wait_s: float
    median_wait_s: float
    p95_wait_s: float
    tenant_p95_wait_max_s: float
    tenants_p95_wait_over_10x_median: int
    tenants: int
    jain_slowdown: float
    utilization: float
    memory_utilization: float
    gpu_utilization: float
    residency_violations: int
    end_s: float
    wall_s: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def make_placer(policy: str, snap: Snapshot, order: str, seed: int) -> OursPlacer | BaselinePlacer:
    if order not in SORTED_ORDERS:
        raise ValueError(f"unknown order {order!r}; one of {', '.join(SORTED_ORDERS)}")
    if policy == OURS:
        return OursPlacer(snap, order)
    if policy not in BASELINES:
        raise ValueError(f"unknown policy {policy!r}; one of {', '.join([OURS, *BASELINES])}")
    return BaselinePlacer(BASELINES[policy](seed), snap, order)


def replay(
    placer_name: str,
    jobs: list[SimJob],
    snap: Snapshot,
    order: str = ORDER_CONSTRAINED_FIRST,
    cycle_s: float = 5.0,
    seed: int = 3,
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
    placer = make_placer(placer_name, snap, order, seed)
    baseline = placer.baseline if isinstance(placer, BaselinePlacer) else None
    free = snap.capacity.copy()
    usage: dict[str, np.ndarray] = {}
    # Member-cluster queues: a baseline that places without a fit check (OCM) queues the job at
    # the member cluster until it fits there, as a Kubernetes cluster keeps pods Pending.
    local: dict[int, list[SimJob]] = {}
    feasible = [j for j in jobs if j.feasible]
    events: list[tuple[float, int, int, int]] = []  # (time, order, kind, job index)
    arrive, finish = 0, 1
    index = {id(j): i for i, j in enumerate(jobs)}
    for j in feasible:
        events.append((j.trace.submit, 1, arrive, index[id(j)]))
    heapq.heapify(events)
    busy = np.zeros(3)  # running resource-seconds inside the submission window
    window = max((j.trace.submit for j in jobs), default=1.0) or 1.0
    wan = 0.0
    violations = 0
    next_cycle = 0.0
    dirty = False  # something changed since the last cycle
    t = 0.0

    def start(j: SimJob, c: int, now: float) -> None:
        nonlocal busy, wan, violations
        free[c] -= j.demand
        j.cluster = c
        j.start = now + float(j.seconds[c])
        j.finish = j.start + j.trace.duration
        run_lo, run_hi = min(j.start, window), min(j.finish, window)
        busy += j.demand * (run_hi - run_lo)
        wan += float(j.moved[c])
        if not j.legal[c]:
            violations += 1
        u = usage.get(j.spec.tenant)
        usage[j.spec.tenant] = j.demand.copy() if u is None else u + j.demand
        heapq.heappush(events, (j.finish, 0, finish, index[id(j)]))

    while events or (dirty and placer.pending()):
        # Take every event up to the next cycle; a cycle runs only after something changed.
        if events and (not dirty or events[0][0] <= next_cycle):
            t, _, kind, i = heapq.heappop(events)
            j = jobs[i]
            if kind == arrive:
                placer.add(j, t)
            else:
                free[j.cluster] += j.demand
                usage[j.spec.tenant] = usage[j.spec.tenant] - j.demand
                placer.finished(j)
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
        placed = placer.place(free, t, usage)
        for j, c in placed:
            if baseline is not None:
                baseline.placed(c)
            if (free[c] >= j.demand).all():
                start(j, c, t)
            else:
                local.setdefault(c, []).append(j)
        # A job waiting for a cluster that holds its inputs needs a later cycle even if nothing
        # else changes (its wait is bounded, so this ends); so does a queue longer than one
        # cycle's limit while cycles still place jobs.
        dirty = placer.waiting() or (bool(placed) and placer.pending() > 0)
        next_cycle = t + cycle_s
    return summarise(placer_name, order, jobs, feasible, snap, t, window, busy, wan, violations, t_wall)


def summarise(
    policy: str,
    order: str,
    jobs: list[SimJob],
    feasible: list[SimJob],
    snap: Snapshot,
    end: float,
    window: float,
    busy: np.ndarray,
    wan: float,
    violations: int,
    t_wall: float,
) -> ReplayResult:
    end = max([end, *(j.finish for j in feasible if j.cluster >= 0)])
    submit = np.array([j.trace.submit for j in feasible])
    placed = np.array([j.cluster >= 0 for j in feasible], dtype=bool)
    start = np.array([j.start if j.cluster >= 0 else end for j in feasible])
    finish = np.array([j.finish if j.cluster >= 0 else end for j in feasible])
    duration = np.array([j.trace.duration for j in feasible])
    jct = finish - submit if len(feasible) else np.zeros(1)
    wait = start - submit if len(feasible) else np.zeros(1)
    slowdown = np.maximum(1.0, jct / np.maximum(duration, SLOWDOWN_FLOOR_S)) if len(feasible) else np.ones(1)
    tenants = np.array([j.spec.tenant for j in feasible])
    median_wait = float(np.median(wait))
    per_tenant_p95, per_tenant_slow = [], []
    for t in np.unique(tenants):
        m = tenants == t
        per_tenant_p95.append(float(np.percentile(wait[m], 95)))
        per_tenant_slow.append(float(slowdown[m].mean()))
    p95s = np.array(per_tenant_p95) if per_tenant_p95 else np.zeros(1)
    cap = snap.capacity.sum(axis=0)
    util = np.divide(busy, cap * window, out=np.zeros(3), where=cap > 0)
    return ReplayResult(
        policy=policy,
        order=order,
        jobs=len(jobs),
        infeasible=len(jobs) - len(feasible),
        finished=int(placed.sum()),
        unplaced=int((~placed).sum()),
        wan_bytes=wan,
        mean_jct_s=round(float(jct.mean()), 2),
        p95_jct_s=round(float(np.percentile(jct, 95)), 2),
        mean_wait_s=round(float(wait.mean()), 2),
        median_wait_s=round(median_wait, 2),
        p95_wait_s=round(float(np.percentile(wait, 95)), 2),
        tenant_p95_wait_max_s=round(float(p95s.max()), 2),
        tenants_p95_wait_over_10x_median=int((p95s > 10 * median_wait).sum()),
        tenants=len(per_tenant_p95),
        jain_slowdown=round(jain(np.array(per_tenant_slow)), 4),
        utilization=round(float(util[0]), 4),
        memory_utilization=round(float(util[1]), 4),
        gpu_utilization=round(float(util[2]), 4),
        residency_violations=violations,
        end_s=round(end, 1),
        wall_s=round(time.perf_counter() - t_wall, 2),
    )


def setup(
    trace_path: Path | None = None,
    limit: int | None = None,
    ministries: int = 64,
    data_dir: Path = DEFAULT_DATA_DIR,
    target: float = TARGET_UTILISATION,
    gpu_fraction: float = GPU_JOB_FRACTION,
    plan: bool = False,
) -> tuple[list[SimJob], Snapshot, dict[str, Any]]:
    """The replay's jobs and federation: the trace (GPU demand on ``gpu_fraction`` of its jobs,
    ``gpu.py``), capacity scaled so the scarcest resource's offered load is ``target``.

    ``plan``: then, as a capacity plan would, the clusters of the busiest pool (``busiest_pool``)
    are grown until no pool is loaded above ``target`` (each step multiplies the busiest pool's
    clusters by its load over the target; growing them can make more gangs feasible, so it
    repeats, at most ``PLAN_STEPS`` times). The data sets stay where the uniform scale put them.
    The federation-wide load then comes out below ``target`` (``meta["offered_load"]``)."""
    trace = load_trace(trace_path or data_dir / "alibaba_v2017_batch_task.csv", limit=limit)
    gpu_milli = trace_gpu(trace, gpu_fraction)
    base = federation(data_dir, ministries=ministries)
    # The load counts the jobs that can run: a gang that no legal cluster can hold is left out,
    # which depends on the scale; two refinements settle it (the count stops changing).
    counted = list(range(len(trace)))
    for _ in range(3):
        sub = [trace[k] for k in counted]
        scale = capacity_scale(sub, base, target, [gpu_milli[k] for k in counted])
        topo = federation(data_dir, ministries=ministries, scale=scale)
        cat = make_catalogue(topo)
        snap = snapshot_of(topo, NetworkModel(topo), datasets=cat.datasets, residency=ResidencyPolicy())
        jobs = build_jobs(trace, cat, snap, gpu_milli)
        feasible = [k for k, j in enumerate(jobs) if j.feasible]
        if feasible == counted:
            break
        counted = feasible
    grown: dict[str, float] = {}
    pool = _busiest(jobs, snap)
    for _ in range(PLAN_STEPS if plan else 0):
        if pool is None or pool[0] <= target * (1.0 + PLAN_SLACK):
            break
        for c in pool[2]:
            name = snap.names[int(c)]
            grown[name] = grown.get(name, 1.0) * pool[0] / target
        topo = federation(data_dir, ministries=ministries, scale=scale, grow=grown)
        snap = snapshot_of(topo, NetworkModel(topo), datasets=cat.datasets, residency=ResidencyPolicy())
        jobs = build_jobs(trace, cat, snap, gpu_milli)
        pool = _busiest(jobs, snap)
    offered, window = offered_per_resource(
        [j.trace for j in jobs if j.feasible], [gpu_milli[k] for k, j in enumerate(jobs) if j.feasible]
    )
    cap = snap.capacity.sum(axis=0) * window
    meta = {
        "jobs": len(jobs),
        "gpu_jobs": sum(1 for g in gpu_milli if g),
        "gpu_fraction": gpu_fraction,
        "infeasible": sum(1 for j in jobs if not j.feasible),
        "clusters": len(topo.clusters),
        "capacity_scale": round(scale, 4),
        "scarcest_resource": scarcest_resource(trace, base, gpu_milli),
        "federation_cores": round(float(snap.capacity[:, 0].sum()), 1),
        "federation_gpus": round(float(snap.capacity[:, 2].sum()), 1),
        "target_load": target,
        "submission_window_s": max(j.trace.submit for j in jobs) if jobs else 0.0,
        "wan_lower_bound_bytes": wan_lower_bound(jobs, snap),
        "busiest_pool": _pool_summary(pool, snap.names),
        "offered_load": round(float(np.divide(offered, cap, out=np.zeros(3), where=cap > 0).max()), 3),
        "plan": {name: round(f, 3) for name, f in grown.items()},
    }
    return jobs, snap, meta


def replay_all(
    jobs: list[SimJob],
    snap: Snapshot,
    policies: list[str] | None = None,
    orders: tuple[str, ...] = SORTED_ORDERS,
) -> dict[str, dict[str, ReplayResult]]:
    """Every policy under every order: results[policy][order]."""
    names = policies or [OURS, *BASELINES]
    return {name: {o: replay(name, jobs, snap, o) for o in orders} for name in names}
