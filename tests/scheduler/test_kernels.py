"""The compiled kernels against the plugins' own numpy kernels, row for row (controller/scheduler/kernels.py)."""

from __future__ import annotations

import numpy as np
import pytest

from controller.scheduler.kernels import (
    Rows,
    StaticSource,
    _normalize_row,
    fit_balance,
    locality,
    reserve,
    score_columns,
    triples,
)
from controller.scheduler.plugins.balance import BalanceScore
from controller.scheduler.plugins.capacity import CapacityFilter


def reference(rows: np.ndarray, cap: np.ndarray, demand: np.ndarray, static: np.ndarray, w: float) -> int:
    """What the batch loop computed before the kernel: the capacity filter's mask and the balance
    score (the plugins), the first highest total among the rows that fit, -1 when none does."""
    with np.errstate(all="ignore"):
        ok = CapacityFilter().fits(rows, cap, demand)
        total = static + w * BalanceScore().score_free(rows, cap, demand)
        best = int(np.where(ok, total, -np.inf).argmax())
    return best if ok[best] else -1


def case(rng: np.random.Generator, n: int, tight: bool) -> tuple[np.ndarray, ...]:
    cap = rng.choice([8.0, 16.0, 64.0, 256.0], size=(n, 1)) * np.array([1.0, 4.0, 0.0])
    free = cap * rng.uniform(-0.1, 1.0, size=(n, 3))
    demand = np.array([rng.uniform(0.1, 40.0 if tight else 4.0), rng.uniform(0.1, 100.0), 0.0])
    static = (
        rng.choice([0.0, 12.5, 50.0, 87.5], size=n) if rng.random() < 0.5 else rng.uniform(0, 300, size=n)
    )
    return free, cap, demand, static


@pytest.mark.parametrize("seed", range(40))
def test_fit_balance_equals_the_plugins(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for n in (1, 2, 7, 33, 98):
        for tight in (False, True):
            free, cap, demand, static = case(rng, n, tight)
            w = 1.0 if seed % 2 else 0.5
            got = fit_balance(free, demand, cap[:, 0].copy(), cap[:, 1].copy(), np.r_[7.0, static], 1, w)
            assert got == reference(free, cap, demand, static, w)


def test_fit_balance_ties_and_degenerate_rows() -> None:
    cap = np.array([[8.0, 32.0, 0.0]] * 4)
    free = np.array([[4.0, 16.0, 0.0]] * 4)
    demand = np.array([1.0, 1.0, 0.0])
    static = np.zeros(4)

    def both(free: np.ndarray, cap: np.ndarray, static: np.ndarray) -> tuple[int, int]:
        got = fit_balance(free, demand, cap[:, 0].copy(), cap[:, 1].copy(), static, 0, 1.0)
        return got, reference(free, cap, demand, static, 1.0)

    assert both(free, cap, static) == (0, 0)  # ties: the first
    assert fit_balance(free[:0], demand, cap[:0, 0].copy(), cap[:0, 1].copy(), static[:0], 0, 1.0) == -1
    nothing = free.copy()
    nothing[:, 0] = 0.5
    assert both(nothing, cap, static) == (-1, -1)  # fits nowhere
    nan = free.copy()
    nan[0, 0] = np.nan  # a NaN free row never fits
    assert both(nan, cap, static) == (1, 1)
    nan_score = static.copy()
    nan_score[2] = np.nan  # a NaN total is the maximum (np.argmax), the first one
    nan_score[3] = np.nan
    assert both(free, cap, nan_score) == (2, 2)
    minus_inf = np.full(4, -np.inf)
    minus_inf[3] = 0.0
    assert both(nothing, cap, minus_inf) == (-1, -1)
    zero_cap = cap.copy()
    zero_cap[1, 0] = 0.0  # an infinite share (0 capacity): clipped to 100 as numpy does
    assert both(free, zero_cap, static) == (1, 1)
    exact = free.copy()
    exact[2] = [1.0, 1.0, 0.0]  # demand equal to free: fits, balance 0
    high = static.copy()
    high[2] = 1000.0
    assert both(exact, cap, high) == (2, 2)


def normalize_rows(values: np.ndarray, feasible: np.ndarray) -> np.ndarray:
    """The kernel's normalisation (``kernels._normalize_row``, what ``locality`` runs on each
    job's transfer seconds and bytes) on every row."""
    out = np.empty_like(values)
    for j in range(values.shape[0]):
        _normalize_row(values[j], feasible[j], out[j])
    return out


def reference_normalize(values: np.ndarray, feasible: np.ndarray) -> np.ndarray:
    """The numpy the batch scheduler ran before the kernel (and, row by row, the locality
    plugin's ``normalize_lower_is_better``)."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        lo = np.where(feasible, values, np.inf).min(axis=1, keepdims=True)
        hi = np.where(feasible, values, -np.inf).max(axis=1, keepdims=True)
        span = hi - lo
        out = np.where(feasible, 100.0 * (hi - values) / span, 0.0)
    flat = (span <= 1e-12)[:, 0]
    if flat.any():
        out[flat] = np.where(feasible[flat], 100.0, 0.0)
    return out


@pytest.mark.parametrize("seed", range(10))
def test_normalize_rows_equals_numpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    J, n = 64, 98
    values = (
        rng.choice([0.0, 1.5, 2e9, 7.25], size=(J, n)) if seed % 2 else rng.exponential(30.0, size=(J, n))
    )
    feasible = rng.random((J, n)) < rng.uniform(0.0, 1.0, size=(J, 1))
    values[0] = 3.0  # flat
    feasible[1] = False  # nothing feasible
    feasible[2] = False
    feasible[2, 5] = True  # one cluster
    values[3, 7] = np.nan  # NaN where feasible or not
    feasible[3, 7] = bool(seed % 3)
    values[4, :10] = np.inf  # unreachable transfers
    values[5, 1] = -np.inf
    values[6] = np.linspace(0.0, 1e-13, n)  # a span under the flat line
    got = normalize_rows(values, feasible)
    np.testing.assert_array_equal(got, reference_normalize(values, feasible))


@pytest.mark.parametrize("seed", range(8))
def test_locality_equals_the_numpy_it_replaced(seed: int) -> None:
    """``kernels.locality`` against the numpy the batch scheduler ran before it: the data-set
    table's transfer seconds (the maximum) and bytes (the sum) gathered by job, the bits of the
    inputs moved, then ``0.5 * normalize_rows`` of each; on tables with padding, unreachable (inf) and NaN times, -0.0 and bytes that are not
    all or nothing, up to eight inputs a job and more."""
    rng = np.random.default_rng(seed)
    R, n, J = 12, 98, 80
    K = (1, 3, 8, 9)[seed % 4]
    seconds = rng.exponential(50.0, size=(R, n)) * (rng.random((R, n)) < 0.7)
    moved = rng.choice([0.0, 5e9, 1.25e6], size=(R, n))
    seconds[0] = moved[0] = 0.0  # row 0 pads
    seconds[3, :7] = np.inf
    seconds[4, 9] = np.nan
    seconds[5, 2] = -0.0
    moved[6, 11] = np.nan
    ids = rng.integers(0, R, size=(J, K))
    ids[0] = 0  # a job without inputs
    feasible = rng.random((J, n)) < rng.uniform(0.0, 1.0, size=(J, 1))
    feasible[1] = False
    P, p = 3, 2
    for bits in (False, True) if K <= 8 else (False,):
        M = np.full((J, 1 + P + 2 + int(bits), n), -7.0)
        locality(ids, seconds, moved, feasible, bits, M, p, P)
        want_s, want_m = np.zeros((J, n)), np.zeros((J, n))
        want_bits = np.zeros((J, n), dtype=np.uint8)
        for k in range(K):
            np.maximum(want_s, seconds[ids[:, k]], out=want_s)
            want_m += moved[ids[:, k]]
            want_bits |= (moved[ids[:, k]] != 0).astype(np.uint8) << k
        want = 0.5 * reference_normalize(want_s, feasible) + 0.5 * reference_normalize(want_m, feasible)
        np.testing.assert_array_equal(M[:, P + 1], want_s)
        np.testing.assert_array_equal(M[:, P + 2], want_m)
        np.testing.assert_array_equal(M[:, p], want)
        if bits:
            np.testing.assert_array_equal(M[:, P + 3], want_bits)
        untouched = [r for r in range(M.shape[1]) if r not in (p, P + 1, P + 2, P + 3)]
        assert (M[:, untouched] == -7.0).all()


def test_reserve_takes_the_demand_from_one_cluster() -> None:
    rng = np.random.default_rng(0)
    free, allocated = rng.random((5, 3)), rng.random((5, 3))
    want_free, want_alloc = free.copy(), allocated.copy()
    demand = np.array([0.25, 1.5, 0.0])
    want_free[3] -= demand
    want_alloc[3] += demand
    reserve(free, allocated, 3, demand)
    np.testing.assert_array_equal(free, want_free)
    np.testing.assert_array_equal(allocated, want_alloc)


def test_kernels_compile_without_a_writable_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where numba finds no directory to cache machine code in (it raises at decoration), the
    kernels are compiled per process instead of failing the import."""
    from controller.scheduler import kernels

    calls: list[dict] = []

    def njit(**options: object):  # numba's njit(**options)(fn), refusing to cache
        calls.append(options)
        if options.get("cache"):
            raise RuntimeError("cannot cache function 'f': no locator available for file 'f.py'")
        return lambda fn: fn

    monkeypatch.setattr(kernels, "njit", njit)

    def double(x: float) -> float:
        return 2 * x

    compiled = kernels._compiled(double)
    assert compiled(2.0) == 4.0
    assert [c.get("cache") for c in calls] == [True, None]
    assert all(c["error_model"] == "numpy" and c["nogil"] for c in calls)


EPS = 1e-9


def dropped_numpy(demands: np.ndarray, allocated: np.ndarray) -> np.ndarray:
    """The vectorised form ``ledger_drops`` replaced, the reference it is held to: which of
    ``demands`` (rows, by expected end) ``reconcile`` drops: row i goes when the
    surplus before it (what the ledger holds beyond ``allocated``, less the rows dropped before
    it) is above 0 in every resource the row asks for.

    Without a loop over rows: demands are not negative, so a resource's surplus only falls along
    the walk, and once it is gone no later row asking for it is dropped; the resource is *closed*
    from that row on. Each pass computes the drops with the closings known so far (cumulative
    sums), finds the earliest row at which another resource's surplus is gone, and closes it
    there; the drops before that row are final. At most one pass per resource, and one more."""
    n = len(demands)
    asks = demands > 0.0
    surplus0 = demands.sum(axis=0) - allocated
    is_open = surplus0 > EPS
    closed_at = np.where(is_open, n, 0)  # per resource, the first row it keeps from being dropped
    rows = np.arange(n)[:, None]
    while True:
        drop = np.logical_not(np.any(asks & (rows >= closed_at), axis=1))
        # surplus[i]: before row i, the rows dropped before it taken off.
        taken = np.cumsum(demands * drop[:, None], axis=0)
        surplus = surplus0 - (taken - demands * drop[:, None])
        gone = (surplus <= EPS) & is_open
        if not gone.any():
            return drop
        at = int(gone.any(axis=1).argmax())  # the earliest row at which a surplus is gone
        closed_at = np.where(gone[at], at, closed_at)
        is_open &= ~gone[at]


@pytest.mark.parametrize("seed", range(40))
def test_ledger_drops_equals_the_vectorised_form(seed: int) -> None:
    """On ledgers of whole, halved and decimal demands (sums that round), GPU and cpu-only rows,
    with the allocated capacity below, at and just around what the rows add up to."""
    from controller.scheduler.kernels import ledger_drops

    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 60))
    kind = seed % 3
    if kind == 0:
        demands = rng.integers(0, 9, (n, 3)).astype(float) / 2
    elif kind == 1:
        demands = rng.choice([0.0, 0.1, 0.2, 0.3, 0.7, 1.1], (n, 3))
    else:
        demands = rng.random((n, 3)) * rng.choice([0.0, 1.0], (n, 3), p=[0.3, 0.7])
    total = demands.sum(axis=0)
    for allocated in (
        total * rng.random(3),
        total.copy(),
        total - EPS,
        total + EPS,
        total - demands[: n // 2].sum(axis=0),
        np.zeros(3),
    ):
        got = ledger_drops(demands, allocated)
        assert got.tolist() == dropped_numpy(demands, allocated).tolist()


def reprieve_numpy(
    free: np.ndarray, demands: list[np.ndarray], order: list[int], need: np.ndarray
) -> list[int] | None:
    """The numpy the preemption step ran before its kernel (``victims``): the reference it is
    held to (``chosen``: positions in ``demands``, in the order tried)."""
    room = free + sum(demands, np.zeros(3))
    if (room < need).any():
        return None
    chosen = []
    for i in order:
        if ((room - demands[i]) >= need).all():
            room = room - demands[i]
        else:
            chosen.append(i)
    return chosen


@pytest.mark.parametrize("seed", range(30))
def test_victims_equal_the_numpy_they_replaced(seed: int) -> None:
    """Victims chosen the same, in the same order, on candidates of whole, halved and decimal
    demands (sums that round), GPU and cpu-only, with need below, at and above the room; the
    candidates picked out of the cluster's jobs by priority and, with reclaim, by tenant."""
    from controller.scheduler.kernels import victims

    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 40))
    values = [0.0, 0.1, 0.2, 0.5, 0.7, 1.0, 2.0, 4.0] if seed % 2 else [0.0, 1.0, 2.0, 8.0, 0.5]
    demands = [rng.choice(values, 3) for _ in range(k)]
    pri = rng.choice([0.0, 50.0, 100.0, 1000.0], k)
    ten = rng.integers(0, 4, k).astype(np.intp)
    priority, own = 100.0, int(rng.integers(0, 4))
    lends = rng.random(4) < 0.5 if seed % 3 else None
    may = [
        bool(pri[i] < priority or (lends is not None and lends[ten[i]] and ten[i] != own)) for i in range(k)
    ]
    listed = [i for i in range(k) if may[i]]
    free = rng.choice(values, 3)
    room = free + sum((demands[i] for i in listed), np.zeros(3))
    perm = rng.permutation(k)
    order = [i for i in perm.tolist() if may[i]]  # the candidates' try order, by list position
    # needs at the boundaries: exactly the room, the room less a candidate (reprieved just so)
    boundaries = [room - demands[i] for i in order[:4]]
    if len(order) > 1:
        boundaries.append(room - demands[order[0]] - demands[order[1]])
    for need in (room * rng.random(3), room.copy(), room + 0.1, np.array(demands[0]), room / 2, *boundaries):
        got = victims((pri, ten, np.array(demands), perm.astype(np.intp)), priority, own, lends, free, need)
        if not listed:
            assert got is None
            continue
        # the reference over the candidates alone, positions among them mapped back to the list
        expected = reprieve_numpy(free, [demands[i] for i in listed], [listed.index(i) for i in order], need)
        if expected is None:
            assert got is None
        else:
            assert got is not None
            assert got.tolist() == [listed[j] for j in expected]


WARM_UP_CHECK = """
from controller.scheduler import kernels
from controller.scheduler.stored import encode
from tests.scheduler.test_stored import cycles

assert all(len(d.signatures) == 0 for d in kernels.DISPATCHERS)  # a fresh process
kernels.warm_up()
before = {d.py_func.__name__: len(d.signatures) for d in kernels.DISPATCHERS}
for wait in (0.0, 300.0):
    for bs, decisions in cycles(4, wait, n=200, count=2):
        assert encode(bs, decisions) is not None
# the ledger's reconcile and preemption, as the scheduler calls them
import numpy as np
import controller.scheduler.batch as batch
from controller.scheduler.backfill import EndLedger
ledger, allocated = EndLedger(), np.zeros((2, 3))
for i in range(100):
    ledger.add(1, float(i), np.array([1.0, 2.0, 0.0]), allocated[1])
ledger.reconcile(1, allocated[1])
preempted = [0]
import controller.scheduler.evictable as evictable
victims = evictable.victims
def counted(*args):
    preempted[0] += 1
    return victims(*args)
evictable.victims = counted
for seed in range(4):
    cycles(seed, 0.0, n=600, count=1)
# a job that evicts the lowest-priority quarter of a full cluster (preemption's prefilter lets
# only clusters where evicting makes room reach the kernel)
from controller.policies import QuotaPolicy
from tests.scheduler.helpers import batch as make_batch, enqueue, index, job
from tests.scheduler.test_preemption import HAINAN, ONLY_HAINAN, full_hainan
full, running = full_hainan([10, 20, 30, 40])
bs = make_batch(QuotaPolicy(max_victims=8, reclaim_borrowed=False))
cap = full.capacity[index(HAINAN)]
spec = job("hainan", cpu=float(cap[0] * 0.25) * 0.99, memory_gib=1.0, priority=100, constraints=ONLY_HAINAN)
assert bs.run(enqueue(bs, [spec]), full, running=running).victims
assert preempted[0] > 0  # the kernel ran
after = {d.py_func.__name__: len(d.signatures) for d in kernels.DISPATCHERS}
assert after == before, (before, after)
assert all(n >= 1 for n in after.values()), after
print("ok")
"""


def test_warm_up_compiles_what_a_cycle_and_its_stored_decisions_use() -> None:
    """After ``warm_up`` a scheduling cycle and the encoding of its decisions compile nothing more
    (each kernel's compiled signatures stay as they were; in a fresh process, where nothing else
    compiled them first): the first cycle of a controller does not stop its process for the
    compiler."""
    import subprocess
    import sys

    from tests.conftest import REPO

    done = subprocess.run(
        [sys.executable, "-c", WARM_UP_CHECK],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


@pytest.mark.parametrize("n", [0, 1, 7, 1024])
def test_triples_are_what_np_array_makes_of_the_tuples(n: int) -> None:
    rng = np.random.default_rng(n)
    values = [
        (float(rng.integers(1, 64)) * 0.5, int(rng.integers(1, 32)), float(rng.random()) if k % 3 else 0)
        for k in range(n)
    ]
    got = triples(values, n)
    want = np.array(values, dtype=np.float64).reshape(n, 3)
    assert got.dtype == np.float64 and got.shape == (n, 3) and got.flags["C_CONTIGUOUS"]
    assert np.array_equal(got, want)


@pytest.mark.parametrize("seed", range(6))
def test_score_columns_equals_the_plugins_arithmetic(seed: int) -> None:
    """``score_columns`` (the stored decisions' listed columns) against the same values made row
    by row with the balance plugin's own ``score_free``: each score and the weighted total (added
    in the bodies' order) in thousandths, the transfer seconds, which rows are finite, and the
    bounds and wholeness of each column over the finite rows; GPU demands, a NaN, an infinite
    transfer, scores of whole units and not."""
    rng = np.random.default_rng(seed)
    jobs, per, P = 40, 12, 3
    T = jobs * per
    job_pos = np.repeat(np.arange(jobs), per)
    free = rng.uniform(-2.0, 64.0, size=(T, 3))
    free[31, 0] = np.nan  # and in the balance score
    cap = rng.uniform(8.0, 128.0, size=(T, 3))
    cap[::7, 2] = 0.0  # clusters without GPUs
    demand = np.stack([rng.uniform(0.5, 8.0, jobs), rng.uniform(1.0, 32.0, jobs), np.zeros(jobs)], axis=1)
    demand[::5, 2] = 2.0
    block = np.vstack(
        [np.zeros(T), rng.integers(0, 101, size=(P, T)).astype(float), rng.exponential(40.0, T)]
    )
    if seed % 2:
        block[2] = rng.uniform(0.0, 100.0, T)  # a score that is not whole
    for p in range(1, P + 1):  # a NaN in every score
        block[p, 17 * p] = np.nan
    block[P + 1, 23] = np.inf
    kept = np.sort(rng.choice(T, size=T - 50, replace=False)).astype(np.intp)
    ints = np.zeros(jobs, dtype=np.intp)
    rows = Rows(
        job_pos.copy(), job_pos, np.zeros(T, dtype=np.intp), free, cap, demand, ints, np.zeros(jobs, bool)
    )
    order = list(rng.permutation(P + 1))
    weights = list(rng.uniform(0.5, 2.0, P + 1))
    for transfers in (False, True):
        got = score_columns(StaticSource.of_block(block, job_pos), kept, rows, P, order, weights, transfers)
        balance = BalanceScore()
        want = []
        for t in kept.tolist():
            w = job_pos[t]
            scores = [*block[1 : 1 + P, t], balance.score_free(free[t : t + 1], cap[t : t + 1], demand[w])[0]]
            total = 0.0
            row = []
            for i in order:
                total += weights[i] * scores[i]
                row.append(np.rint(scores[i] * 1000.0))
            row.append(np.rint(total * 1000.0))
            if transfers:
                row.append(np.rint(block[P + 1, t] * 1000.0))
            want.append(row)
        values = np.array(want).T
        np.testing.assert_array_equal(got.values, values)
        finite = np.isfinite(values).all(axis=0)
        np.testing.assert_array_equal(got.finite, finite)
        assert not finite.all()
        np.testing.assert_array_equal(got.lo, values[:, finite].min(axis=1))
        np.testing.assert_array_equal(got.hi, values[:, finite].max(axis=1))
        np.testing.assert_array_equal(got.whole, (values[:, finite] % 1000.0 == 0).all(axis=1))
