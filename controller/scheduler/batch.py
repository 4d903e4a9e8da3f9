"""The batch scheduling loop: many pending jobs per cycle, capacity reserved as decisions are made.

The one scheduling pipeline (snapshot -> filter -> score -> select -> reserve) over the
``Scheduler``'s plugins: every decision is made here, a plan's too (``pipeline.decide``, a
one-job batch). Organised for throughput, as kube-scheduler's equivalence classes and Kueue's
flavor assignment cache do:

- Jobs are grouped by *shape*: tenant, priority, inputs, constraints, per-replica resources,
  replicas, delay tolerance. Filters and scores that do not read free capacity (health,
  constraints, residency, gang, locality, green, ...) run once per shape and snapshot; their
  feasible clusters and weighted score sum are kept as arrays.
- Per job only the dynamic plugins run (those with a ``fits``/``score_free`` kernel: capacity,
  balance), on the statically feasible rows, against a free-capacity array updated at every
  reservation. The cost per decision does not depend on the queue length.
- A decision is kept compact (shape, free rows seen, chosen cluster, victims); the full
  ``Decision`` with every plugin's score per feasible cluster and every rejection reason is built
  on demand from exactly the data the choice used (``CompactDecision.to_body``, expanded by
  ``Decision``; ``to_decision`` does both).
- Order: priority first, then jobs that already waited, then the least flexible job (fewest statically feasible clusters), then
  the tenant with the lowest dominant share (DRF), then the shortest expected runtime, then FIFO (see
  ``ORDER_CONSTRAINED_FIRST``; ``ORDER_DRF`` keeps pure priority/DRF/FIFO). A job that does not fit
  does not block the others (Kueue's BestEffortFIFO).
- Quota admission (Kueue-style cohort borrowing) and priority preemption with a bounded victim
  choice on one cluster (kube-scheduler DefaultPreemption: remove all lower-priority work, then
  reprieve from the highest priority down; pick the cluster with the lowest highest-victim
  priority, then fewest victims, then lowest priority sum).

Filters that read free capacity run after the static ones here; a cluster rejected by both
records the static reason (the one that waiting cannot fix).
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from controller.datasets import DatasetRead
from controller.jobs import JobCreate
from controller.policies import QuotaPolicy
from controller.scheduler.decision import COMPACT_FORMAT, Decision, Rejection, render
from controller.scheduler.framework import (
    Code,
    CycleState,
    FilterPlugin,
    FloatArray,
    JobInfo,
    ScorePlugin,
    Snapshot,
    demand_vector,
    is_dynamic,
)
from controller.scheduler.plugins.locality import NAME as LOCALITY
from controller.scheduler.quota import REASON_UNKNOWN_CLASS, QuotaBook, effective_priority
from controller.scheduler.scheduler import Scheduler

IntArray = npt.NDArray[np.intp]
# Order inside a cycle. "drf": priority, then the tenant with the lowest dominant share (live),
# then FIFO. "constrained-first" (default): priority, then jobs that already waited a cycle
# (aging), then the least flexible job first (fewest
# clusters its static filters allow: residency-bound work has few options, so it goes before work
# that can run anywhere; Tetrium's least-flexible-first), then the tenant's dominant share at the
# start of the cycle (DRF), then the shortest expected runtime (``expected_runtime_s``, the
# submitter's estimate: shortest-job-first minimises mean completion time), then FIFO.
ORDER_DRF = "drf"
ORDER_CONSTRAINED_FIRST = "constrained-first"
QUOTA = "quota"
REASON_LOCALITY_WAIT = (
    "waiting for a cluster that holds its inputs: moving them to a cluster free now would take "
    "longer than the job has waited (delay scheduling, placement policy locality_wait_max_s)"
)
PREEMPTION = "preemption"
NO_FIT_AFTER_PREEMPTION = "no cluster can make room by preempting lower-priority work within {n} victims"


def shape_key(spec: JobCreate, priority: int | None) -> tuple[Any, ...]:
    """What the scheduler reads of a job; jobs with equal keys get equal static results."""
    c = spec.constraints
    ckey: Any = ()
    if c.allow_clusters or c.deny_clusters or c.prefer_clusters or c.require_labels or c.prefer_labels:
        ckey = c.model_dump_json()
    r = spec.resources
    return (
        spec.tenant,
        priority,
        tuple(spec.inputs),
        ckey,
        r.cpu,
        r.memory_gib,
        r.gpu,
        spec.replicas,
        spec.delay_tolerant,
        spec.priority_class,
        spec.expected_runtime_s,
    )


def _static_groups(ctx: Any, shape: Shape) -> dict[tuple[str, str], list[str]]:
    """The static filters' rejections of a shape grouped by (plugin, reason), computed once per
    shape and snapshot generation (they do not depend on free capacity)."""
    cached = shape.static_groups
    if cached is not None and cached[0] == shape.gen:
        return cached[1]
    groups: dict[tuple[str, str], list[str]] = {}
    for plugin, where, codes, messages in shape.static_rejections:
        for i, code in zip(where, codes, strict=True):
            groups.setdefault((plugin, messages[code - 1]), []).append(ctx.names[int(i)])
    shape.static_groups = (shape.gen, groups)
    return groups


@dataclass(slots=True)
class StaticBody:
    """What every stored decision of a shape repeats while the snapshot generation holds: the
    names of its statically feasible clusters, its static scores on them (raw, rounded, and
    as JSON-ready lists) and its transfer estimates. ``CompactDecision.to_body`` slices these
    instead of rebuilding them per job."""

    names: list[str]
    scores: list[tuple[str, float, FloatArray, FloatArray, list[float]]]  # name, w, raw, rounded, list
    transfer_bytes: FloatArray | None
    transfer_seconds: FloatArray | None
    transfer_lists: tuple[list[float], list[float]] | None


def _static_body(ctx: Any, shape: Shape) -> StaticBody:
    cached = shape.static_body
    if cached is not None and cached[0] == shape.gen:
        return cached[1]
    idx = shape.idx
    scores = []
    for name, w, s in shape.static_scores:
        raw = s[idx]
        rounded = np.round(raw, 3)
        scores.append((name, w, raw, rounded, rounded.tolist()))
    body = StaticBody([ctx.names[int(c)] for c in idx], scores, None, None, None)
    if shape.transfer is not None:
        seconds, moved = shape.transfer
        body.transfer_bytes = moved[idx]
        body.transfer_seconds = np.round(seconds[idx], 3)
        body.transfer_lists = (body.transfer_bytes.tolist(), body.transfer_seconds.tolist())
    shape.static_body = (shape.gen, body)
    return body


class Shape:
    """A shape's scheduling-relevant spec and, per snapshot generation, its static results."""

    __slots__ = (
        "backup_pos",
        "best_transfer_s",
        "cap_rows",
        "demand",
        "demand_list",
        "failed_cycle",
        "feasible_static",
        "gen",
        "idx",
        "info",
        "key",
        "origin",
        "priority",
        "spec",
        "static_body",
        "static_groups",
        "static_rejections",
        "static_scores",
        "static_total",
        "tenant",
        "transfer",
        "unresolvable",
    )

    def __init__(self, key: tuple[Any, ...], spec: JobCreate, priority: int | None) -> None:
        self.key = key
        self.spec = spec
        self.tenant = spec.tenant
        self.priority = priority
        self.demand = demand_vector(spec)
        self.demand_list = [float(x) for x in self.demand]
        self.gen = -1
        self.failed_cycle = -1
        self.info: JobInfo | None = None
        self.idx: IntArray = np.zeros(0, dtype=np.intp)
        self.cap_rows: FloatArray = np.zeros((0, 3))
        self.feasible_static: npt.NDArray[np.bool_] = np.zeros(0, dtype=bool)
        self.static_total: FloatArray = np.zeros(0)
        self.static_scores: list[tuple[str, float, FloatArray]] = []
        # (plugin, cluster indices it rejected first, their codes, its messages); Rejection
        # objects are built only when a full Decision is asked for.
        self.static_rejections: list[tuple[str, IntArray, npt.NDArray[np.int16], list[str]]] = []
        self.transfer: tuple[FloatArray, FloatArray] | None = None
        self.best_transfer_s = 0.0  # the least input-transfer time over ``idx``
        self.unresolvable = True
        self.static_groups: tuple[int, dict[tuple[str, str], list[str]]] | None = None
        self.static_body: tuple[int, StaticBody] | None = None
        # Failover: the cluster the job was on when it failed (None for a first placement) and
        # the positions, in ``idx``, of that cluster's designated backups in policy order.
        self.origin: str | None = None
        self.backup_pos: list[int] = []


class ShapeTable:
    """Interns shapes, so a million pending jobs share a few thousand spec objects."""

    def __init__(self, quota: QuotaPolicy | None = None) -> None:
        self.quota = quota
        self.shapes: dict[tuple[Any, ...], Shape] = {}

    def intern(self, spec: JobCreate, origin: str | None = None) -> Shape:
        """``origin``: the failed cluster a re-placed job comes from (failover backup groups)."""
        priority = effective_priority(spec, self.quota)
        key = (*shape_key(spec, priority), origin if spec.failover.policy == "backup-group" else None)
        shape = self.shapes.get(key)
        if shape is None:
            shape = self.shapes[key] = Shape(key, spec, priority)
            shape.origin = key[-1]
        return shape


@dataclass(slots=True)
class Running:
    """A Scheduled/Running job as preemption sees it."""

    job_id: str
    cluster: int
    priority: int
    demand: FloatArray
    tenant: str
    attempt: int = 1


@dataclass(slots=True)
class PendingQueue:
    """Pending jobs as (job id, sequence, attempt, shape), bucketed by (priority, tenant), FIFO
    inside a bucket. Memory per job is one small tuple plus the id: shapes are shared."""

    buckets: dict[tuple[int, str], deque[tuple[str, int, int, Shape]]] = field(default_factory=dict)
    count: int = 0
    seq: int = 0

    def push(self, job_id: str, shape: Shape, attempt: int = 1, seq: int | None = None) -> None:
        if seq is None:
            seq = self.seq
        self.seq = max(self.seq, seq) + 1
        prio = shape.priority if shape.priority is not None else -1
        bucket = self.buckets.get((prio, shape.tenant))
        if bucket is None:
            bucket = self.buckets[(prio, shape.tenant)] = deque()
        bucket.append((job_id, seq, attempt, shape))
        self.count += 1

    def __len__(self) -> int:
        return self.count

    def drain_ordered(self, book: QuotaBook, limit: int) -> Iterator[tuple[str, int, int, Shape]]:
        """Pop up to ``limit`` jobs: highest priority first, then the tenant with the lowest
        dominant share *at the moment of popping* (the caller admits as it goes), then FIFO."""
        heap: list[tuple[int, float, int, str]] = []
        for (prio, tenant), bucket in self.buckets.items():
            if bucket:
                heap.append((-prio, book.dominant_share(tenant), bucket[0][1], tenant))
        heapq.heapify(heap)
        popped = 0
        while heap and popped < limit:
            nprio, share, _, tenant = heapq.heappop(heap)
            current = book.dominant_share(tenant)
            bucket = self.buckets[(-nprio, tenant)]
            if current != share:  # the tenant got work since this entry was pushed
                heapq.heappush(heap, (nprio, current, bucket[0][1], tenant))
                continue
            item = bucket.popleft()
            self.count -= 1
            popped += 1
            yield item
            if bucket:
                heapq.heappush(heap, (nprio, book.dominant_share(tenant), bucket[0][1], tenant))

    def requeue(self, items: Iterable[tuple[str, int, int, Shape]]) -> None:
        """Put back jobs that were popped but not placed, keeping their place in line."""
        by_bucket: dict[tuple[int, str], list[tuple[str, int, int, Shape]]] = {}
        for it in items:
            shape = it[3]
            prio = shape.priority if shape.priority is not None else -1
            by_bucket.setdefault((prio, shape.tenant), []).append(it)
        for key, its in by_bucket.items():
            bucket = self.buckets.setdefault(key, deque())
            merged = sorted([*its, *bucket], key=lambda x: x[1])
            bucket.clear()
            bucket.extend(merged)
            self.count += len(its)


@dataclass(slots=True)
class Victim:
    job_id: str
    attempt: int
    cluster: str
    priority: int
    tenant: str
    reason: str
    demand: FloatArray


class CompactDecision:
    """What a decision used, kept small; ``to_decision`` builds the full explained Decision."""

    __slots__ = (
        "attempt",
        "chosen",
        "ctx",
        "epoch",
        "free_rows",
        "job_id",
        "job_reason",
        "shape",
        "status",
        "t",
        "victims",
    )

    def __init__(
        self,
        ctx: BatchScheduler,
        job_id: str | None,
        attempt: int,
        shape: Shape,
        status: str,
        chosen: int = -1,
        free_rows: FloatArray | None = None,
        job_reason: tuple[str, str] | None = None,
        victims: list[Victim] | None = None,
        t: float = 0.0,
    ) -> None:
        self.ctx = ctx
        self.job_id = job_id
        self.attempt = attempt
        self.shape = shape
        self.status = status
        self.chosen = chosen  # cluster index, -1 when none
        self.free_rows = free_rows  # free capacity of shape.idx when decided
        self.job_reason = job_reason  # (plugin, reason) rejecting every cluster (quota)
        self.victims = victims or []
        self.t = t or time.time()
        self.epoch = 0

    @property
    def cluster(self) -> str | None:
        return self.ctx.names[self.chosen] if self.chosen >= 0 else None

    @property
    def demand(self) -> FloatArray:
        return self.shape.demand

    def rejection_groups(self) -> dict[tuple[str, str], list[str]]:
        """(plugin, reason) -> rejected cluster names, in recording order: the static filters'
        reasons (computed once per shape), then the dynamic filter's on what passed them, then a
        job-level reason (quota, unknown priority class) on the clusters that would fit. Plain
        tuples and lists: this runs for every decision of a cycle."""
        ctx, shape = self.ctx, self.shape
        groups: dict[tuple[str, str], list[str]] = {k: list(v) for k, v in _static_groups(ctx, shape).items()}
        passing = shape.idx
        if self.free_rows is not None and len(shape.idx):
            for dyn in ctx.dynamic_filters:
                codes, messages, _ = dyn.classify(self.free_rows, shape.cap_rows, shape.demand)  # type: ignore[attr-defined]
                for j in np.flatnonzero(codes):
                    c = int(shape.idx[j])
                    if c == self.chosen:
                        continue
                    groups.setdefault((dyn.NAME, messages[codes[j] - 1]), []).append(ctx.names[c])
                passing = shape.idx[codes == 0]
                break  # the first dynamic filter records; later ones only see what it passed
        if self.job_reason is not None:
            groups.setdefault(self.job_reason, []).extend(ctx.names[int(c)] for c in passing)
        return groups

    def rejections(self) -> list[Rejection]:
        return [
            Rejection(cluster=name, plugin=plugin, reason=reason)
            for (plugin, reason), names in self.rejection_groups().items()
            for name in names
        ]

    def feasible_mask(self) -> npt.NDArray[np.bool_]:
        shape = self.shape
        if self.free_rows is None or not len(shape.idx):
            return np.zeros(len(shape.idx), dtype=bool)
        ok = np.ones(len(shape.idx), dtype=bool)
        for plugin in self.ctx.dynamic_filters:
            ok &= plugin.fits(self.free_rows, shape.cap_rows, shape.demand)  # type: ignore[attr-defined]
        if self.chosen >= 0:
            ok |= shape.idx == self.chosen  # room was made by preemption
        return ok

    def summary(self, groups: dict[tuple[str, str], list[str]] | None = None) -> str:
        ctx = self.ctx
        groups = self.rejection_groups() if groups is None else groups
        chosen = ctx.names[self.chosen] if self.chosen >= 0 else None
        origin = self.shape.origin
        failover_of = (
            origin if chosen and origin is not None and chosen in ctx.backups.get(origin, ()) else None
        )
        victims = [(v.job_id, v.priority) for v in self.victims] if self.victims else ()
        counts = [(k, len(v)) for k, v in groups.items()]
        return render(len(ctx.names), counts, chosen, failover_of=failover_of, victims=victims)[0]

    def to_body(self) -> dict[str, Any]:
        """The stored form: a compact JSON body that ``Decision.model_validate`` expands into the
        full decision (every feasible cluster's per-plugin scores, every rejection reason)."""
        ctx, shape = self.ctx, self.shape
        groups = self.rejection_groups()
        body: dict[str, Any] = {
            "format": COMPACT_FORMAT,
            "job_id": self.job_id,
            "attempt": self.attempt,
            "status": self.status,
            "cluster": self.cluster,
            "summary": self.summary(groups),
            "created_at": datetime.fromtimestamp(self.t, UTC).isoformat(),
            "epoch": self.epoch,
        }
        body["rejected"] = [[p, reason, names] for (p, reason), names in groups.items() if names]
        if self.job_reason is None and self.free_rows is not None and len(shape.idx):
            static = _static_body(ctx, shape)
            mask = self.feasible_mask()
            every = bool(mask.all())  # the common case: the static parts are reused as they are
            rows = np.flatnonzero(mask)
            # (name, weight, raw scores, JSON-ready list of the feasible rows' rounded scores)
            per_plugin: list[tuple[str, float, FloatArray, list[float]]] = [
                (name, w, raw, lst if every else rounded[rows].tolist())
                for name, w, raw, rounded, lst in static.scores
            ]
            for plugin, w in ctx.dynamic_scores:
                kernel = plugin.score_free  # type: ignore[attr-defined]
                sc = kernel(self.free_rows, shape.cap_rows, shape.demand)
                per_plugin.append((plugin.NAME, w, sc, np.round(sc[rows], 3).tolist()))
            per_plugin.sort(key=lambda x: ctx.score_order.get(x[0], 99))
            total = np.zeros(len(shape.idx))
            for _, w, sc, _ in per_plugin:
                total += w * sc
            body["clusters"] = static.names if every else [static.names[r] for r in rows]
            body["plugins"] = [p[0] for p in per_plugin]
            body["scores"] = [p[3] for p in per_plugin]
            body["total"] = np.round(total[rows], 3).tolist()
            if static.transfer_lists is not None:
                if every:
                    body["transfer_bytes"], body["transfer_seconds"] = static.transfer_lists
                else:
                    assert static.transfer_bytes is not None and static.transfer_seconds is not None
                    body["transfer_bytes"] = static.transfer_bytes[rows].tolist()
                    body["transfer_seconds"] = static.transfer_seconds[rows].tolist()
        return body

    def to_decision(self) -> Decision:
        """The full explained Decision: the stored body expanded, so a decision served from
        memory (a plan) and one read back from the store are rendered by the same code."""
        return Decision.model_validate(self.to_body())


@dataclass
class BatchResult:
    decisions: list[CompactDecision]
    scheduled: int
    victims: list[Victim]
    unplaced: list[tuple[str, int, int, Shape]]


class BatchScheduler:
    """Wraps a ``Scheduler``'s ordered plugin lists for batch cycles (see the module docstring)."""

    def __init__(self, scheduler: Scheduler, quota: QuotaPolicy | None = None) -> None:
        self.scheduler = scheduler
        self.quota = quota
        self.static_filters: list[FilterPlugin] = []
        self.dynamic_filters: list[FilterPlugin] = []
        for f in scheduler.filters:
            if getattr(f, "JOB_LEVEL", False):
                continue  # quota: applied per job below, with live usage
            (self.dynamic_filters if is_dynamic(f) else self.static_filters).append(f)
        self.static_scores: list[tuple[ScorePlugin, float]] = []
        self.dynamic_scores: list[tuple[ScorePlugin, float]] = []
        for s, w in scheduler.scores:
            (self.dynamic_scores if is_dynamic(s) else self.static_scores).append((s, w))
        self.score_order = {s.NAME: i for i, (s, _) in enumerate(scheduler.scores)}
        self.shapes = ShapeTable(quota)
        self.names: list[str] = []
        self.index: dict[str, int] = {}
        self.gen = 0
        self.cycle = 0
        self._fingerprint: tuple[Any, ...] | None = None
        # Anti-starvation holds (kube-scheduler's nominated node, Slurm's backfill reservation):
        # a gang that failed to fit ``hold_after`` cycles in a row gets capacity held back on one
        # cluster; other jobs may use that cluster only beyond what is held (backfill). Off by
        # default: on the trace replay it held capacity idle and raised mean JCT (docs/benchmarks.md).
        self.hold_after: int | None = None
        self.order = ORDER_CONSTRAINED_FIRST
        self.backups: dict[str, list[str]] = {}  # failover policy: cluster -> ordered backups
        self.max_holds = 4
        self.holds: dict[str, tuple[int, FloatArray, int]] = {}  # job -> (cluster, demand, cycle)
        self.fail_counts: dict[str, int] = {}
        # Locality waits (delay scheduling): job -> when it first waited for a cluster holding
        # its inputs. Ski rental: a job waits at most as long as moving its inputs to the best
        # cluster free now would take more than fetching them where they are; so its input
        # phase is at most twice the best case, and it moves data only when waiting costs more.
        self.locality_wait_max_s = scheduler.locality_wait_max_s
        self.waiting_since: dict[str, float] = {}

    # ---- static, once per shape and snapshot generation -----------------------------------
    def _refresh(self, snap: Snapshot) -> None:
        fp = (
            tuple(snap.names),
            snap.ready.tobytes(),
            snap.cordoned.tobytes(),
            snap.capacity.tobytes(),
            len(snap.datasets),
            id(snap.network),
            id(snap.residency),
        )
        if fp != self._fingerprint:
            self._fingerprint = fp
            self.gen += 1
            self.names = snap.names
            self.index = snap.index

    def evaluate_static(self, shape: Shape, snap: Snapshot) -> None:
        spec = shape.spec
        inputs: list[DatasetRead] = [snap.datasets[d] for d in spec.inputs if d in snap.datasets]
        missing = [d for d in spec.inputs if d not in snap.datasets]
        info = JobInfo(id=None, spec=spec, inputs=inputs, missing_inputs=missing)
        state = CycleState()
        n = snap.size
        feasible = np.ones(n, dtype=bool)
        rejected: list[tuple[str, IntArray, npt.NDArray[np.int16], list[str]]] = []
        unresolvable = True
        for plugin in self.static_filters:
            result = plugin.filter(state, info, snap)
            newly = (result.codes > 0) & feasible
            if newly.any():
                where = np.flatnonzero(newly)
                rejected.append((plugin.NAME, where, result.codes[where], list(result.messages)))
                if not result.unresolvable:
                    unresolvable = False
                feasible &= ~newly
        shape.info = info
        shape.static_rejections = rejected
        shape.unresolvable = unresolvable
        shape.feasible_static = feasible
        shape.idx = np.flatnonzero(feasible)
        shape.cap_rows = snap.capacity[shape.idx]
        total = np.zeros(n)
        scores: list[tuple[str, float, FloatArray]] = []
        for scorer, weight in self.static_scores:
            s = scorer.score(state, info, snap, feasible)
            scores.append((scorer.NAME, weight, s))
            total += weight * s
        shape.static_scores = scores
        shape.static_total = total[shape.idx]
        shape.transfer = state.get(LOCALITY)
        shape.best_transfer_s = (
            float(shape.transfer[0][shape.idx].min())
            if shape.transfer is not None and len(shape.idx)
            else 0.0
        )
        shape.backup_pos = []
        if shape.origin is not None:
            position = {int(c): j for j, c in enumerate(shape.idx)}
            for b in self.backups.get(shape.origin, ()):
                j = position.get(snap.index.get(b, -1))
                if j is not None:
                    shape.backup_pos.append(j)
        shape.gen = self.gen

    # ---- the cycle ----------------------------------------------------------------------------
    def run(
        self,
        queue: PendingQueue,
        snap: Snapshot,
        *,
        limit: int = 10_000,
        book: QuotaBook | None = None,
        running: dict[int, list[Running]] | None = None,
        epoch: int = 0,
        backups: dict[str, list[str]] | None = None,
        now: float | None = None,
    ) -> BatchResult:
        """Decide up to ``limit`` queued jobs against ``snap``, reserving as it goes (the
        snapshot's ``allocated`` takes every placed gang). Jobs not placed go back in line.

        Per job, in order: the shape's static results (``evaluate_static``), the capacity it may
        use (``_rows_with_holds``), the dynamic filters, quota admission (``_admission``),
        preemption when nothing fits (``_make_room``), scoring and selection with failover
        backups (``_select``), the locality wait (``_waits_for_locality``), the reservation
        (``_reserve``)."""
        self._refresh(snap)
        self.cycle += 1
        if backups is not None and backups != self.backups:
            self.backups = backups
            self.gen += 1  # backup positions are part of the static results
        if book is None:
            book = QuotaBook(self.quota, snap.capacity.sum(axis=0), list(snap.tenants), snap.tenant_usage)
        free = snap.capacity - snap.allocated
        allocated = snap.allocated
        held = self._start_cycle(free, max(limit, len(queue)))
        holds = self.holds
        decisions: list[CompactDecision] = []
        unplaced: list[tuple[str, int, int, Shape]] = []
        victims_all: list[Victim] = []
        dyn_filters = [f.fits for f in self.dynamic_filters]  # type: ignore[attr-defined]
        gen, cycle = self.gen, self.cycle
        quota_check = book.check if self.quota is not None else None
        preempt_on = running is not None and (self.quota is None or self.quota.preemption)
        now = time.time() if now is None else now
        wait = self.locality_wait_max_s > 0
        unschedulable = Code.Unschedulable.value
        scheduled = 0
        for item in self._ordered(queue, snap, book, limit):
            job_id, _, attempt, shape = item
            if shape.gen != gen:
                self.evaluate_static(shape, snap)
            demand = shape.demand
            idx = shape.idx
            if not len(idx):
                status = Code.UnschedulableAndUnresolvable.value if shape.unresolvable else unschedulable
                decisions.append(CompactDecision(self, job_id, attempt, shape, status, t=now))
                unplaced.append(item)
                continue
            rows = self._rows_with_holds(job_id, idx, free, held) if holds else free[idx]
            if shape.failed_cycle == cycle:
                self._on_fail(job_id, shape, free, held)
                decisions.append(
                    CompactDecision(self, job_id, attempt, shape, unschedulable, free_rows=rows, t=now)
                )
                unplaced.append(item)
                continue
            cap_rows = shape.cap_rows
            ok = None
            for fits in dyn_filters:
                m = fits(rows, cap_rows, demand)
                ok = m if ok is None else ok & m
            refused = self._admission(shape, quota_check)
            if refused is not None:
                job_reason, status = refused
                decisions.append(
                    CompactDecision(
                        self, job_id, attempt, shape, status, free_rows=rows, job_reason=job_reason, t=now
                    )
                )
                unplaced.append(item)
                continue
            victims: list[Victim] = []
            if ok is not None and not ok.any():
                chosen = -1
                if preempt_on and running is not None:
                    chosen, victims = self._make_room(shape, job_id, free, allocated, running, book)
                if chosen < 0:
                    shape.failed_cycle = cycle
                    self._on_fail(job_id, shape, free, held)
                    decisions.append(
                        CompactDecision(self, job_id, attempt, shape, unschedulable, free_rows=rows, t=now)
                    )
                    unplaced.append(item)
                    continue
                rows = free[idx]
                ok = idx == chosen
            c, backup = self._select(shape, rows, ok)
            if wait and not backup and not victims and self._waits_for_locality(job_id, shape, c, now):
                decisions.append(
                    CompactDecision(
                        self,
                        job_id,
                        attempt,
                        shape,
                        unschedulable,
                        free_rows=rows,
                        job_reason=(LOCALITY, REASON_LOCALITY_WAIT),
                        t=now,
                    )
                )
                unplaced.append(item)
                continue
            self._reserve(job_id, attempt, shape, c, free, allocated, held, book, running)
            d = CompactDecision(self, job_id, attempt, shape, "Scheduled", c, rows, None, victims, now)
            d.epoch = epoch
            decisions.append(d)
            if victims:
                victims_all.extend(victims)
            scheduled += 1
        queue.requeue(unplaced)
        return BatchResult(decisions, scheduled, victims_all, unplaced)

    # ---- the cycle's named steps --------------------------------------------------------------
    def _start_cycle(self, free: FloatArray, bound: int) -> FloatArray:
        """Expire the holds of jobs not seen for two cycles and forget the per-job state of jobs
        that left the queue another way (cancelled); the capacity still held, per cluster."""
        holds = self.holds
        for stale in [j for j, h in holds.items() if h[2] < self.cycle - 2]:
            del holds[stale]
        held = np.zeros_like(free)
        for c_h, d_h, _ in holds.values():
            held[c_h] += d_h
        if len(self.waiting_since) > 10 * bound:
            self.waiting_since.clear()
        if len(self.fail_counts) > 10 * bound:
            self.fail_counts.clear()
        return held

    def _ordered(
        self, queue: PendingQueue, snap: Snapshot, book: QuotaBook, limit: int
    ) -> Iterable[tuple[str, int, int, Shape]]:
        """The cycle's order (see ``ORDER_CONSTRAINED_FIRST`` and ``ORDER_DRF``)."""
        if self.order != ORDER_CONSTRAINED_FIRST:
            return queue.drain_ordered(book, limit)  # live DRF: shares move as the loop admits
        items = list(queue.drain_ordered(book, limit))
        for item in items:
            if item[3].gen != self.gen:
                self.evaluate_static(item[3], snap)
        share = book.dominant_share
        waited = self.fail_counts
        items.sort(
            key=lambda it: (
                -(it[3].priority or 0),
                it[0] not in waited,
                len(it[3].idx),
                share(it[3].tenant),
                it[3].spec.expected_runtime_s,
                it[1],
            )
        )
        return items

    def _rows_with_holds(self, job_id: str, idx: IntArray, free: FloatArray, held: FloatArray) -> FloatArray:
        """Free capacity of the shape's clusters beyond what is held, plus the job's own hold."""
        rows: FloatArray = free[idx] - held[idx]
        own = self.holds.get(job_id)
        if own is not None:
            self.holds[job_id] = (own[0], own[1], self.cycle)
            at = np.searchsorted(idx, own[0])
            if at < len(idx) and idx[at] == own[0]:
                rows[at] += own[1]
        return rows

    @staticmethod
    def _admission(
        shape: Shape, quota_check: Callable[[str, list[float]], tuple[str | None, bool]] | None
    ) -> tuple[tuple[str, str], str] | None:
        """Quota admission: (the job-level reason, the status) when the job may not run now."""
        if shape.priority is None:
            reason = REASON_UNKNOWN_CLASS.format(name=shape.spec.priority_class)
            return (QUOTA, reason), Code.UnschedulableAndUnresolvable.value
        if quota_check is not None:
            why, never = quota_check(shape.tenant, shape.demand_list)
            if why is not None:
                status = Code.UnschedulableAndUnresolvable if never else Code.Unschedulable
                return (QUOTA, why), status.value
        return None

    def _make_room(
        self,
        shape: Shape,
        job_id: str,
        free: FloatArray,
        allocated: FloatArray,
        running: dict[int, list[Running]],
        book: QuotaBook,
    ) -> tuple[int, list[Victim]]:
        """Preemption: the cluster where evicting victims makes room (-1: none), the victims'
        capacity given back."""
        chosen, victims = self._preempt(shape, job_id, free, running, book)
        for v in victims:
            allocated[chosen] -= v.demand
        return chosen, victims

    def _select(self, shape: Shape, rows: FloatArray, ok: npt.NDArray[np.bool_] | None) -> tuple[int, bool]:
        """Choose among the feasible clusters: the first feasible designated backup of a
        re-placed job's failed cluster (then True), else the highest total score (ties: topology
        order)."""
        idx = shape.idx
        if shape.backup_pos:
            for pos in shape.backup_pos:
                if ok is None or ok[pos]:
                    return int(idx[pos]), True
        total = shape.static_total
        for plugin, w in self.dynamic_scores:
            total = total + w * plugin.score_free(rows, shape.cap_rows, shape.demand)  # type: ignore[attr-defined]
        if ok is not None:
            total = np.where(ok, total, -np.inf)
        return int(idx[total.argmax()]), False

    def _waits_for_locality(self, job_id: str | None, shape: Shape, c: int, now: float) -> bool:
        """Delay scheduling: wait while moving the inputs to ``c`` would take longer than the job
        has waited (capped by ``locality_wait_max_s``)."""
        if shape.transfer is None or job_id is None:
            return False
        extra = float(shape.transfer[0][c]) - shape.best_transfer_s
        if extra <= 0:
            return False
        since = self.waiting_since.setdefault(job_id, now)
        return now - since < min(extra, self.locality_wait_max_s)

    def _reserve(
        self,
        job_id: str,
        attempt: int,
        shape: Shape,
        c: int,
        free: FloatArray,
        allocated: FloatArray,
        held: FloatArray,
        book: QuotaBook,
        running: dict[int, list[Running]] | None,
    ) -> None:
        """The placement takes its gang's capacity and quota; the job's waits and holds end."""
        if self.waiting_since:
            self.waiting_since.pop(job_id, None)
        if self.holds and job_id in self.holds:
            c_h, d_h, _ = self.holds.pop(job_id)
            held[c_h] -= d_h
        if self.fail_counts:
            self.fail_counts.pop(job_id, None)
        demand = shape.demand
        free[c] -= demand
        allocated[c] += demand
        book.admit(shape.tenant, shape.demand_list)
        if running is not None:
            running.setdefault(c, []).append(
                Running(job_id, c, shape.priority or 0, demand, shape.tenant, attempt)
            )

    def _on_fail(self, job_id: str | None, shape: Shape, free: FloatArray, held: FloatArray) -> None:
        """Count a capacity failure; after ``hold_after`` of them hold capacity for the job on the
        cluster where it would fit soonest (the largest free share of its demand)."""
        if job_id is None:
            return
        n = self.fail_counts.get(job_id, 0) + 1
        self.fail_counts[job_id] = n
        if (
            self.hold_after is None
            or n < self.hold_after
            or job_id in self.holds
            or len(self.holds) >= self.max_holds
        ):
            return
        taken = {h[0] for h in self.holds.values()}
        demand = shape.demand
        best, best_ratio = -1, -np.inf
        for j, c in enumerate(shape.idx):
            c = int(c)
            if c in taken or (shape.cap_rows[j] < demand).any():
                continue
            need = demand > 0
            ratio = float((free[c][need] / demand[need]).min()) if need.any() else 1.0
            if ratio > best_ratio:
                best, best_ratio = c, ratio
        if best >= 0:
            self.holds[job_id] = (best, demand.copy(), self.cycle)
            held[best] += demand

    # ---- preemption ---------------------------------------------------------------------------
    def _preempt(
        self,
        shape: Shape,
        job_id: str,
        free: FloatArray,
        running: dict[int, list[Running]],
        book: QuotaBook,
    ) -> tuple[int, list[Victim]]:
        """Bounded victim choice on one cluster; frees the victims' capacity and usage."""
        prio = shape.priority if shape.priority is not None else -1
        max_victims = self.quota.max_victims if self.quota is not None else 8
        reclaim = (
            self.quota is not None
            and self.quota.reclaim_borrowed
            and book.within_nominal(shape.tenant, shape.demand_list)
        )
        too_small: npt.NDArray[np.bool_] = np.asarray((shape.cap_rows < shape.demand).any(axis=1))
        best: tuple[tuple[int, int, int, int], int, list[Running]] | None = None
        for j, c in enumerate(shape.idx):
            if too_small[j]:
                continue
            c = int(c)
            eligible = [
                r
                for r in running.get(c, ())
                if r.priority < prio or (reclaim and r.tenant != shape.tenant and book.borrowing(r.tenant))
            ]
            if not eligible:
                continue
            room = free[c] + sum((r.demand for r in eligible), np.zeros(3))
            if (room < shape.demand).any():
                continue
            chosen: list[Running] = []
            # Reprieve from the highest priority down: keep every victim we can.
            for r in sorted(eligible, key=lambda r: (-r.priority, r.job_id)):
                if ((room - r.demand) >= shape.demand).all():
                    room = room - r.demand
                else:
                    chosen.append(r)
            if not chosen or len(chosen) > max_victims:
                continue
            rank = (max(r.priority for r in chosen), len(chosen), sum(r.priority for r in chosen), c)
            if best is None or rank < best[0]:
                best = (rank, c, chosen)
        if best is None:
            return -1, []
        _, c, chosen = best
        victims = []
        keep = {id(r) for r in chosen}
        running[c] = [r for r in running[c] if id(r) not in keep]
        for r in chosen:
            free[c] += r.demand
            book.release(r.tenant, [float(x) for x in r.demand])
            why = "priority" if r.priority < prio else "reclaim of borrowed quota"
            victims.append(
                Victim(
                    job_id=r.job_id,
                    attempt=r.attempt,
                    cluster=self.names[c],
                    priority=r.priority,
                    tenant=r.tenant,
                    reason=(
                        f"preempted on {self.names[c]} by job {job_id} (priority {prio}, tenant {shape.tenant}) "
                        f"by {why}: victim priority {r.priority}; {len(chosen)} victim(s), the fewest and "
                        f"lowest-priority that make room"
                    ),
                    demand=r.demand,
                )
            )
        return c, victims
