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

import gc
import heapq
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from controller.datasets import Classification, DatasetRead
from controller.jobs import Constraints, JobCreate, Resources
from controller.policies import QuotaPolicy
from controller.scheduler.backfill import EPS, EndLedger, may_backfill
from controller.scheduler.decision import COMPACT_FORMAT, ClusterScore, Decision, Rejection, render
from controller.scheduler.framework import (
    Code,
    CodeArray,
    CycleState,
    FilterPlugin,
    FloatArray,
    JobInfo,
    ScorePlugin,
    Snapshot,
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
from controller.scheduler.plugins.balance import BalanceScore
from controller.scheduler.plugins.capacity import CapacityFilter
from controller.scheduler.plugins.constraints import ConstraintsPlugin
from controller.scheduler.plugins.gang import REASON_GANG, REASON_NODE, GangFilter, node_matrix
from controller.scheduler.plugins.gang import filter_many as gang_many
from controller.scheduler.plugins.green import GreenScore
from controller.scheduler.plugins.health import HealthFilter
from controller.scheduler.plugins.locality import NAME as LOCALITY
from controller.scheduler.plugins.locality import LocalityScore, dataset_transfer
from controller.scheduler.plugins.residency import (
    REASON_MISSING,
    ResidencyFilter,
    dataset_rule,
    first_forbidding,
)
from controller.scheduler.quota import REASON_UNKNOWN_CLASS, QuotaBook, effective_priority
from controller.scheduler.scheduler import Scheduler

IntArray = npt.NDArray[np.intp]
# Order inside a cycle: see controller/scheduler/ordering.py ("constrained-first", the default:
# priority, age tier growing with the wait, least flexible, DRF share, shortest expected runtime,
# FIFO; "fifo"; "sjf"; "drf": live dominant share, FIFO inside a tenant).
# Anti-starvation holds, on by default (``hold_*`` below): a job that failed for capacity
# ``hold_after`` times and has waited ``hold_after_s``, whose static filters leave it at most
# ``hold_max_clusters`` clusters, gets its gang's demand held back on one of them (a free hold
# goes to the longest-waiting such job at the cycle's end, ``_grant_holds``). The cost to
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


def _normalize_rows(values: FloatArray, feasible: npt.NDArray[np.bool_]) -> FloatArray:
    """``normalize_lower_is_better`` on every row at once (the same arithmetic, element by
    element): the feasible clusters' values of a row mapped to 0..100, the lowest scoring 100."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        lo = np.where(feasible, values, np.inf).min(axis=1, keepdims=True)
        hi = np.where(feasible, values, -np.inf).max(axis=1, keepdims=True)
        span = hi - lo
        out: FloatArray = np.where(feasible, 100.0 * (hi - values) / span, 0.0)
    flat = (span <= 1e-12)[:, 0]
    if flat.any():
        out[flat] = np.where(feasible[flat], 100.0, 0.0)
    return out


# What each built-in static plugin reads of a job: its cache key (evaluate_many). A filter's or
# score's result is a function of the snapshot generation and this key only.
FILTER_KEYS: dict[type, Callable[[Shape], Any]] = {
    HealthFilter: lambda shape: (),
    ConstraintsPlugin: lambda shape: shape.ckey,
    ResidencyFilter: lambda shape: shape.inputs,
    GangFilter: lambda shape: (shape.resources, shape.replicas),
}
GANG_MESSAGES = [REASON_GANG, REASON_NODE]
SCORE_KEYS: set[type] = {ConstraintsPlugin, GreenScore}  # cached by constraints / tolerance and classes


def shape_key(spec: JobCreate, priority: int | None) -> tuple[Any, ...]:
    """What the scheduler reads of a job; jobs with equal keys get equal decisions. The runtime
    estimate is not in it: only the order reads it, and the queue keeps it per job."""
    c = spec.constraints
    ckey: Any = ()
    if c.allow_clusters or c.deny_clusters or c.prefer_clusters or c.require_labels or c.prefer_labels:
        ckey = c.model_dump_json()
    r = spec.resources
    intern = sys.intern  # tenants and data set ids repeat across millions of jobs
    return (
        intern(spec.tenant),
        priority,
        tuple([intern(d) for d in spec.inputs]),
        ckey,
        r.cpu,
        r.memory_gib,
        r.gpus,
        spec.replicas,
        spec.delay_tolerant,
        spec.priority_class,
    )


class LRU:
    """A bounded mapping with least-recently-used eviction and hit/miss counters."""

    __slots__ = ("data", "hits", "maxsize", "misses")

    def __init__(self, maxsize: int) -> None:
        self.data: OrderedDict[Any, Any] = OrderedDict()
        self.maxsize = maxsize
        self.hits = 0
        self.misses = 0

    def get(self, key: Any) -> Any:
        value = self.data.get(key)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        self.data.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        data = self.data
        data[key] = value
        if len(data) > self.maxsize:
            data.popitem(last=False)

    def clear(self) -> None:
        self.data.clear()

    def __len__(self) -> int:
        return len(self.data)

    def stats(self) -> dict[str, Any]:
        asked = self.hits + self.misses
        return {
            "size": len(self.data),
            "max": self.maxsize,
            "hits": self.hits,
            "misses": self.misses,
            "hit_rate": round(self.hits / asked, 4) if asked else None,
        }


def _static_groups(ctx: Any, shape: Shape) -> dict[tuple[str, str], list[str]]:
    """The static filters' rejections of a shape grouped by (plugin, reason): plugins in their
    configured order, a plugin's reasons in the order of the first cluster each rejects, names
    in cluster order; computed once per shape and snapshot generation."""
    cached = shape.static_groups
    if cached is not None and cached[0] == shape.gen:
        return cached[1]
    groups: dict[tuple[str, str], list[str]] = {}
    rej = shape.rejected
    where = np.flatnonzero(rej)
    if len(where):
        codes = rej[where]
        order = np.lexsort((where, codes >> 8))
        names, filters, messages = ctx.names, ctx.static_filters, shape.rejected_messages
        for i, code in zip(where[order].tolist(), codes[order].tolist(), strict=True):
            p = code >> 8
            key = (filters[p - 1].NAME, messages[p - 1][(code & 0xFF) - 1])
            groups.setdefault(key, []).append(names[i])
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
    for name, w, raw in shape.static_scores:
        rounded = np.round(raw, 3)
        scores.append((name, w, raw, rounded, rounded.tolist()))
    body = StaticBody([ctx.names[int(c)] for c in idx], scores, None, None, None)
    if shape.transfer is not None:
        seconds, moved = shape.transfer
        body.transfer_bytes = moved
        body.transfer_seconds = np.round(seconds, 3)
        body.transfer_lists = (body.transfer_bytes.tolist(), body.transfer_seconds.tolist())
    shape.static_body = (shape.gen, body)
    return body


_NO_CONSTRAINTS = Constraints()
_SPEC_TEMPLATE = JobCreate(name="shape", tenant="shape")


class Shape:
    """A shape's scheduling-relevant fields (not the whole spec: a million pending jobs of a
    million shapes must fit in memory) and, per snapshot generation, its static results:

    - ``idx``: the statically feasible clusters (indices, ascending), ``cap_rows`` their capacity;
    - ``static_total``, ``static_scores``: the static scores' weighted sum and each plugin's
      scores, over ``idx``;
    - ``rejected``: per cluster, ``plugin << 8 | code`` of the first static filter rejecting it
      (plugin counted from 1 in the configured order, ``code`` indexing that filter's messages
      in ``rejected_messages``), 0 where every static filter passes;
    - ``transfer``: the input-transfer estimate (seconds, bytes) per cluster."""

    __slots__ = (
        "_demand",
        "_inputs_of",
        "backup_pos",
        "best_transfer_s",
        "cap_cpu",
        "cap_mem",
        "cap_rows",
        "ckey",
        "delay_tolerant",
        "demand_list",
        "failed_cycle",
        "gen",
        "has_transfer",
        "idx",
        "inputs",
        "key",
        "layout",
        "origin",
        "priority",
        "priority_class",
        "rejected",
        "rejected_messages",
        "replicas",
        "resources",
        "runtime",
        "static",
        "static_body",
        "static_groups",
        "static_total",
        "tenant",
        "unresolvable",
    )

    def __init__(self, key: tuple[Any, ...], spec: JobCreate, priority: int | None) -> None:
        self.key: tuple[Any, ...] = key
        self.tenant: str = key[0]
        self.priority = priority
        self.priority_class = spec.priority_class
        self.inputs: tuple[str, ...] = key[2]
        self.ckey: Any = key[3]  # the constraints as JSON, () when there are none
        self.resources: tuple[float, float, float] = (key[4], key[5], key[6])  # gpu: fractional
        self.replicas: int = spec.replicas
        cpu, memory_gib, gpu = self.resources
        replicas = self.replicas
        self.delay_tolerant = spec.delay_tolerant
        self.runtime = spec.expected_runtime_s  # the estimate of the first job of the shape
        # the gang's demand (``demand_vector``) as floats; the array when first asked for
        self.demand_list: tuple[float, float, float] = (
            float(cpu * replicas),
            float(memory_gib * replicas),
            float(gpu * replicas),
        )
        self._demand: FloatArray | None = None
        self.gen = -1
        self.failed_cycle = -1
        self.idx: IntArray = _EMPTY_IDX
        self.cap_rows: FloatArray = _EMPTY_ROWS
        self.cap_cpu: FloatArray = _EMPTY_F  # cap_rows' columns, contiguous
        self.cap_mem: FloatArray = _EMPTY_F
        self.static_total: FloatArray = _EMPTY_F
        # rows over ``idx``: the total, each static score (``layout``: their names and
        # weights), then, with ``has_transfer``, the transfer seconds and bytes, and, with
        # ``input_sizes``, the bits of the inputs moved to each cluster
        self.static: FloatArray = _EMPTY_STATIC
        self.layout: tuple[tuple[str, float], ...] = ()
        self.has_transfer = False
        self._inputs_of: tuple[list[float], list[int]] | None = None  # table sizes, input rows
        self.rejected: npt.NDArray[np.uint16] = _EMPTY_U16
        self.rejected_messages: Sequence[list[str]] = ()
        self.best_transfer_s = 0.0  # the least input-transfer time over ``idx``
        self.unresolvable = True
        self.static_groups: tuple[int, dict[tuple[str, str], list[str]]] | None = None
        self.static_body: tuple[int, StaticBody] | None = None
        # Failover: the cluster the job was on when it failed (None for a first placement) and
        # the positions, in ``idx``, of that cluster's designated backups in policy order.
        self.origin: str | None = None
        self.backup_pos: Sequence[int] = ()

    @property
    def input_sizes(self) -> list[float] | None:
        """The sizes of the inputs present, in input order, when ``static`` has the moved bits."""
        of = self._inputs_of
        return None if of is None else [of[0][r] for r in of[1]]

    @property
    def demand(self) -> FloatArray:
        """The gang's whole demand (cpu, memory GiB, gpu)."""
        d = self._demand
        if d is None:
            d = self._demand = np.array(self.demand_list, dtype=np.float64)
        return d

    @property
    def constraints(self) -> Constraints:
        return Constraints.model_validate_json(self.ckey) if self.ckey != () else _NO_CONSTRAINTS

    @property
    def spec(self) -> JobCreate:
        """A spec with the shape's fields (for plugins), built on demand and not kept."""
        cpu, memory_gib, gpu = self.resources
        gpus = (
            Resources(cpu=cpu, memory_gib=memory_gib, gpu=int(gpu))
            if float(gpu).is_integer()
            else Resources(cpu=cpu, memory_gib=memory_gib, gpu_milli=round(gpu * 1000))
        )
        return _SPEC_TEMPLATE.model_copy(
            update={
                "tenant": self.tenant,
                "priority": self.priority if self.priority is not None else 100,
                "priority_class": self.priority_class,
                "resources": gpus,
                "replicas": self.replicas,
                "inputs": list(self.inputs),
                "constraints": self.constraints,
                "delay_tolerant": self.delay_tolerant,
                "expected_runtime_s": self.runtime,
            }
        )

    @property
    def static_scores(self) -> list[tuple[str, float, FloatArray]]:
        """Each static score plugin's (name, weight, scores over ``idx``)."""
        static = self.static
        return [(name, w, static[1 + p]) for p, (name, w) in enumerate(self.layout)]

    @property
    def transfer(self) -> tuple[FloatArray, FloatArray] | None:
        """(seconds, bytes) to bring the inputs to each of ``idx``, when locality scores."""
        if not self.has_transfer:
            return None
        P = len(self.layout)
        return self.static[P + 1], self.static[P + 2]

    @property
    def feasible_static(self) -> npt.NDArray[np.bool_]:
        """Per cluster: every static filter passes."""
        out: npt.NDArray[np.bool_] = self.rejected == 0
        return out


_EMPTY_IDX: IntArray = np.zeros(0, dtype=np.intp)
_EMPTY_ROWS: FloatArray = np.zeros((0, 3))
_EMPTY_F: FloatArray = np.zeros(0)
_EMPTY_U16: npt.NDArray[np.uint16] = np.zeros(0, dtype=np.uint16)
_EMPTY_STATIC: FloatArray = np.zeros((1, 0))
SHAPE_CACHE = 50_000  # shapes kept for reuse (least recently used evicted)
# The cyclic garbage collector's thresholds for a controller process (``tune_gc``).
GC_THRESHOLDS = (100_000, 50, 100)


def tune_gc() -> None:
    """A scheduling cycle allocates a few hundred thousand short-lived containers (queue items,
    decisions, rows); with CPython's default thresholds (700, 10, 10) the collector runs
    hundreds of times per cycle and its older generations walk every long-lived object (the
    shapes, the caches, the ledger): a fifth of a cycle's time on the mixed queue. Freeze
    what exists at start-up (modules, policies, topology: never garbage) and collect the
    young generation every 100,000 allocations instead (cycles of garbage are rare here;
    reference counting frees the rest at once). The service calls this when its loops start;
    ``make bench`` calls it as the leader would. Once per process."""
    global _GC_TUNED
    if _GC_TUNED:
        return
    _GC_TUNED = True
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


_GC_TUNED = False


COMPONENT_CACHE = 50_000  # per plugin: static results by what they depend on


class ShapeTable:
    """Interns shapes, so jobs with equal keys share one spec summary and its static results.
    Bounded (``maxsize``, least recently used evicted): a job keeps its shape while it is
    queued; an evicted shape is made again, and evaluated again, when its key comes back."""

    def __init__(self, quota: QuotaPolicy | None = None, maxsize: int = SHAPE_CACHE) -> None:
        self.quota = quota
        self.shapes = LRU(maxsize)

    def intern(self, spec: JobCreate, origin: str | None = None) -> Shape:
        """``origin``: the failed cluster a re-placed job comes from (failover backup groups)."""
        priority = effective_priority(spec, self.quota)
        key = (*shape_key(spec, priority), origin if spec.failover.policy == "backup-group" else None)
        shapes = self.shapes
        shape: Shape | None = shapes.get(key)
        if shape is None:
            shape = Shape(key, spec, priority)
            shape.origin = key[-1]
            shapes.put(key, shape)
        return shape

    def __len__(self) -> int:
        return len(self.shapes)


@dataclass(slots=True)
class Running:
    """A Scheduled/Running job as preemption sees it."""

    job_id: str
    cluster: int
    priority: int
    demand: FloatArray
    tenant: str
    attempt: int = 1


Item = tuple[str, int, int, "Shape", float]  # job id, sequence, attempt, shape, runtime estimate


@dataclass(slots=True)
class PendingQueue:
    """Pending jobs as (job id, sequence, attempt, shape, runtime estimate), bucketed by
    (priority, tenant), FIFO inside a bucket. Memory per job is one small tuple plus the id:
    jobs of equal keys share their shape."""

    buckets: dict[tuple[int, str], deque[Item]] = field(default_factory=dict)
    count: int = 0
    seq: int = 0

    def push(
        self,
        job_id: str,
        shape: Shape,
        attempt: int = 1,
        seq: int | None = None,
        runtime: float | None = None,
    ) -> None:
        """``runtime``: the job's own estimate (``expected_runtime_s``); without it, the estimate
        of the shape's first job."""
        if seq is None:
            seq = self.seq
        self.seq = max(self.seq, seq) + 1
        prio = shape.priority if shape.priority is not None else -1
        bucket = self.buckets.get((prio, shape.tenant))
        if bucket is None:
            bucket = self.buckets[(prio, shape.tenant)] = deque()
        bucket.append((job_id, seq, attempt, shape, shape.runtime if runtime is None else runtime))
        self.count += 1

    def __len__(self) -> int:
        return self.count

    def drain_ordered(self, book: QuotaBook, limit: int) -> Iterator[tuple[str, int, int, Shape]]:
        """Pop up to ``limit`` jobs: highest priority first, then the tenant with the lowest
        dominant share *at the moment of popping* (the caller admits as it goes), then FIFO."""
        for item in self.drain(book, limit):
            yield item[:4]

    def drain(self, book: QuotaBook, limit: int) -> Iterator[Item]:
        """``drain_ordered`` with the runtime estimates."""
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

    def take_all(self) -> list[Item]:
        """Pop every queued job (in no particular order)."""
        out: list[Item] = []
        for bucket in self.buckets.values():
            out.extend(bucket)
            bucket.clear()
        self.count = 0
        return out

    def requeue(self, items: Iterable[Item]) -> None:
        """Put back jobs that were popped but not placed, keeping their place in line. They were
        popped from the buckets' fronts, so they usually go back in front as they are (no
        merge over the whole bucket: the cost does not grow with the queue)."""
        by_bucket: dict[tuple[int, str], list[Item]] = {}
        for it in items:
            shape = it[3]
            prio = shape.priority if shape.priority is not None else -1
            by_bucket.setdefault((prio, shape.tenant), []).append(it)
        for key, its in by_bucket.items():
            bucket = self.buckets.setdefault(key, deque())
            its.sort(key=lambda x: x[1])
            if not bucket or its[-1][1] < bucket[0][1]:
                bucket.extendleft(reversed(its))
            else:
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
        epoch: int = 0,
    ) -> None:
        self.ctx = ctx
        self.job_id = job_id
        self.attempt = attempt
        self.shape = shape
        self.status = status
        self.chosen = chosen  # cluster index, -1 when none
        self.free_rows = free_rows  # free capacity of shape.idx when decided
        self.job_reason = job_reason  # (plugin, reason) rejecting every cluster (quota)
        self.victims: Sequence[Victim] = victims if victims else ()
        self.t = t or time.time()
        self.epoch = epoch

    @property
    def cluster(self) -> str | None:
        return self.ctx.names[self.chosen] if self.chosen >= 0 else None

    @property
    def demand(self) -> FloatArray:
        return self.shape.demand

    def moved_bytes(self) -> float:
        """The input bytes the placement moves over the WAN to the chosen cluster (0.0 when
        unplaced or when locality does not score). ``shape.transfer`` is over ``shape.idx``."""
        transfer = self.shape.transfer
        if self.chosen < 0 or transfer is None:
            return 0.0
        idx = self.shape.idx
        pos = int(np.searchsorted(idx, self.chosen))
        return float(transfer[1][pos]) if pos < len(idx) and idx[pos] == self.chosen else 0.0

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
        ctx, shape = self.ctx, self.shape
        feasible: list[ClusterScore] = []
        if self.job_reason is None and self.free_rows is not None and len(shape.idx):
            mask = self.feasible_mask()
            rows = np.flatnonzero(mask)
            per_plugin: list[tuple[str, float, FloatArray]] = list(shape.static_scores)
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
                        # rounded as the stored form rounds (``stored.py``), so a plan and the
                        # stored decision of the same choice read the same
                        total=float(np.round(total[j], 3)),
                        scores={name: float(np.round(s[j], 3)) for name, _, s in per_plugin},
                        transfer_bytes=float(moved[j]) if moved is not None else 0.0,
                        transfer_seconds=float(np.round(seconds[j], 3)) if seconds is not None else 0.0,
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
    unplaced: list[Item]


class DatasetTable:
    """Per data set of the snapshot generation, one row: the clusters a job reading it may not
    run on (residency), the reason, its classification, and the time and bytes to bring it to
    each cluster (locality). Row 0 is no data set: it pads jobs with fewer inputs. Rows are
    added as data sets are first read; the owner starts a new table when the generation changes
    or the table outgrows its bound."""

    def __init__(self, snap: Snapshot, gen: int) -> None:
        self.snap = snap
        self.gen = gen
        self.row: dict[str, int] = {}
        n = snap.size
        self.forbidden = np.zeros((64, n), dtype=bool)
        self.seconds = np.zeros((64, n))
        self.moved = np.zeros((64, n))
        self.klass = np.zeros(64, dtype=np.int64)  # classification code, 0 for row 0
        self.message: list[str] = [""]
        self.sizes: list[float] = [0.0]
        self.bits_exact = True  # every input's bytes moved to a cluster are 0 or its size
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self.message) - 1

    def _add(self, ds: DatasetRead) -> int:
        r = len(self.message)
        if r == len(self.klass):  # grow by doubling
            self.forbidden = np.concatenate([self.forbidden, np.zeros_like(self.forbidden)])
            self.seconds = np.concatenate([self.seconds, np.zeros_like(self.seconds)])
            self.moved = np.concatenate([self.moved, np.zeros_like(self.moved)])
            self.klass = np.concatenate([self.klass, np.zeros_like(self.klass)])
        allowed, message = dataset_rule(ds, self.snap)
        if allowed is not None:
            self.forbidden[r] = ~allowed
        self.seconds[r], self.moved[r] = dataset_transfer(ds, self.snap)
        self.klass[r] = CLASS_CODES[ds.classification]
        size = float(ds.size_bytes)
        self.sizes.append(size)
        if not ((self.moved[r] == 0.0) | (self.moved[r] == size)).all():
            self.bits_exact = False  # the moved bytes are not "all of it or nothing" per input
        self.message.append(message)
        self.row[ds.id] = r
        return r

    def rows(self, inputs: list[tuple[str, ...]]) -> tuple[IntArray, list[int], list[list[int]]]:
        """Each job's inputs present in the snapshot as rows (jobs x most inputs, padded with
        row 0), the jobs with an input the snapshot does not have, and the rows as lists."""
        row, datasets = self.row, self.snap.datasets
        missing: list[int] = []
        lists: list[list[int]] = []
        K = 1
        for j, ids in enumerate(inputs):
            out = []
            for d in ids:
                r = row.get(d)
                if r is None:
                    ds = datasets.get(d)
                    if ds is None:
                        missing.append(j)
                        continue
                    self.misses += 1
                    r = self._add(ds)
                else:
                    self.hits += 1
                out.append(r)
            if len(out) > K:
                K = len(out)
            lists.append(out)
        table = np.zeros((len(inputs), K), dtype=np.intp)
        for j, out in enumerate(lists):
            if out:
                table[j, : len(out)] = out
        return table, sorted(set(missing)), lists

    def residency(self, ids: IntArray) -> tuple[CodeArray, list[list[str]]]:
        codes, newly = first_forbidding(self.forbidden[ids])
        message = self.message
        lists: list[list[str]] = [_NO_MESSAGES] * len(ids)
        for j in np.flatnonzero(newly.any(axis=1)).tolist():
            lists[j] = [message[r] for r in ids[j][newly[j]].tolist()]
        return codes, lists

    def transfers(self, ids: IntArray) -> tuple[FloatArray, FloatArray]:
        """``transfer_estimate`` for every job: the slowest input's time, the bytes summed in
        input order."""
        seconds = np.zeros((len(ids), self.snap.size))
        moved = np.zeros((len(ids), self.snap.size))
        for k in range(ids.shape[1]):
            np.maximum(seconds, self.seconds[ids[:, k]], out=seconds)
            moved += self.moved[ids[:, k]]
        return seconds, moved

    def moved_bits(self, ids: IntArray) -> npt.NDArray[np.uint8] | None:
        """Per job and cluster, which inputs are moved there (bit k: input k), when a job has
        at most eight inputs and each input's bytes moved are 0 or its size: the stored
        decisions keep the bytes moved as these bits (the sizes of the set bits added in input
        order give exactly the bytes ``transfers`` sums, row 0 adding 0.0)."""
        if ids.shape[1] > 8 or not self.bits_exact:
            return None
        bits = np.zeros((len(ids), self.snap.size), dtype=np.uint8)
        for k in range(ids.shape[1]):
            bits |= (self.moved[ids[:, k]] != 0).astype(np.uint8) << k
        return bits

    def class_keys(self, ids: IntArray) -> list[int]:
        """Each job's input classifications in order, as one integer (green's cache key)."""
        codes = self.klass[ids]
        weights = 4 ** np.arange(ids.shape[1], dtype=np.int64)
        out: list[int] = (codes * weights).sum(axis=1).tolist()
        return out

    def stats(self) -> dict[str, Any]:
        asked = self.hits + self.misses
        return {
            "size": len(self),
            "hits": self.hits,
            "misses": self.misses,
            "hit_rate": round(self.hits / asked, 4) if asked else None,
        }


_NO_MESSAGES: list[str] = []
CLASS_CODES = {c: k for k, c in enumerate(Classification, start=1)}


class BatchScheduler:
    """Wraps a ``Scheduler``'s ordered plugin lists for batch cycles (see the module docstring).

    ``caches=False`` evaluates every shape through the plugins one by one and decides each job
    with the plugins' own kernels: the reference the cached, vectorised path is tested against
    (tests/scheduler/test_parity.py)."""

    def __init__(
        self,
        scheduler: Scheduler,
        quota: QuotaPolicy | None = None,
        *,
        caches: bool = True,
        shape_cache: int = SHAPE_CACHE,
        component_cache: int = COMPONENT_CACHE,
    ) -> None:
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
        self.shapes = ShapeTable(quota, shape_cache)
        self.caches = caches
        # The cached path knows what each built-in static plugin reads of a job (its cache key);
        # a plugin it does not know sends every shape through the per-shape path.
        self.cached = (
            caches
            and all(type(f) in FILTER_KEYS for f in self.static_filters)
            and all(type(sc) in SCORE_KEYS or type(sc) is LocalityScore for sc, _ in self.static_scores)
        )
        self.fused = (
            caches
            and [type(f) for f in self.dynamic_filters] == [CapacityFilter]
            and [type(sc) for sc, _ in self.dynamic_scores] == [BalanceScore]
        )
        self._filter_caches = [LRU(component_cache) for _ in self.static_filters]
        self._score_caches = [LRU(component_cache) for _ in self.static_scores]
        self._rows = LRU(component_cache)  # feasible mask -> (indices, capacity rows)
        self.component_cache = component_cache
        self._layout = tuple((sc.NAME, w) for sc, w in self.static_scores)
        self._lowest: dict[int, tuple[list[Running], int, float]] = {}
        self._table: DatasetTable | None = None  # per data set: residency, transfers (per generation)
        self.table_resets = 0
        self._node_shapes: tuple[int, FloatArray] | None = None
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
        # This cycle's jobs that qualify for a hold (job -> shape): the holds free at the cycle's
        # end go to the longest-waiting of them (``_grant_holds``), not to whichever job happens
        # to fail first after a hold is released in the middle of a cycle.
        self.hold_candidates: dict[str, Shape] = {}
        # Backfilling into holds (``backfill.py``): a job expected to end before a hold's shadow
        # time may use the held part; the ledger of expected ends gives the shadow times.
        self.backfill = True
        self.ends = EndLedger()
        self.shadows: dict[int, float] = {}  # held cluster -> shadow time, this cycle
        # Locality waits (delay scheduling): job -> when it first waited for a cluster holding
        # its inputs. Ski rental: a job waits at most as long as moving its inputs to the best
        # cluster free now would take more than fetching them where they are; so its input
        # phase is at most twice the best case, and it moves data only when waiting costs more.
        self.locality_wait_max_s = scheduler.locality_wait_max_s
        self.waiting_since: dict[str, float] = {}

    def cache_stats(self) -> dict[str, Any]:
        """Size, bound and hit rate of every cache (``make bench`` reports them)."""
        out: dict[str, Any] = {"shapes": self.shapes.shapes.stats()}
        for f, c in zip(self.static_filters, self._filter_caches, strict=True):
            out[f"filter.{f.NAME}"] = c.stats()
        for (sc, _), c in zip(self.static_scores, self._score_caches, strict=True):
            out[f"score.{sc.NAME}"] = c.stats()
        out["datasets"] = {
            **(self._table.stats() if self._table is not None else {}),
            "max": self.component_cache,
            "resets": self.table_resets,
        }
        out["feasible_rows"] = self._rows.stats()
        return out

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
            # Component results hold for one generation (they read the snapshot).
            for c in (*self._filter_caches, *self._score_caches, self._rows):
                c.clear()

    @staticmethod
    def _info(shape: Shape, snap: Snapshot) -> JobInfo:
        inputs: list[DatasetRead] = [snap.datasets[d] for d in shape.inputs if d in snap.datasets]
        missing = [d for d in shape.inputs if d not in snap.datasets]
        return JobInfo(id=None, spec=shape.spec, inputs=inputs, missing_inputs=missing)

    def _finish(
        self,
        shapes: list[Shape],
        snap: Snapshot,
        feasible: npt.NDArray[np.bool_],
        M: FloatArray,
        sizes: list[float] | None = None,
        rows_of: list[list[int]] | None = None,
    ) -> None:
        """Store each shape's static results from its row of ``feasible`` (shapes x clusters)
        and of ``M`` (shapes x results x clusters: the weighted total, each static score, then
        the transfer seconds and bytes when locality scores, then the bits of the inputs moved
        with ``sizes``, the data-set table's sizes, and ``rows_of``, each shape's input rows),
        over its feasible clusters."""
        layout = self._layout
        P = len(layout)
        has_transfer = M.shape[1] > P + 1
        rows_cache = self._rows if self.caches else None
        capacity = snap.capacity
        if has_transfer:
            best = np.where(feasible, M[:, P + 1], np.inf).min(axis=1)
        gen = self.gen
        for j, shape in enumerate(shapes):
            f = feasible[j]
            key = f.tobytes()
            rows = rows_cache.get(key) if rows_cache is not None else None
            if rows is None:
                idx = np.flatnonzero(f)
                cap_rows = capacity[idx]
                rows = (idx, cap_rows, cap_rows[:, 0].copy(), cap_rows[:, 1].copy())
                if rows_cache is not None:
                    rows_cache.put(key, rows)
            idx = rows[0]
            shape.idx, shape.cap_rows, shape.cap_cpu, shape.cap_mem = rows
            static = M[j][:, idx]
            shape.static = static
            shape.static_total = static[0]
            shape.layout = layout
            shape.has_transfer = has_transfer
            shape.best_transfer_s = float(best[j]) if has_transfer and len(idx) else 0.0
            shape._inputs_of = None if sizes is None or rows_of is None else (sizes, rows_of[j])
            if shape.origin is not None:
                backup_pos = []
                position = {int(c): k for k, c in enumerate(idx)}
                for b in self.backups.get(shape.origin, ()):
                    k = position.get(snap.index.get(b, -1))
                    if k is not None:
                        backup_pos.append(k)
                shape.backup_pos = backup_pos
            elif shape.backup_pos:
                shape.backup_pos = ()
            shape.gen = gen

    def evaluate_static(self, shape: Shape, snap: Snapshot) -> None:
        """One shape through every static plugin (the reference path)."""
        info = self._info(shape, snap)
        state = CycleState()
        n = snap.size
        feasible = np.ones(n, dtype=bool)
        rejected = np.zeros(n, dtype=np.uint16)
        messages: list[list[str]] = []
        unresolvable = True
        for p, plugin in enumerate(self.static_filters, start=1):
            result = plugin.filter(state, info, snap)
            messages.append(list(result.messages))
            newly = (result.codes > 0) & feasible
            if newly.any():
                rejected[newly] = (p << 8) | result.codes[newly].astype(np.uint16)
                if not result.unresolvable:
                    unresolvable = False
                feasible &= ~newly
        shape.rejected = rejected
        shape.rejected_messages = messages
        shape.unresolvable = unresolvable
        total = np.zeros(n)
        rows = [total]
        for scorer, weight in self.static_scores:
            sc = scorer.score(state, info, snap, feasible)
            rows.append(sc)
            total += weight * sc
        transfer = state.get(LOCALITY)
        if transfer is not None:
            rows.extend(transfer)
        self._finish([shape], snap, feasible[None, :], np.stack(rows)[None, :, :])

    def evaluate_many(self, shapes: list[Shape], snap: Snapshot) -> None:
        """The static results of many shapes at once, equal to ``evaluate_static`` shape by
        shape. What a plugin's result depends on is computed once per distinct value of it:
        residency rules and transfer estimates per data set (a table per generation, combined
        per job), constraints by the constraints, green by delay tolerance and the inputs'
        classes, health once; the gang fit, the first rejections, the locality normalisation
        and the weighted sums run over shapes x clusters in numpy."""
        if not self.cached:
            for shape in shapes:
                self.evaluate_static(shape, snap)
            return
        J, n = len(shapes), snap.size
        table = self._dataset_table(snap)
        ids, missing, input_rows = table.rows([shape.inputs for shape in shapes])
        feasible = np.ones((J, n), dtype=bool)
        rejected = np.zeros((J, n), dtype=np.uint16)
        resolvable = np.zeros(J, dtype=bool)
        per_plugin: list[list[list[str]]] = []
        for p, (plugin, cache) in enumerate(zip(self.static_filters, self._filter_caches, strict=True), 1):
            kind = type(plugin)
            lists: list[list[str]]
            if kind is ResidencyFilter:
                codes, lists = table.residency(ids)
                for j in missing:
                    gone = next(d for d in shapes[j].inputs if d not in snap.datasets)
                    codes[j] = 1
                    lists[j] = [REASON_MISSING.format(id=gone)]
                plugin_unresolvable: npt.NDArray[np.bool_] | bool = True
            elif kind is GangFilter:
                demand = np.array([shape.demand_list for shape in shapes]).reshape(J, 3)
                per_replica = np.array([shape.resources for shape in shapes], dtype=np.float64).reshape(J, 3)
                codes = gang_many(per_replica, demand, self._nodes(snap), snap.capacity)
                lists = [GANG_MESSAGES] * J
                plugin_unresolvable = True
            else:  # health, constraints: once per distinct key
                key_of = FILTER_KEYS[kind]
                results, inv = self._by_key(
                    cache,
                    [key_of(shape) for shape in shapes],
                    lambda j, plugin=plugin: plugin.filter(CycleState(), self._info(shapes[j], snap), snap),  # type: ignore[misc]
                )
                codes = np.stack([r.codes for r in results])[inv]
                lists = [results[i].messages for i in inv.tolist()]
                plugin_unresolvable = np.array([r.unresolvable for r in results], dtype=bool)[inv]
            if any(len(m) > 255 for m in lists):  # the packed code holds 255 reasons a plugin
                for one in shapes:
                    self.evaluate_static(one, snap)
                return
            newly = (codes > 0) & feasible
            if newly.any():
                rejected += newly * ((p << 8) | codes).astype(np.uint16)
                resolvable |= newly.any(axis=1) & ~np.asarray(plugin_unresolvable)
                feasible &= ~newly
            per_plugin.append(lists)
        P = len(self.static_scores)
        seconds: FloatArray | None = None
        moved: FloatArray | None = None
        if any(type(sc) is LocalityScore for sc, _ in self.static_scores):
            seconds, moved = table.transfers(ids)
        bits = table.moved_bits(ids) if seconds is not None else None
        # shapes x results x clusters: each shape's results side by side (``_finish`` takes a
        # shape's block at once)
        M = np.empty((J, 1 + P + (2 if seconds is not None else 0) + (1 if bits is not None else 0), n))
        total = np.zeros((J, n))
        for p, ((scorer, w), cache) in enumerate(zip(self.static_scores, self._score_caches, strict=True), 1):
            score_kind: type = type(scorer)
            if score_kind is LocalityScore:
                assert seconds is not None and moved is not None
                sc = 0.5 * _normalize_rows(seconds, feasible) + 0.5 * _normalize_rows(moved, feasible)
            else:
                if score_kind is GreenScore:  # it reads delay tolerance and the inputs' classifications
                    keys: list[Any] = [
                        (shape.delay_tolerant, k)
                        for shape, k in zip(shapes, table.class_keys(ids), strict=True)
                    ]
                else:  # ConstraintsPlugin: the constraints
                    keys = [shape.ckey for shape in shapes]
                scored, inv = self._by_key(
                    cache,
                    keys,
                    lambda j, scorer=scorer: scorer.score(  # type: ignore[misc]
                        CycleState(), self._info(shapes[j], snap), snap, np.ones(n, dtype=bool)
                    ),
                )
                sc = np.stack(scored)[inv]
            M[:, p] = sc
            total += w * sc
        if seconds is not None and moved is not None:
            M[:, P + 1] = seconds
            M[:, P + 2] = moved
        if bits is not None:
            M[:, P + 3] = bits
        unresolvable = (~resolvable).tolist()
        for j, shape in enumerate(shapes):
            shape.rejected = rejected[j].copy()
            shape.rejected_messages = [lists[j] for lists in per_plugin]
            shape.unresolvable = unresolvable[j]
        M[:, 0] = total
        sizes = table.sizes
        self._finish(
            shapes,
            snap,
            feasible,
            M,
            sizes if bits is not None else None,
            input_rows,
        )

    @staticmethod
    def _by_key(cache: LRU, keys: list[Any], compute: Callable[[int], Any]) -> tuple[list[Any], IntArray]:
        """The result for each distinct key (from ``cache``, or ``compute(j)`` for the first
        shape ``j`` with that key) and each shape's position among them."""
        position: dict[Any, int] = {}
        firsts: list[int] = []
        inv: list[int] = []
        for j, k in enumerate(keys):
            i = position.get(k)
            if i is None:
                i = position[k] = len(firsts)
                firsts.append(j)
            inv.append(i)
        results: list[Any] = []
        for k, j in zip(position, firsts, strict=True):
            r = cache.get(k)
            if r is None:
                r = compute(j)
                cache.put(k, r)
            results.append(r)
        return results, np.array(inv, dtype=np.intp)

    def _dataset_table(self, snap: Snapshot) -> DatasetTable:
        t = self._table
        if t is None or t.gen != self.gen or len(t) > self.component_cache:
            if t is not None and t.gen == self.gen:
                self.table_resets += 1
            t = self._table = DatasetTable(snap, self.gen)
        return t

    def _nodes(self, snap: Snapshot) -> FloatArray:
        nodes = self._node_shapes
        if nodes is None or nodes[0] != self.gen:
            nodes = self._node_shapes = (self.gen, node_matrix(snap))
        return nodes[1]

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

        Per job, in order: the shape's static results (``evaluate_many``), the capacity it may
        use (``_rows_with_holds``), the dynamic filters, quota admission (``_admission``),
        preemption when nothing fits (``_make_room``), scoring and selection with failover
        backups, the locality wait, the reservation (``_reserve``). With the shipped plugins the
        capacity filter and the balance score run fused, in one pass over the shape's rows."""
        self._refresh(snap)
        self.cycle += 1
        self._lowest = {}  # ``_lowest_priority``: per cluster (its running list, length seen, lowest)
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
        unplaced: list[Item] = []
        victims_all: list[Victim] = []
        gen, cycle = self.gen, self.cycle
        quota_check = book.check if self.quota is not None else None
        preempt_on = running is not None and (self.quota is None or self.quota.preemption)
        now = time.time() if now is None else now
        wait = self.locality_wait_max_s > 0
        unschedulable = Code.Unschedulable.value
        scheduled = 0
        self._now = now
        self._hold_shadows(free, allocated, now)
        self.ageing.trim(10 * max(limit, len(queue)))
        fused = self.fused
        for item in self._ordered(queue, snap, book, limit):
            job_id, _, attempt, shape, estimate = item
            if shape.gen != gen:
                self.evaluate_many([shape], snap)
            idx = shape.idx
            if not len(idx):
                status = Code.UnschedulableAndUnresolvable.value if shape.unresolvable else unschedulable
                decisions.append(CompactDecision(self, job_id, attempt, shape, status, t=now))
                unplaced.append(item)
                continue
            own = holds.get(job_id) if holds else None
            rows = self._rows_with_holds(job_id, shape, free, held, estimate) if holds else free[idx]
            if shape.failed_cycle == cycle and own is None:
                self._on_fail(job_id, shape, free, held)
                decisions.append(
                    CompactDecision(self, job_id, attempt, shape, unschedulable, free_rows=rows, t=now)
                )
                unplaced.append(item)
                continue
            # GPU jobs take the plugins' own path (the balance score counts the GPU share)
            ok, best = self._fit(shape, rows, fused and shape.demand_list[2] == 0.0)
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
            if ok is not None and not (ok[best] if best is not None else ok.any()):
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
                best = None
            pos, backup = self._choose(shape, rows, ok, best)
            c = int(idx[pos])
            if wait and not backup and not victims and self._waits_for_locality(job_id, shape, pos, now):
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
            self.ends.add(c, now + (estimate or 0.0), shape.demand, allocated[c])
            decisions.append(
                CompactDecision(self, job_id, attempt, shape, "Scheduled", c, rows, None, victims, now, epoch)
            )
            if victims:
                victims_all.extend(victims)
            scheduled += 1
        self._grant_holds(free, held)
        queue.requeue(unplaced)
        return BatchResult(decisions, scheduled, victims_all, unplaced)

    # ---- the cycle's named steps --------------------------------------------------------------
    def _fit(
        self, shape: Shape, rows: FloatArray, fused: bool
    ) -> tuple[npt.NDArray[np.bool_] | None, int | None]:
        """The dynamic filters on the free ``rows``: the feasible mask (None: no dynamic filter)
        and, fused, the best-scoring position already found (None: ``_choose`` scores).

        Fused (the shipped capacity filter and balance score, a job without GPUs): both in one
        pass with the plugins' arithmetic; free >= demand on every resource is
        (free - demand) >= 0 on every resource, and element by element (a reduction over an axis
        of two or three costs more than the arithmetic)."""
        demand = shape.demand
        if fused:
            minimum = np.minimum
            after = rows - demand
            left_cpu, left_mem = after[:, 0], after[:, 1]
            ok = minimum(minimum(left_cpu, left_mem), after[:, 2]) >= 0.0
            balance = (
                minimum(np.maximum(minimum(left_cpu / shape.cap_cpu, left_mem / shape.cap_mem), 0.0), 1.0)
                * 100.0
            )
            w = self.dynamic_scores[0][1]
            total = shape.static_total + (balance if w == 1.0 else w * balance)
            return ok, int(np.where(ok, total, -np.inf).argmax())
        mask: npt.NDArray[np.bool_] | None = None
        for f in self.dynamic_filters:
            m = f.fits(rows, shape.cap_rows, demand)  # type: ignore[attr-defined]
            mask = m if mask is None else mask & m
        return mask, None

    def _choose(
        self, shape: Shape, rows: FloatArray, ok: npt.NDArray[np.bool_] | None, best: int | None
    ) -> tuple[int, bool]:
        """The position (in ``shape.idx``) to place at, and whether it is a designated backup:
        a re-placed job's first feasible designated backup, else the highest total score (ties:
        topology order)."""
        if shape.backup_pos:  # failover: the first designated backup that is feasible now
            for pos in shape.backup_pos:
                if ok is None or ok[pos]:
                    return pos, True
        if best is not None:
            return best, False
        total = shape.static_total
        for plugin, w in self.dynamic_scores:
            total = total + w * plugin.score_free(rows, shape.cap_rows, shape.demand)  # type: ignore[attr-defined]
        if ok is not None:
            total = np.where(ok, total, -np.inf)
        return int(total.argmax()), False

    def _waits_for_locality(self, job_id: str | None, shape: Shape, pos: int, now: float) -> bool:
        """Delay scheduling: wait while moving the inputs to the chosen position would take longer
        than the job has waited (capped by ``locality_wait_max_s``)."""
        if not shape.has_transfer or job_id is None:
            return False
        extra = float(shape.static[len(shape.layout) + 1][pos]) - shape.best_transfer_s
        if extra <= 0:
            return False
        since = self.waiting_since.setdefault(job_id, now)
        return now - since < min(extra, self.locality_wait_max_s)

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

    def _ordered(self, queue: PendingQueue, snap: Snapshot, book: QuotaBook, limit: int) -> Iterable[Item]:
        """The cycle's order (``ordering.py``: priority, the age tier that grows with the wait,
        the least flexible job, DRF share, the runtime estimate, FIFO; or live DRF)."""
        if self.order not in SORTED_ORDERS:
            return queue.drain(book, limit)  # live DRF: shares move as the loop admits jobs
        # The order below is total (the sequence breaks every tie), so when every queued job is
        # taken the order they leave the queue in does not matter: take them at once.
        items = queue.take_all() if len(queue) <= limit else list(queue.drain(book, limit))
        to_evaluate: dict[int, Shape] = {}
        for item in items:
            if item[3].gen != self.gen:
                to_evaluate[id(item[3])] = item[3]
        if to_evaluate:
            self.evaluate_many(list(to_evaluate.values()), snap)
        share, order, waited, now = book.dominant_share, self.order, self.ageing.wait, self._now
        items.sort(
            key=lambda it: sort_key(
                order,
                it[3].priority or 0,
                waited(it[0], now),
                len(it[3].idx),
                share(it[3].tenant),
                it[4],
                it[1],
            )
        )
        return items

    def _hold_shadows(self, free: FloatArray, allocated: FloatArray, now: float) -> None:
        """Each held cluster's shadow time this cycle: when its held gang is expected to fit."""
        self.shadows = {
            c: self.ends.shadow(c, free[c], allocated[c], d, now) for c, d, _ in self.holds.values()
        }

    def _rows_with_holds(
        self, job_id: str, shape: Shape, free: FloatArray, held: FloatArray, estimate: float | None = None
    ) -> FloatArray:
        """Free capacity of the shape's clusters beyond what is held, plus the job's own hold;
        a job expected to end before a hold's shadow time may use that hold's part (backfill),
        but not in place of an equally local cluster: only when it fits on none of its clusters
        beyond the holds, or when the held cluster moves fewer of its input bytes than every
        cluster it fits on. A held cluster is the one place a starved gang can run; a job that
        could run as well elsewhere and backfills there instead lengthens the held gang's wait
        when it overruns its estimate, and, at high load, the backlog of every gang that only
        that cluster can hold."""
        idx = shape.idx
        rows: FloatArray = free[idx] - held[idx]
        own = self.holds.get(job_id)
        if own is not None:
            self.holds[job_id] = (own[0], own[1], self.cycle)
            at = np.searchsorted(idx, own[0])
            if at < len(idx) and idx[at] == own[0]:
                rows[at] += own[1]
        if not self.backfill:
            return rows
        fits = (rows + EPS >= shape.demand).all(axis=1)
        moved = shape.transfer[1] if shape.transfer is not None else None
        if not fits.any():
            least = np.inf  # nowhere else: the held part, as a last resort
        elif moved is None:
            return rows
        else:
            least = float(moved[fits].min())
        for c, shadow in self.shadows.items():
            # never the job's own hold twice (one hold per cluster: ``held[c]`` is that hold)
            if (own is None or c != own[0]) and may_backfill(self._now, estimate, shadow):
                at = np.searchsorted(idx, c)
                if at < len(idx) and idx[at] == c and (moved is None or float(moved[at]) < least):
                    rows[at] += held[c]
        return rows

    @staticmethod
    def _admission(
        shape: Shape, quota_check: Callable[[str, Sequence[float]], tuple[str | None, bool]] | None
    ) -> tuple[tuple[str, str], str] | None:
        """Quota admission: (the job-level reason, the status) when the job may not run now."""
        if shape.priority is None:
            reason = REASON_UNKNOWN_CLASS.format(name=shape.priority_class)
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
        self.ageing.forget(job_id)
        demand = shape.demand
        free[c] -= demand
        allocated[c] += demand
        book.admit(shape.tenant, shape.demand_list)
        if running is not None:
            running.setdefault(c, []).append(
                Running(job_id, c, shape.priority or 0, demand, shape.tenant, attempt)
            )

    def _on_fail(self, job_id: str | None, shape: Shape, free: FloatArray, held: FloatArray) -> None:
        """Count a capacity failure; after ``hold_after`` of them, once the job has waited
        ``hold_after_s`` and if it has at most ``hold_max_clusters`` clusters, the job is a
        candidate for a hold (``_grant_holds`` at the cycle's end)."""
        if job_id is None:
            return
        n = self.fail_counts.get(job_id, 0) + 1
        self.fail_counts[job_id] = n
        if (
            self.hold_after is None
            or n < self.hold_after
            or job_id in self.holds
            or len(shape.idx) > self.hold_max_clusters
            or self.ageing.wait(job_id, self._now) < self.hold_after_s
        ):
            return
        self.hold_candidates[job_id] = shape

    def _grant_holds(self, free: FloatArray, held: FloatArray) -> None:
        """At the cycle's end, the free hold slots go to the candidates that have waited longest
        (the order of the queue does not decide: under shortest-job-first, the job placed in a
        cycle releases its hold to the next failing job *after* it in the order, so the hold
        would walk up to ever longer jobs while short constrained gangs starve). Each hold goes
        on the cluster where the gang would fit soonest: the earliest shadow time by the ledger
        of expected ends, then the largest free share of its demand."""
        candidates, self.hold_candidates = self.hold_candidates, {}
        if not candidates or len(self.holds) >= self.max_holds:
            return
        wait = self.ageing.wait
        ranked = sorted(candidates.items(), key=lambda kv: (-wait(kv[0], self._now), kv[0]))
        for job_id, shape in ranked:
            if len(self.holds) >= self.max_holds:
                return
            if job_id in self.holds:
                continue
            best, shadow = self._hold_cluster(shape, free)
            if best >= 0:
                self.holds[job_id] = (best, shape.demand.copy(), self.cycle)
                self.shadows[best] = shadow
                held[best] += shape.demand

    def _hold_cluster(self, shape: Shape, free: FloatArray) -> tuple[int, float]:
        """The cluster to hold for ``shape`` (-1: none; one hold per cluster) and its shadow."""
        taken = {h[0] for h in self.holds.values()}
        demand = shape.demand
        best, best_key = -1, (np.inf, np.inf)
        for j, c in enumerate(shape.idx):
            c = int(c)
            if c in taken or (shape.cap_rows[j] < demand).any():
                continue
            need = demand > 0
            ratio = float((free[c][need] / demand[need]).min()) if need.any() else 1.0
            shadow = self.ends.shadow(c, free[c], shape.cap_rows[j] - free[c], demand, self._now)
            if (shadow, -ratio) < best_key:
                best, best_key = c, (shadow, -ratio)
        return best, float(best_key[0])

    # ---- preemption ---------------------------------------------------------------------------
    def _lowest_priority(self, running: dict[int, list[Running]], c: int) -> float:
        """The lowest priority running on cluster ``c`` (infinity when none), kept per cluster for
        the cycle and brought up to date with what was appended since (the loop appends each
        placement; a preemption replaces the list, which is then scanned again)."""
        jobs = running.get(c)
        if not jobs:
            return np.inf
        seen = self._lowest.get(c)
        if seen is not None and seen[0] is jobs and seen[1] <= len(jobs):
            low, start = seen[2], seen[1]
        else:
            low, start = np.inf, 0
        for r in jobs[start:]:
            if r.priority < low:
                low = r.priority
        self._lowest[c] = (jobs, len(jobs), low)
        return low

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
            and (self.quota.default is not None or bool(self.quota.tenants))  # else nobody borrows
            and book.within_nominal(shape.tenant, shape.demand_list)
        )
        too_small: npt.NDArray[np.bool_] = np.asarray((shape.cap_rows < shape.demand).any(axis=1))
        best: tuple[tuple[int, int, int, int], int, list[Running]] | None = None
        lenders: dict[str, bool] = {}  # tenant -> borrowing (the book does not change in here)

        def borrowing(tenant: str) -> bool:
            b = lenders.get(tenant)
            if b is None:
                b = lenders[tenant] = book.borrowing(tenant)
            return b

        lowest = self._lowest_priority
        for j, c in enumerate(shape.idx.tolist()):
            if too_small[j]:
                continue
            if not reclaim and lowest(running, c) >= prio:
                continue  # nothing running there has a lower priority: no victim (no scan)
            eligible = [
                r
                for r in running.get(c, ())
                if r.priority < prio or (reclaim and r.tenant != shape.tenant and borrowing(r.tenant))
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
