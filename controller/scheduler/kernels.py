"""Compiled kernels of the batch loop's per-job steps, of its ledger of expected ends and its
preemption, and of the stored decisions' encoder (numba, compiled on first use and cached on disk
beside this module). The two called once per job
(``fit_balance``, ``reserve``) are called as compiled, without a Python wrapper (a call costs
about 0.15 µs more through one), and so are ``locality`` and ``gather_static``, which write
into the arrays they are given; the others through a typed wrapper that allocates their output.

A job's dynamic step runs on its few dozen statically feasible clusters: as numpy, each of its
dozen array operations costs about a microsecond of call overhead for a few nanoseconds of
arithmetic; compiled, the whole step is one pass over the rows (docs/benchmarks.md, issue 15).

Each kernel does the arithmetic of the numpy it replaced (the plugins', the ledger's, the
preemption's) in the same order, element by element, so its result is the one numpy gives (IEEE,
no fast-math; NaN handled as ``np.minimum`` and ``np.argmax`` handle it);
tests/scheduler/test_kernels.py checks that on random, degenerate and boundary rows against the
numpy forms, and tests/scheduler/test_parity.py checks whole cycles against the plugins' own
kernels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from typing import Any, NamedTuple

import numpy as np
from numba import njit

from controller.scheduler.framework import BoolArray, FloatArray


def triples(values: Iterable[Sequence[float]], n: int) -> FloatArray:
    """``n`` vectors of three numbers (demands, per-replica resources) as an (n, 3) float array:
    the same values as ``np.array(list(values), dtype=np.float64)``, in half its time (a list of
    tuples makes numpy discover the shape and convert item by item)."""
    out: FloatArray = np.fromiter(chain.from_iterable(values), dtype=np.float64, count=3 * n).reshape(n, 3)
    return out


def _compiled(fn: Callable[..., Any]) -> Any:
    """``fn`` compiled (no Python objects, numpy's floating-point error model, the GIL released),
    its machine code cached on disk: beside this module, else in the user's cache directory
    (a read-only image: ``$HOME/.cache``); where neither can be written, compiled per process."""
    options: dict[str, Any] = {"nogil": True, "error_model": "numpy"}
    try:
        return njit(cache=True, **options)(fn)
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        return njit(**options)(fn)


@_compiled
def _minimum(a: float, b: float) -> float:  # np.minimum: NaN when either is
    if a != a:
        return a
    if b != b:
        return b
    return a if a <= b else b


@_compiled
def _maximum(a: float, b: float) -> float:  # np.maximum: NaN when either is
    return -_minimum(-a, -b)


@_compiled
def fit_balance(
    rows: FloatArray,
    demand: FloatArray,
    cap_cpu: FloatArray,
    cap_mem: FloatArray,
    totals: FloatArray,
    start: int,
    weight: float,
) -> int:
    """The capacity filter and the balance score of a job without GPUs, fused: the position of
    the highest ``static_total + weight * balance`` among the rows the job fits on (ties: the
    first), -1 when it fits on none. The same as the numpy
    ``np.where(fits, total, -inf).argmax()`` followed by ``fits[best]`` (``-1`` when that is
    False): ``rows`` is free capacity (cpu, memory, GPUs) of the job's feasible clusters,
    ``cap_cpu``/``cap_mem`` their capacities, ``totals[start:start + len(rows)]`` their weighted
    static scores (a shape's first static row, in the epoch's store: ``shapes.StaticStore``)."""
    n = rows.shape[0]
    if n == 0:
        return -1
    d0, d1, d2 = demand[0], demand[1], demand[2]
    best = -1
    best_value = 0.0
    best_ok = False
    for i in range(n):
        left_cpu = rows[i, 0] - d0
        left_mem = rows[i, 1] - d1
        ok = left_cpu >= 0.0 and left_mem >= 0.0 and rows[i, 2] - d2 >= 0.0
        if ok:
            share = _minimum(left_cpu / cap_cpu[i], left_mem / cap_mem[i])
            balance = _minimum(_maximum(share, 0.0), 1.0) * 100.0
            value = totals[start + i] + (balance if weight == 1.0 else weight * balance)
            if value != value:  # np.argmax: the first NaN is the maximum
                return i
        else:
            value = -np.inf
        if best < 0 or value > best_value:
            best, best_value, best_ok = i, value, ok
    return best if best_ok else -1


@_compiled
def _normalize_row(values: FloatArray, feasible: BoolArray, out: FloatArray) -> None:
    """``normalize_lower_is_better`` of a row of ``values`` (one job's, over the clusters): its
    feasible values mapped to 0..100, its lowest scoring 100 (a row whose feasible values are
    all equal: 100 each), the rest 0. The numpy of the same, element by element: ``lo``/``hi``
    the feasible minimum and maximum (NaN when one is NaN, as ``np.min``), ``100 * (hi - v) /
    (hi - lo)``, a span of at most 1e-12 counting as flat."""
    n = values.shape[0]
    lo, hi = np.inf, -np.inf
    for c in range(n):
        if feasible[c]:
            lo = _minimum(lo, values[c])
            hi = _maximum(hi, values[c])
    span = hi - lo
    flat = span <= 1e-12
    for c in range(n):
        if not feasible[c]:
            out[c] = 0.0
        elif flat:
            out[c] = 100.0
        else:
            out[c] = 100.0 * (hi - values[c]) / span


@_compiled
def locality(
    ids: Any,
    seconds: FloatArray,
    moved: FloatArray,
    feasible: BoolArray,
    bits: bool,
    M: FloatArray,
    p: int,
    P: int,
) -> None:
    """The locality score's rows of ``M`` (jobs x results x clusters) for every job at once, in
    one pass per job: row ``P + 1`` the transfer seconds (the slowest input's, ``np.maximum``
    from 0 over the inputs in order), row ``P + 2`` the bytes moved (summed in input order from
    0), with ``bits`` row ``P + 3`` the bits of the inputs moved (bit k: input k's bytes moved
    are not 0; at most eight inputs), and row ``p`` the score, ``0.5 * normalize(seconds) +
    0.5 * normalize(bytes)`` over the feasible clusters (``_normalize_row``). ``ids``: each
    job's inputs (``np.intp``) as rows of ``seconds`` and ``moved`` (data sets x clusters; row 0
    pads, all 0). The same values as the numpy it replaced (the rows gathered by job,
    ``np.maximum`` and sums over the inputs, the bits, the normalisation row by row:
    tests/scheduler/test_kernels.py)."""
    J, K = ids.shape
    n = seconds.shape[1]
    a = np.empty(n)
    b = np.empty(n)
    for j in range(J):
        for c in range(n):
            s = 0.0
            m = 0.0
            code = 0
            for k in range(K):
                r = ids[j, k]
                s = _maximum(s, seconds[r, c])
                m += moved[r, c]
                if bits and moved[r, c] != 0.0:
                    code |= 1 << k
            M[j, P + 1, c] = s
            M[j, P + 2, c] = m
            if bits:
                M[j, P + 3, c] = code
        _normalize_row(M[j, P + 1], feasible[j], a)
        _normalize_row(M[j, P + 2], feasible[j], b)
        for c in range(n):
            M[j, p, c] = 0.5 * a[c] + 0.5 * b[c]


@_compiled
def gather_static(M: FloatArray, idx: Any, offsets: Any, block: FloatArray, start: int) -> None:
    """Each shape's static rows over its feasible clusters into the epoch's store: shape ``j``'s
    rows of ``M`` (shapes x results x clusters) at its clusters ``idx[offsets[j]:offsets[j + 1]]``
    as a C-ordered (results, clusters) block at ``block[start + H * offsets[j]:]`` (``H`` the
    results; ``M[j].take(its idx, axis=1)``, for every shape of a chunk in one call)."""
    J, H, _ = M.shape
    for j in range(J):
        o0, o1 = offsets[j], offsets[j + 1]
        k = o1 - o0
        at = start + H * o0
        for h in range(H):
            for i in range(k):
                block[at + h * k + i] = M[j, h, idx[o0 + i]]


class StaticSource(NamedTuple):
    """Where a chunk's shapes keep their static rows, read in place: shape ``s``'s row ``h`` at
    column ``i`` is ``src[starts[s] + h * strides[s] + i]``, and its columns come ``offs[s]``-th
    among the chunk's columns side by side; ``height``: the rows every one of them has. The
    epoch's store (``shapes.static_source``), or a block (``of_block``)."""

    src: FloatArray
    starts: Any
    strides: Any
    offs: Any
    height: int

    @classmethod
    def of_block(cls, block: FloatArray, job_pos: Any) -> StaticSource:
        """A (rows, columns) block whose column ``t`` is shape ``job_pos[t]``'s (ascending)."""
        shapes = int(job_pos[-1]) + 1 if len(job_pos) else 0
        offs = np.searchsorted(job_pos, np.arange(shapes)).astype(np.intp)
        flat = np.ascontiguousarray(block, dtype=np.float64)
        return cls(flat.ravel(), offs, np.full(shapes, flat.shape[1], dtype=np.intp), offs, flat.shape[0])


@_compiled
def _addresses(starts: Any, strides: Any, offs: Any, job_pos: Any, kept: Any, base: Any, stride: Any) -> None:
    for k in range(kept.shape[0]):
        t = kept[k]
        s = job_pos[t]
        base[k] = starts[s] + t - offs[s]
        stride[k] = strides[s]


def addresses(source: StaticSource, kept: Any, job_pos: Any) -> tuple[Any, Any]:
    """Per kept column ``t`` (shape ``job_pos[t]``'s): where its row 0 is in ``source.src``, and
    the step to its next row."""
    base = np.empty(len(kept), dtype=np.intp)
    stride = np.empty(len(kept), dtype=np.intp)
    _addresses(source.starts, source.strides, source.offs, job_pos, kept, base, stride)
    return base, stride


@_compiled
def _row_at(src: FloatArray, base: Any, stride: Any, h: int, out: FloatArray) -> None:
    for k in range(base.shape[0]):
        out[k] = src[base[k] + h * stride[k]]


def source_row(source: StaticSource, kept: Any, job_pos: Any, h: int) -> FloatArray:
    """Row ``h`` of the static rows at the ``kept`` columns (``block[h].take(kept)`` of the
    shapes' rows joined, without joining them)."""
    if not 0 <= h < source.height:
        raise IndexError(f"static row {h} of {source.height}")
    base, stride = addresses(source, kept, job_pos)
    out = np.empty(len(kept))
    _row_at(source.src, base, stride, h, out)
    return out


@_compiled
def reserve(free: FloatArray, allocated: FloatArray, c: int, demand: FloatArray) -> None:
    """A placement on cluster ``c``: ``free[c] -= demand`` and ``allocated[c] += demand`` (in
    place; one call instead of two numpy row updates, a third of the time)."""
    for r in range(3):
        free[c, r] -= demand[r]
        allocated[c, r] += demand[r]


# ---- the ledger of expected ends and preemption (controller/scheduler/backfill.py, batch.py) ---


LEDGER_EPS = 1e-9  # backfill.EPS: a surplus at or below it is gone


@_compiled
def _ledger_drops(demands: FloatArray, surplus0: FloatArray, drop: BoolArray) -> None:
    n, R = demands.shape
    closed = np.zeros(R, dtype=np.bool_)  # a surplus gone from the start closes at row 0
    taken = np.zeros(R)  # what the rows dropped before row i add up to, summed in row order
    for i in range(n):
        while True:
            goes = True
            for r in range(R):
                if demands[i, r] > 0.0 and closed[r]:
                    goes = False
            closing = False
            for r in range(R):
                if not closed[r]:
                    own = demands[i, r] if goes else 0.0
                    # the surplus before row i as numpy's cumulative sums give it
                    if surplus0[r] - ((taken[r] + own) - own) <= LEDGER_EPS:
                        closed[r] = True
                        closing = True
            if not closing:
                break
        drop[i] = goes
        if goes:
            for r in range(R):
                taken[r] += demands[i, r]


def ledger_drops(demands: FloatArray, allocated: FloatArray) -> BoolArray:
    """Which of a ledger's ``demands`` (rows, by expected end) ``EndLedger.reconcile`` drops: row
    i goes when the surplus before it (what the ledger holds beyond ``allocated``, less the rows
    dropped before it) is above ``LEDGER_EPS`` in every resource the row asks for. Once a
    resource's surplus is gone it stays gone (demands are not negative): no later row asking for
    it goes. One pass over the rows, with the surplus before each row computed as the row
    sums of the earlier vectorised form gave it (``surplus0 - (taken + own - own)``), so the
    rows dropped are the same to the last bit (tests/scheduler/test_kernels.py)."""
    drop = np.empty(len(demands), dtype=np.bool_)
    _ledger_drops(demands, demands.sum(axis=0) - allocated, drop)
    return drop


@_compiled
def _victims(
    pri: FloatArray,
    ten: Any,
    dem: FloatArray,
    perm: Any,
    priority: float,
    own: int,
    lends: BoolArray,
    reclaim: bool,
    room0: FloatArray,
    need: FloatArray,
    out: Any,
) -> int:
    k, R = dem.shape
    room = np.zeros(R)
    may = np.zeros(k, dtype=np.bool_)  # the candidates
    for i in range(k):  # their demand summed in list order from zeros
        if pri[i] < priority or (reclaim and lends[ten[i]] and ten[i] != own):
            may[i] = True
            for r in range(R):
                room[r] += dem[i, r]
    if not may.any():
        return -2
    for r in range(R):
        room[r] = room0[r] + room[r]
        if room[r] < need[r]:
            return -1
    n = 0
    for i in perm:  # the candidates from the highest priority down: each reprieved if room holds
        if not may[i]:
            continue
        keeps = True
        for r in range(R):
            if not room[r] - dem[i, r] >= need[r]:
                keeps = False
        if keeps:
            for r in range(R):
                room[r] = room[r] - dem[i, r]
        else:
            out[n] = i
            n += 1
    return n


NO_LENDS = np.zeros(1, dtype=np.bool_)


def victims(
    jobs: tuple[FloatArray, Any, FloatArray, Any],
    priority: float,
    own: int,
    lends: BoolArray | None,
    free: FloatArray,
    need: FloatArray,
) -> Any:
    """Preemption on one cluster, whose placed jobs are given in list order (``jobs``: their
    priorities, tenant indexes and demand rows, and the order to try them in, highest priority
    first, as positions). The candidates are the jobs below ``priority`` and, with ``lends`` (per
    tenant index: borrowing), other tenants' (not ``own``) borrowed work. None when there are
    none, or when ``free`` plus all their demand is less than ``need`` in some resource; else the
    victims' positions in the try order: walking the candidates in it, each is reprieved while
    the room left without it still holds ``need``. The arithmetic of the numpy it replaced,
    operation for operation (tests/scheduler/test_kernels.py)."""
    out = np.empty(len(jobs[0]), dtype=np.intp)
    reclaim = lends is not None
    n = _victims(*jobs, float(priority), int(own), lends if reclaim else NO_LENDS, reclaim, free, need, out)
    return None if n < 0 else out[:n]


# ---- the stored decisions' columns (controller/scheduler/stored.py) --------------------------
# Over one row per (decision, statically feasible cluster) of a chunk of a cycle's decisions, with
# the shipped capacity filter and balance score (the encoder runs only for those: ``ctx.fused``).


# A cluster a decision does not list: its code in two bytes, and in one (``group_counts``)
UNLISTED_WIDE = 0xFFFF
UNLISTED = 255


class Rows(NamedTuple):
    """One row per (decision, statically feasible cluster) of a chunk of decisions, decisions in
    order: the decision's position in the chunk (``job``) and among the decisions with rows
    (``job_pos``: it indexes the per-decision ``demand``, ``chosen`` cluster and whether a
    job-level ``reason`` rejects it), the cluster (``idx``), its free capacity and capacity."""

    job: Any
    job_pos: Any
    idx: Any
    free: FloatArray
    cap: FloatArray
    demand: FloatArray
    chosen: Any
    reason: BoolArray


@_compiled
def _listing(G: Any, rows: Rows, p_dyn: int, p_job: int, listed: BoolArray) -> None:
    free, cap, demand = rows.free, rows.cap, rows.demand
    for t in range(rows.idx.shape[0]):
        w, j, c = rows.job_pos[t], rows.job[t], rows.idx[t]
        dc, dm, dg = demand[w, 0], demand[w, 1], demand[w, 2]
        fc, fm, fg = free[t, 0], free[t, 1], free[t, 2]
        code = 0  # CapacityFilter.classify: the later rule wins
        if fg < dg:
            code = 3
        if fm < dm:
            code = 2
        if fc < dc:
            code = 1
        if cap[t, 0] < dc or cap[t, 1] < dm or cap[t, 2] < dg:
            code = 4
        is_chosen = rows.chosen[w] == c
        rejected = rows.reason[w]
        if code > 0 and not is_chosen:
            G[j, c] = (p_dyn << 8) | code
        if rejected and code == 0:
            G[j, c] = (p_job << 8) | 1
        fits = fc >= dc and fm >= dm and fg >= dg  # CapacityFilter.fits
        ok = (fits or is_chosen) and not rejected
        listed[t] = ok
        if not ok and G[j, c] == 0:
            G[j, c] = UNLISTED_WIDE


def listing_codes(G: Any, rows: Rows, p_dyn: int, p_job: int) -> BoolArray:
    """Per row: the capacity filter's code written into ``G`` (decisions x clusters,
    ``p_dyn << 8 | code``) where it rejects a cluster other than the chosen one;
    ``p_job << 8 | 1`` where a job-level reason rejects a cluster that fits; 0xFFFF for a
    cluster not listed and not otherwise coded. Returns which rows are listed: the job fits
    there (or it is the chosen cluster) and no job-level reason rejects it."""
    listed = np.empty(len(rows.idx), dtype=np.bool_)
    _listing(G, rows, p_dyn, p_job, listed)
    return listed


@_compiled
def _groups(G: Any, small: BoolArray, G8: Any, out_job: Any, out_code: Any, out_count: Any) -> int:
    D, n = G.shape
    counts = np.zeros(256, dtype=np.int64)
    k = 0
    for j in range(D):
        fits = True
        for c in range(n):
            g = G[j, c]
            if g != 0 and g != UNLISTED_WIDE and ((g >> 8) > 6 or (g & 0xFF) > 31):
                fits = False
                break
        small[j] = fits
        if not fits:
            for c in range(n):
                G8[j, c] = 0
            continue
        counts[:] = 0
        for c in range(n):
            g = G[j, c]
            b = UNLISTED if g == UNLISTED_WIDE else ((g >> 8) << 5) | (g & 0xFF)
            G8[j, c] = b
            counts[b] += 1
        for b in range(1, UNLISTED):  # neither listed (0) nor unlisted
            if counts[b] > 0:
                out_job[k] = j
                out_code[k] = ((b >> 5) << 8) | (b & 31)
                out_count[k] = counts[b]
                k += 1
    return k


def group_counts(G: Any) -> tuple[BoolArray, Any, Any, Any, Any]:
    """For each decision's codes (a row of ``G``, ``plugin << 8 | reason``, 0 listed, 0xFFFF not
    listed): whether every code fits a byte (``plugin << 5 | reason``: plugin <= 6, reason <=
    31; ``small``), those bytes (0xFFFF as 255; a row that does not fit: zeros), and, for the
    rows that fit, each code's count: (decision, code, count) in decision then code order."""
    D, n = G.shape
    small = np.empty(D, dtype=np.bool_)
    G8 = np.empty((D, n), dtype=np.uint8)
    size = D * min(n, 254)
    jobs, codes, counts = (np.empty(size, dtype=np.int64) for _ in range(3))
    k = int(_groups(G, small, G8, jobs, codes, counts))
    return small, G8, jobs[:k], codes[:k], counts[:k]


@_compiled
def _columns(
    src: FloatArray,
    base: Any,
    stride: Any,
    kept: Any,
    rows: Rows,
    P: int,
    order: Any,
    weights: FloatArray,
    transfers: bool,
    out: Any,
) -> None:
    # Column by column (each a pass over the kept rows, reading one row of ``block`` and writing
    # one of ``values``): row by row every value was a cache line of its own (23 % slower).
    values, lo, hi, whole, finite = out
    free, cap, demand, job_pos = rows.free, rows.cap, rows.demand, rows.job_pos
    n_all = P + 1
    C = lo.shape[0]
    K = kept.shape[0]
    balance = np.empty(K)
    for k in range(K):  # BalanceScore.score_free
        t = kept[k]
        w = job_pos[t]
        dc, dm, dg = demand[w, 0], demand[w, 1], demand[w, 2]
        share = _minimum((free[t, 0] - dc) / cap[t, 0], (free[t, 1] - dm) / cap[t, 1])
        if dg > 0:
            cap_gpu = cap[t, 2] if cap[t, 2] > 0 else 1.0
            share = _minimum(share, (free[t, 2] - dg) / cap_gpu)
        balance[k] = _minimum(_maximum(share, 0.0), 1.0) * 100.0
    total = np.zeros(K)  # each row's weighted sum, its scores added in ``order``
    for i in range(n_all):
        p = order[i]
        weight = weights[p]
        column = values[i]
        if p == P:
            for k in range(K):
                x = balance[k]
                total[k] += weight * x
                column[k] = np.rint(x * 1000.0)
        else:
            for k in range(K):
                x = src[base[k] + (1 + p) * stride[k]]
                total[k] += weight * x
                column[k] = np.rint(x * 1000.0)
    column = values[n_all]
    for k in range(K):
        column[k] = np.rint(total[k] * 1000.0)
    if transfers:
        column = values[n_all + 1]
        for k in range(K):
            column[k] = np.rint(src[base[k] + (P + 1) * stride[k]] * 1000.0)
    for k in range(K):
        finite[k] = True
    for i in range(C):
        column = values[i]
        for k in range(K):
            if not np.isfinite(column[k]):
                finite[k] = False
    for i in range(C):  # over the finite rows
        column = values[i]
        least, most, whole_i = np.inf, -np.inf, True
        for k in range(K):
            if not finite[k]:
                continue
            r = column[k]
            if r < least:
                least = r
            if r > most:
                most = r
            # a multiple of 1000 (what matters: values in 0..255,000, where r / 1000 is an
            # integer exactly when it is one; fmod costs twenty times more)
            if whole_i and np.floor(r / 1000.0) * 1000.0 != r:
                whole_i = False
        lo[i], hi[i], whole[i] = least, most, whole_i


class Columns(NamedTuple):
    """The listed rows' columns in thousandths, one row of ``values`` per column; per column the
    least and greatest value and whether every value is a whole multiple of 1000, over the
    finite rows; per listed row whether every value is finite."""

    values: FloatArray
    lo: FloatArray
    hi: FloatArray
    whole: BoolArray
    finite: BoolArray


def score_columns(
    source: StaticSource,
    kept: Any,
    rows: Rows,
    P: int,
    order: Sequence[int],
    weights: Sequence[float],
    transfers: bool,
) -> Columns:
    """The ``kept`` rows' columns (``np.rint(x * 1000)``): each score in ``order`` (the ``P``
    static scores from the static rows 1..P, then the balance score, as
    ``BalanceScore.score_free``), the weighted total (summed in ``order``), and with
    ``transfers`` the transfer seconds (static row P + 1). The static rows are read where they
    are (``source``): copying a chunk's rows side by side first was about 80 MB of copying a
    cycle of 10,000 decisions."""
    if source.height < P + (2 if transfers else 1):
        raise IndexError(f"{source.height} static rows, the scores need {P + (2 if transfers else 1)}")
    C, K = P + 2 + (1 if transfers else 0), len(kept)
    out = Columns(
        np.empty((C, K)), np.empty(C), np.empty(C), np.empty(C, dtype=np.bool_), np.empty(K, dtype=np.bool_)
    )
    order_ = np.asarray(order, dtype=np.int64)
    base, stride = addresses(source, kept, rows.job_pos)
    _columns(
        source.src,
        base,
        stride,
        kept,
        rows,
        P,
        order_,
        np.asarray(weights, dtype=np.float64),
        transfers,
        tuple(out),
    )
    return out


DISPATCHERS = (
    fit_balance,
    locality,
    gather_static,
    _addresses,
    _row_at,
    reserve,
    _ledger_drops,
    _victims,
    _listing,
    _groups,
    _columns,
)


def warm_up() -> None:
    """Compile every kernel (or load it from the disk cache) for the argument types the scheduler
    passes, before the first cycle: compiling takes seconds and holds the GIL, and in a process
    that also serves the API and hosts agents (``yiwang up``, the demo) their heartbeats would
    wait for it. tests/scheduler/test_kernels.py checks that a cycle and its stored decisions
    compile nothing more."""
    free, demand, column = np.zeros((2, 3)), np.zeros(3), np.zeros(2)
    fit_balance(free, demand, column.copy(), column.copy(), column.copy(), 0, 1.0)
    for bits in (False, True):
        locality(
            np.zeros((1, 1), np.intp),
            np.zeros((1, 2)),
            np.zeros((1, 2)),
            np.ones((1, 2), np.bool_),
            bits,
            np.zeros((1, 5, 2)),
            1,
            1,
        )
    reserve(free, free.copy(), 0, demand)
    ints = np.zeros(2, dtype=np.intp)
    gather_static(np.zeros((1, 2, 2)), ints, ints, np.zeros(8), 0)
    ledger_drops(free, demand)
    two = np.zeros(2, dtype=np.intp)
    for lends in (None, np.zeros(2, dtype=np.bool_)):
        victims((column.copy(), two, free, two), 1.0, 0, lends, demand, demand)
    G = np.zeros((1, 2), dtype=np.uint16)
    ints = np.zeros(2, dtype=np.int64)
    rows = Rows(
        ints,
        ints.copy(),
        ints.copy(),
        free,
        free.copy(),
        np.zeros((1, 3)),
        ints[:1].copy(),
        np.zeros(1, np.bool_),
    )
    listing_codes(G, rows, 1, 2)
    group_counts(G)
    for transfers in (False, True):
        source = StaticSource.of_block(np.zeros((6, 2)), ints)
        score_columns(source, ints.copy(), rows, 3, [0, 1, 2, 3], [1.0] * 4, transfers)
        source_row(source, ints.copy(), ints, 5)
