"""Job shapes: what the static plugins read of a job (tenant, priority, inputs, constraints,
resources, replicas, tolerance), interned in a bounded table so that jobs of one shape share the
static filters' and scores' results for a snapshot generation (``batch.py``)."""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from controller.jobs import Constraints, JobCreate, Resources
from controller.policies import QuotaPolicy
from controller.scheduler.framework import (
    FloatArray,
)
from controller.scheduler.kernels import StaticSource
from controller.scheduler.ordering import (
    ORDER_CONSTRAINED_FIRST as ORDER_CONSTRAINED_FIRST,
)
from controller.scheduler.ordering import ORDER_DRF as ORDER_DRF
from controller.scheduler.plugins.constraints import ConstraintsPlugin
from controller.scheduler.plugins.gang import REASON_GANG, REASON_NODE, GangFilter
from controller.scheduler.plugins.green import GreenScore
from controller.scheduler.plugins.health import HealthFilter
from controller.scheduler.plugins.residency import (
    ResidencyFilter,
)
from controller.scheduler.quota import effective_priority

IntArray = npt.NDArray[np.intp]


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


def constraints_json(c: Constraints) -> str:
    """``c.model_dump_json()``, the same text, from its fields by orjson: a validated
    ``Constraints`` holds only lists and dicts of strings (fields in declaration order, extra
    fields forbidden), and pydantic's serializer took 1.4-1.8 us a job where this takes 0.3."""
    return orjson.dumps(c.__dict__).decode()


def shape_key(spec: JobCreate, priority: int | None) -> tuple[Any, ...]:
    """What the scheduler reads of a job; jobs with equal keys get equal decisions. The runtime
    estimate is not in it: only the order reads it, and the queue keeps it per job."""
    c = spec.constraints
    ckey: Any = ()
    if c.allow_clusters or c.deny_clusters or c.prefer_clusters or c.require_labels or c.prefer_labels:
        ckey = constraints_json(c)
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
    # copies, not views of the epoch's store (kept on the shape, a view would keep the store)
    for name, w, raw in shape.static_scores:
        rounded = np.round(raw, 3)
        scores.append((name, w, raw.copy(), rounded, rounded.tolist()))
    body = StaticBody([ctx.names[int(c)] for c in idx], scores, None, None, None)
    if shape.transfer is not None:
        seconds, moved = shape.transfer
        body.transfer_bytes = moved.copy()
        body.transfer_seconds = np.round(seconds, 3)
        body.transfer_lists = (body.transfer_bytes.tolist(), body.transfer_seconds.tolist())
    shape.static_body = (shape.gen, body)
    return body


def static_height(scores: int, transfer: bool, bits: bool) -> int:
    """The static rows of a shape: the total, each static score, with ``transfer`` the transfer
    seconds and bytes, with ``bits`` the bits of the inputs moved."""
    return 1 + scores + (2 if transfer else 0) + (1 if bits else 0)


class StaticStore:
    """The static rows of every shape evaluated in one evaluation epoch, one flat array: each
    shape's rows (the total, each static score, the transfer seconds and bytes, the bits of the
    inputs moved) over its feasible clusters, as a C-ordered block from ``Shape.pos`` on, the
    shapes' blocks back to back. A shape keeps this store and its position and reads its rows as
    a view (``Shape.static``); a shape's block is contiguous, so what reads several shapes' rows
    (the encoder) reads a run of memory each. The scheduler starts a store per epoch
    (``BatchScheduler._new_epoch``) and retires the old one: no shape keeps a view, so nothing
    pins a retired block (a shape whose epoch is past is evaluated again before it is read)."""

    __slots__ = ("block", "used")

    def __init__(self, block: FloatArray) -> None:
        self.block: FloatArray | None = block
        self.used = 0

    def take(self, size: int) -> int:
        """Room for ``size`` more values (the block doubled as needed); where they start."""
        block = self.block
        assert block is not None, "a retired store"
        start = self.used
        if start + size > len(block):
            grown = np.empty(max(2 * len(block), start + size))
            grown[:start] = block[:start]
            self.block = block = grown
        self.used = start + size
        return start

    def retire(self) -> FloatArray | None:
        """End this store's epoch; its block (for another store, when nothing else holds it)."""
        block = self.block
        self.block = None
        return block


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
        "_input_rows",
        "_sizes",
        "backup_pos",
        "best_transfer_s",
        "cap_cpu",
        "cap_mem",
        "cap_rows",
        "ckey",
        "cpu",
        "delay_tolerant",
        "demand_list",
        "failed_cycle",
        "gen",
        "gpu",
        "has_transfer",
        "idx",
        "inputs",
        "key",
        "layout",
        "memory_gib",
        "origin",
        "pos",
        "priority",
        "priority_class",
        "rejected",
        "rejected_messages",
        "replicas",
        "runtime",
        "static_body",
        "static_groups",
        "store",
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
        self.replicas: int = spec.replicas
        # per replica (the key's own values, not copies; gpu fractional)
        self.cpu, self.memory_gib, self.gpu = cpu, memory_gib, gpu = key[4], key[5], key[6]
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
        # rows over ``idx`` (``static``, in the epoch's ``store`` from ``pos`` on): the
        # total, each static score (``layout``: their names and weights), then, with
        # ``has_transfer``, the transfer seconds and bytes, and, with ``input_sizes``, the bits
        # of the inputs moved to each cluster
        self.store: StaticStore | None = None
        self.pos = 0
        self.layout: tuple[tuple[str, float], ...] = ()
        self.has_transfer = False
        # the data-set table's sizes and the inputs' rows in it (``input_sizes``): two fields,
        # not a pair (one object fewer to make and to free a shape: a million pending shapes)
        self._sizes: list[float] | None = None
        self._input_rows: list[int] | None = None
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
        sizes, rows = self._sizes, self._input_rows
        return None if sizes is None or rows is None else [sizes[r] for r in rows]

    @property
    def resources(self) -> tuple[float, float, float]:
        """Per replica: cpu, memory GiB, GPUs (fractional)."""
        return (self.cpu, self.memory_gib, self.gpu)

    @property
    def static(self) -> FloatArray:
        """The static rows over ``idx`` (a view of the epoch's store)."""
        if self.store is None:
            return _EMPTY_STATIC
        block, pos = self.static_at
        height, k = self.static_height, len(self.idx)
        return block[pos : pos + height * k].reshape(height, k)

    @property
    def static_at(self) -> tuple[FloatArray, int]:
        """The epoch's store and where this shape's rows start in it (its first row, the
        static total, first); raises for a shape not evaluated in this epoch."""
        store = self.store
        block = store.block if store is not None else None
        if block is None:
            raise RuntimeError(
                "a shape's static rows were read after its evaluation epoch ended (or before it was evaluated)"
            )
        return block, self.pos

    @property
    def static_height(self) -> int:
        """The number of static rows (``static``)."""
        return static_height(len(self.layout), self.has_transfer, self._sizes is not None)

    @property
    def static_total(self) -> FloatArray:
        """The static scores' weighted sum over ``idx`` (the first row of ``static``)."""
        return self.static[0]

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


def static_source(shapes: Sequence[Shape]) -> StaticSource:
    """Where the static rows of ``shapes`` are, read as if side by side (each shape's columns in
    turn) at the smallest height among them (shapes evaluated with and without the bits of the
    inputs moved): in place in the epoch's store when they share it, else their rows joined."""
    lens = np.fromiter((len(s.idx) for s in shapes), dtype=np.intp, count=len(shapes))
    offs = np.cumsum(lens) - lens
    first = shapes[0]
    store, transfer = first.store, first.has_transfer
    block = store.block if store is not None else None
    if block is None or any(s.store is not store or s.has_transfer is not transfer for s in shapes):
        height = min(s.static_height for s in shapes)
        joined = np.concatenate([s.static[:height] for s in shapes], axis=1)
        strides = np.full(len(shapes), joined.shape[1], dtype=np.intp)
        return StaticSource(joined.ravel(), offs, strides, offs, height)
    height = static_height(len(first.layout), transfer, all(s._sizes is not None for s in shapes))
    starts = np.fromiter((s.pos for s in shapes), dtype=np.intp, count=len(shapes))
    return StaticSource(block, starts, lens, offs, height)
