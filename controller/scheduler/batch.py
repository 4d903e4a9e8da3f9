"""The batch scheduling loop: many pending jobs per cycle, capacity reserved as decisions are made.

Same pipeline and plugins as ``Scheduler.decide`` (snapshot -> filter -> score -> select ->
reserve), organised for throughput, as kube-scheduler's equivalence classes and Kueue's
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
  on demand by ``CompactDecision.to_decision()`` from exactly the data the choice used.
- Order: priority first, then the age tier (grows with the wait), then the least flexible job
  (fewest statically feasible clusters), then the tenant with the lowest dominant share (DRF),
  then the shortest expected runtime, then FIFO (``ordering.py``; ``ORDER_DRF`` keeps pure
  priority/DRF/FIFO). A job that does not fit does not block the others (Kueue's BestEffortFIFO);
  anti-starvation holds keep room for a long-waiting job with few legal clusters.
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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from controller.datasets import DatasetRead
from controller.jobs import JobCreate
from controller.policies import QuotaPolicy
from controller.scheduler.decision import COMPACT_FORMAT, ClusterScore, Decision, Rejection
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
from controller.scheduler.ordering import (
    ORDER_CONSTRAINED_FIRST as ORDER_CONSTRAINED_FIRST,
)
from controller.scheduler.ordering import ORDER_DRF as ORDER_DRF
from controller.scheduler.ordering import (
    SORTED_ORDERS,
    Ageing,
    sort_key,
)
from controller.scheduler.plugins.locality import NAME as LOCALITY
from controller.scheduler.quota import REASON_UNKNOWN_CLASS, QuotaBook, effective_priority
from controller.scheduler.scheduler import Scheduler

IntArray = npt.NDArray[np.intp]
# Order inside a cycle: see controller/scheduler/ordering.py ("constrained-first", the default:
# priority, age tier growing with the wait, least flexible, DRF share, shortest expected runtime,
# FIFO; "fifo"; "sjf"; "drf": live dominant share, FIFO inside a tenant).
# Anti-starvation holds, on by default (``hold_*`` below): a job that failed for capacity
# ``hold_after`` times and has waited ``hold_after_s``, whose static filters leave it at most
# ``hold_max_clusters`` clusters, gets its gang's demand held back on one of them. The cost to
# others is bounded: at most ``max_holds`` holds at once, at most one per cluster, each at most
# the held gang's demand, and each ends when its job starts, which is at the latest when the work
# running on that cluster at the time of the hold has finished (nothing new can take the held
# part). tests/scheduler/test_holds.py checks this on an adversarial queue.
HOLD_AFTER_FAILS = 3
HOLD_AFTER_S = 600.0
HOLD_MAX_CLUSTERS = 5
MAX_HOLDS = 1
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
        r.gpus,
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
        n = len(ctx.names)
        groups = self.rejection_groups() if groups is None else groups
        counts = {k: len(v) for k, v in groups.items() if v}
        parts = [f"{k} {p} ({r})" for (p, r), k in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        head = f"{n - sum(counts.values())}/{n} clusters are available"
        if self.chosen >= 0:
            head += f"; chose {ctx.names[self.chosen]}"
            origin = self.shape.origin
            if origin is not None and self.ctx.names[self.chosen] in self.ctx.backups.get(origin, ()):
                head += f" (failover: designated backup of {origin})"
        if self.victims:
            head += f" after preempting {len(self.victims)} job(s): " + ", ".join(
                f"{v.job_id} (priority {v.priority})" for v in self.victims
            )
        return head + (": " + ", ".join(parts) if parts else "") + "."

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
        ctx, shape = self.ctx, self.shape
        feasible: list[ClusterScore] = []
        if self.job_reason is None and self.free_rows is not None and len(shape.idx):
            mask = self.feasible_mask()
            rows = np.flatnonzero(mask)
            per_plugin: list[tuple[str, float, FloatArray]] = [
                (name, w, s[shape.idx]) for name, w, s in shape.static_scores
            ]
            for plugin, w in ctx.dynamic_scores:
                kernel = plugin.score_free  # type: ignore[attr-defined]
                per_plugin.append((plugin.NAME, w, kernel(self.free_rows, shape.cap_rows, shape.demand)))
            order = ctx.score_order
            per_plugin.sort(key=lambda x: order.get(x[0], 99))
            total = np.zeros(len(shape.idx))
            for _, w, s in per_plugin:
                total += w * s
            seconds, moved = shape.transfer if shape.transfer is not None else (None, None)
            for j in rows:
                c = int(shape.idx[j])
                feasible.append(
                    ClusterScore(
                        cluster=ctx.names[c],
                        total=round(float(total[j]), 3),
                        scores={name: round(float(s[j]), 3) for name, _, s in per_plugin},
                        transfer_bytes=float(moved[c]) if moved is not None else 0.0,
                        transfer_seconds=round(float(seconds[c]), 3) if seconds is not None else 0.0,
                    )
                )
            feasible.sort(key=lambda cs: (-cs.total, ctx.index[cs.cluster]))
        return Decision(
            job_id=self.job_id,
            attempt=self.attempt,
            status=self.status,
            cluster=self.cluster,
            summary=self.summary(),
            feasible=feasible,
            rejected=self.rejections(),
            created_at=datetime.fromtimestamp(self.t, UTC),
            epoch=self.epoch,
        )


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
        # see HOLD_AFTER_FAILS above; other jobs may use a held cluster only beyond what is held
        # (backfill). ``hold_after = None`` turns them off.
        self.hold_after: int | None = HOLD_AFTER_FAILS
        self.hold_after_s = HOLD_AFTER_S
        self.hold_max_clusters = HOLD_MAX_CLUSTERS
        self.order = ORDER_CONSTRAINED_FIRST
        self.ageing = Ageing()
        self._now = 0.0
        self.backups: dict[str, list[str]] = {}  # failover policy: cluster -> ordered backups
        self.max_holds = MAX_HOLDS
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
        snapshot's ``allocated`` takes every placed gang). Jobs not placed go back in line."""
        self._refresh(snap)
        self.cycle += 1
        if backups is not None and backups != self.backups:
            self.backups = backups
            self.gen += 1  # backup positions are part of the static results
        if book is None:
            book = QuotaBook(self.quota, snap.capacity.sum(axis=0), list(snap.tenants), snap.tenant_usage)
        free = snap.capacity - snap.allocated
        allocated = snap.allocated
        holds = self.holds
        for stale in [j for j, h in holds.items() if h[2] < self.cycle - 2]:
            del holds[stale]
        held = np.zeros_like(free)
        for c_h, d_h, _ in holds.values():
            held[c_h] += d_h
        decisions: list[CompactDecision] = []
        unplaced: list[tuple[str, int, int, Shape]] = []
        victims_all: list[Victim] = []
        dyn_filters = [f.fits for f in self.dynamic_filters]  # type: ignore[attr-defined]
        dyn_scores = [(s.score_free, w) for s, w in self.dynamic_scores]  # type: ignore[attr-defined]
        gen, cycle = self.gen, self.cycle
        quota_check = book.check if self.quota is not None else None
        preempt_on = running is not None and (self.quota is None or self.quota.preemption)
        now = time.time() if now is None else now
        wait_max = self.locality_wait_max_s
        waiting_since = self.waiting_since
        if len(waiting_since) > 10 * max(limit, len(queue)):
            waiting_since.clear()  # jobs that left the queue another way
        unschedulable = Code.Unschedulable.value
        scheduled = 0
        neg_inf = -np.inf
        if len(self.fail_counts) > 10 * max(limit, len(queue)):
            self.fail_counts.clear()  # forget jobs that left the queue another way (cancelled)
        source: Iterable[tuple[str, int, int, Shape]]
        self._now = now
        ageing = self.ageing
        ageing.trim(10 * max(limit, len(queue)))
        if self.order in SORTED_ORDERS:
            items = list(queue.drain_ordered(book, limit))
            for item in items:
                if item[3].gen != gen:
                    self.evaluate_static(item[3], snap)
            share, order, wait = book.dominant_share, self.order, ageing.wait
            items.sort(
                key=lambda it: sort_key(
                    order,
                    it[3].priority or 0,
                    wait(it[0], now),
                    len(it[3].idx),
                    share(it[3].tenant),
                    it[3].spec.expected_runtime_s,
                    it[1],
                )
            )
            source = items
        else:  # live DRF: shares move as the loop admits jobs
            source = queue.drain_ordered(book, limit)
        for item in source:
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
            own = None
            if holds:
                rows = free[idx] - held[idx]
                own = holds.get(job_id)
                if own is not None:
                    holds[job_id] = (own[0], own[1], cycle)
                    at = np.searchsorted(idx, own[0])
                    if at < len(idx) and idx[at] == own[0]:
                        rows[at] += own[1]
            else:
                rows = free[idx]
            if shape.failed_cycle == cycle and own is None:
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
            job_reason = None
            if shape.priority is None:
                job_reason = (QUOTA, REASON_UNKNOWN_CLASS.format(name=shape.spec.priority_class))
                status = Code.UnschedulableAndUnresolvable.value
            elif quota_check is not None:
                why, never = quota_check(shape.tenant, shape.demand_list)
                if why is not None:
                    job_reason = (QUOTA, why)
                    status = Code.UnschedulableAndUnresolvable.value if never else unschedulable
            if job_reason is not None:
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
                    chosen, victims = self._preempt(shape, job_id, free, running, book)
                if chosen < 0:
                    shape.failed_cycle = cycle
                    self._on_fail(job_id, shape, free, held)
                    decisions.append(
                        CompactDecision(self, job_id, attempt, shape, unschedulable, free_rows=rows, t=now)
                    )
                    unplaced.append(item)
                    continue
                for v in victims:
                    allocated[chosen] -= v.demand
                rows = free[idx]
                ok = np.zeros(len(idx), dtype=bool)
                ok[np.searchsorted(idx, chosen)] = True
            total = shape.static_total
            for score_free, w in dyn_scores:
                total = total + w * score_free(rows, cap_rows, demand)
            if ok is not None:
                total = np.where(ok, total, neg_inf)
            c = -1
            if shape.backup_pos:  # failover: the first designated backup that is feasible now
                for pos in shape.backup_pos:
                    if ok is None or ok[pos]:
                        c = int(idx[pos])
                        break
            if c < 0:
                c = int(idx[total.argmax()])
                if wait_max > 0 and shape.transfer is not None and not victims and job_id is not None:
                    extra = float(shape.transfer[0][c]) - shape.best_transfer_s
                    if extra > 0:
                        since = waiting_since.setdefault(job_id, now)
                        if now - since < min(extra, wait_max):
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
            if waiting_since and job_id is not None:
                waiting_since.pop(job_id, None)
            ageing.forget(job_id)
            if holds and job_id in holds:
                c_h, d_h, _ = holds.pop(job_id)
                held[c_h] -= d_h
            if self.fail_counts:
                self.fail_counts.pop(job_id, None)
            free[c] -= demand
            allocated[c] += demand
            book.admit(shape.tenant, shape.demand_list)
            if running is not None:
                running.setdefault(c, []).append(
                    Running(job_id, c, shape.priority or 0, demand, shape.tenant, attempt)
                )
            d = CompactDecision(self, job_id, attempt, shape, "Scheduled", c, rows, None, victims, now)
            d.epoch = epoch
            decisions.append(d)
            if victims:
                victims_all.extend(victims)
            scheduled += 1
        queue.requeue(unplaced)
        return BatchResult(decisions, scheduled, victims_all, unplaced)

    def _on_fail(self, job_id: str | None, shape: Shape, free: FloatArray, held: FloatArray) -> None:
        """Count a capacity failure; after ``hold_after`` of them, once the job has waited
        ``hold_after_s`` and if it has at most ``hold_max_clusters`` clusters, hold capacity for
        it on the cluster where it would fit soonest (the largest free share of its demand)."""
        if job_id is None:
            return
        n = self.fail_counts.get(job_id, 0) + 1
        self.fail_counts[job_id] = n
        if (
            self.hold_after is None
            or n < self.hold_after
            or job_id in self.holds
            or len(self.holds) >= self.max_holds
            or len(shape.idx) > self.hold_max_clusters
            or self.ageing.wait(job_id, self._now) < self.hold_after_s
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
