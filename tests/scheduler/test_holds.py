"""Anti-starvation holds, on by default, on a constructed adversarial queue.

One cluster (prov-hainan) is the only legal one for a large gang (0.8 of the cluster) and for a
flood of small jobs (0.3 each, 100 s each, one arriving every 10 s) that keeps less than 0.8
free at all times. Without holds the gang never starts. With the default holds, the bound stated
in ``controller/scheduler/batch.py`` must hold: the hold is taken once the gang has failed
``hold_after`` times and waited ``hold_after_s``; from then on it starts at the latest when the
work running on the cluster at the time of the hold has finished (plus one cycle; plus the
overruns of jobs let into the hold on their estimates, ``backfill.py``); at no time is more held
than the held gangs' demand, at most one hold per cluster and ``max_holds`` in all.
"""

from __future__ import annotations

import numpy as np
import pytest

from controller.jobs import JobCreate, Resources
from controller.scheduler.backfill import EndLedger, may_backfill, overrun
from controller.scheduler.batch import MAX_HOLDS, BatchScheduler, hold_rank
from controller.scheduler.framework import Snapshot
from controller.scheduler.ordering import age_tier
from controller.scheduler.queue import PendingQueue
from controller.scheduler.shapes import Shape
from tests.scheduler.helpers import batch, index, job, overcommitted, snap

CYCLE_S = 10.0
SMALL_RUN_S = 100.0
HORIZON_S = 3000.0


def hainan_only() -> tuple[Snapshot, int, float, dict[str, list[str]]]:
    """A federation where every cluster but prov-hainan is full (what is queued there has nowhere
    else to go): the snapshot, hainan's index, its cpu and the constraint allowing only it."""
    s = snap()
    h = index("prov-hainan")
    s.allocated[:] = s.capacity
    s.allocated[h] = 0.0
    return s, h, float(s.capacity[h, 0]), {"allow_clusters": ["prov-hainan"]}


def release_ended(s: Snapshot, h: int, ends: list[tuple[float, str, np.ndarray]], t: float) -> None:
    """Give back the capacity of the work in ``ends`` (end time, id, demand) that ended by ``t``."""
    for e in [e for e in ends if e[0] <= t]:
        s.allocated[h] -= e[2]
        ends.remove(e)


def adversarial(bs: BatchScheduler) -> dict[str, float]:
    s, h, cap, allow = hainan_only()
    gang = job("hainan", cpu=cap * 0.8, constraints=allow)
    small = job("hainan", cpu=cap * 0.3, constraints=allow)
    q = PendingQueue()
    ends: list[tuple[float, str, np.ndarray]] = []
    # The cluster starts with three small jobs, staggered, so it is never empty by itself.
    for k in range(3):
        s.allocated[h] += np.array([cap * 0.3, 1.0, 0.0])
        ends.append(((k + 1) * 30.0, f"pre{k}", np.array([cap * 0.3, 1.0, 0.0])))
    q.push("gang", bs.shapes.intern(gang))
    out: dict[str, float] = {"max_held_cpu": 0.0}
    n_small = 0
    t = 0.0
    while t <= HORIZON_S:
        release_ended(s, h, ends, t)
        q.push(f"small{n_small:05d}", bs.shapes.intern(small))
        n_small += 1
        res = bs.run(q, s, now=t)
        assert not overcommitted(s)
        held = [d for (c, d, _) in bs.holds.values()]
        assert len(bs.holds) <= bs.max_holds
        assert len({c for (c, _, _) in bs.holds.values()}) == len(bs.holds)  # one per cluster
        out["max_held_cpu"] = max(out["max_held_cpu"], sum(float(d[0]) for d in held))
        if "gang" in bs.holds and "hold_at" not in out:
            out["hold_at"] = t
            out["drain_by"] = max((e[0] for e in ends), default=t)
        for d in res.decisions:
            if d.chosen >= 0 and d.job_id is not None:
                run = 1e9 if d.job_id == "gang" else SMALL_RUN_S
                ends.append((t + run, d.job_id, d.demand.copy()))
                if d.job_id == "gang":
                    out["gang_start"] = t
        t += CYCLE_S
    out["gang_cpu"] = cap * 0.8
    return out


def test_without_holds_the_gang_starves() -> None:
    bs = batch()
    bs.hold_after = None
    out = adversarial(bs)
    assert "gang_start" not in out and "hold_at" not in out


def test_default_holds_start_the_gang_within_the_stated_bound() -> None:
    bs = batch()
    assert bs.hold_after is not None and bs.max_holds == MAX_HOLDS  # on by default
    out = adversarial(bs)
    assert "hold_at" in out and "gang_start" in out
    # Taken after hold_after failures and hold_after_s of waiting (plus one cycle), not before.
    assert bs.hold_after_s <= out["hold_at"] <= bs.hold_after_s + (bs.hold_after + 1) * CYCLE_S
    # Started when the work running at the hold's time had finished, plus the overrun of the
    # backfills let in before then, plus one cycle at most. The flood's jobs leave out their
    # estimate (the spec's 5 s) and run SMALL_RUN_S: the work running at the hold's time is
    # overdue, is expected to overrun by as much again (backfill.py ``overrun``), and small jobs
    # backfill on their 5 s until it has ended; each delays the gang by at most its own overrun.
    assert out["gang_start"] <= out["drain_by"] + SMALL_RUN_S + CYCLE_S
    # The cost to the others: never more held than the held gang's demand (one hold here).
    assert out["max_held_cpu"] <= out["gang_cpu"] + 1e-9
    assert not bs.holds or "gang" not in bs.holds  # released when the gang started


def test_without_backfill_the_gang_starts_when_the_drain_ends() -> None:
    """The hold's own bound, backfills off: started when the work running at the hold's time had
    finished, plus one cycle at most."""
    bs = batch()
    bs.backfill = False
    out = adversarial(bs)
    assert "hold_at" in out and "gang_start" in out
    assert out["gang_start"] <= out["drain_by"] + CYCLE_S


# ---- backfilling into the hold (controller/scheduler/backfill.py) ---------------------------------
LONG_RUN_S = 1000.0


def backfill_scenario(bs: BatchScheduler) -> dict[str, float]:
    """One cluster: a long job (0.5 of it, 1,000 s, placed by the scheduler so its expected end is
    known), then a gang of 0.8 and the flood of small jobs (0.3, 100 s, estimates exact). The gang
    can start only when the long job ends; until then the held part may take small jobs that end
    before it (backfill), one at a time."""
    s, h, cap, allow = hainan_only()
    long = job("hainan", cpu=cap * 0.5, constraints=allow, expected_runtime_s=LONG_RUN_S)
    gang = job("hainan", cpu=cap * 0.8, constraints=allow, expected_runtime_s=5000.0)
    small = job("hainan", cpu=cap * 0.3, constraints=allow, expected_runtime_s=SMALL_RUN_S)
    q = PendingQueue()
    q.push("long", bs.shapes.intern(long))
    ends: list[tuple[float, str, np.ndarray]] = []
    out: dict[str, float] = {"backfilled": 0.0, "max_held_cpu": 0.0}
    t, n_small = 0.0, 0
    while t <= HORIZON_S:
        release_ended(s, h, ends, t)
        if t == CYCLE_S:
            q.push("gang", bs.shapes.intern(gang))
        if t >= CYCLE_S:
            q.push(f"small{n_small:05d}", bs.shapes.intern(small))
            n_small += 1
        res = bs.run(q, s, now=t)
        assert not overcommitted(s)
        out["max_held_cpu"] = max(out["max_held_cpu"], sum(float(d[0]) for (_, d, _) in bs.holds.values()))
        if "gang" in bs.holds and "hold_at" not in out:
            out["hold_at"] = t
            out["shadow"] = bs.shadows[h]
            out["drain_by"] = max((e[0] for e in ends), default=t)
        for d in res.decisions:
            if d.chosen < 0 or d.job_id is None:
                continue
            run = {"long": LONG_RUN_S, "gang": 1e9}.get(d.job_id, SMALL_RUN_S)
            ends.append((t + run, d.job_id, d.demand.copy()))
            if d.job_id == "gang":
                out["gang_start"] = t
            elif "hold_at" in out and t > out["hold_at"] and "gang_start" not in out:
                out["backfilled"] += 1
                assert t + run <= out["shadow"]  # it ends before the gang is expected to start
        t += CYCLE_S
    out["gang_cpu"] = cap * 0.8
    return out


def test_backfill_uses_the_held_part_without_delaying_the_gang() -> None:
    plain = batch()
    plain.backfill = False
    without = backfill_scenario(plain)
    bs = batch()
    assert bs.backfill  # on by default
    with_bf = backfill_scenario(bs)
    for out in (without, with_bf):
        assert "hold_at" in out and "gang_start" in out
        assert out["shadow"] == LONG_RUN_S  # the long job's expected end, from the ledger
        assert out["gang_start"] <= out["drain_by"] + CYCLE_S
        assert out["max_held_cpu"] <= out["gang_cpu"] + 1e-9
    # Without backfilling the held part idles; with it, small jobs ran there and the gang,
    # with exact estimates, started no later.
    assert without["backfilled"] == 0
    assert with_bf["backfilled"] >= 2
    assert with_bf["gang_start"] <= without["gang_start"]


def test_ledger_shadow_and_reconcile() -> None:
    led = EndLedger()
    alloc = np.array([6.0, 6.0, 0.0])
    for end, cpu in ((100.0, 2.0), (300.0, 2.0), (200.0, 2.0)):
        led.add(0, end, np.array([cpu, cpu, 0.0]), alloc)
    free = np.array([4.0, 4.0, 0.0])
    need = np.array([7.0, 7.0, 0.0])
    assert led.shadow(0, free, alloc, need, now=50.0) == 200.0  # 4 free, +2 at 100, +2 at 200
    assert led.shadow(0, free, alloc, np.array([3.0, 3.0, 0.0]), now=50.0) == 50.0  # fits now
    # Work past its expected end is expected to overrun by as much again (``overrun``): at 260
    # the entry due at 200 is expected at 320, the one due at 100 at 420; 4 + 2 (300) + 2 (320).
    assert led.shadow(0, free, alloc, need, now=260.0) == 320.0
    # Only 4 allocated now: the earliest-ending entry is taken to have ended.
    alloc4 = np.array([4.0, 4.0, 0.0])
    free6 = np.array([6.0, 6.0, 0.0])
    assert led.shadow(0, free6, alloc4, np.array([9.0, 9.0, 0.0]), now=50.0) == 300.0
    assert [e[0] for e in led.entries[0]] == [200.0, 300.0]
    # Work the ledger does not know is taken to end now.
    assert led.shadow(1, free, alloc, need, now=50.0) == 50.0
    assert may_backfill(0.0, 100.0, 100.0) and not may_backfill(0.0, 101.0, 100.0)
    assert not may_backfill(0.0, None, 100.0)


def test_overdue_work_is_expected_to_overrun_by_as_much_again() -> None:
    """A GPU entry due at 1,000 still allocated at 1,500 and at 4,000: the held gang's shadow is
    ``now`` plus the overrun so far (2,000, then 7,000), not ``now``. Taken to end now, the shadow
    stayed at ``now`` for as long as the overrun lasted, no job could backfill (``may_backfill``
    asks now + estimate <= shadow), and the rest of the held cluster idled behind it."""
    assert overrun(1000.0, 500.0) == 1000.0 and overrun(1000.0, 1000.0) == 1000.0
    assert overrun(1000.0, 1500.0) == 2000.0
    led = EndLedger()
    long_gpu = np.array([4.0, 16.0, 55.0])
    allocated = long_gpu.copy()
    led.add(0, 1000.0, long_gpu.copy(), allocated)
    free = np.array([60.0, 240.0, 62.0])
    gang = np.array([8.0, 32.0, 90.0])
    assert led.shadow(0, free, allocated, gang, now=500.0) == 1000.0
    assert led.shadow(0, free, allocated, gang, now=1500.0) == 2000.0
    assert led.shadow(0, free, allocated, gang, now=4000.0) == 7000.0
    assert may_backfill(4000.0, 3000.0, 7000.0) and not may_backfill(4000.0, 3001.0, 7000.0)
    # Ordered by the expected end with the overrun: an entry due later but not yet overdue comes
    # before one long overdue.
    small = np.array([1.0, 1.0, 30.0])
    both = allocated + small
    led.add(0, 4500.0, small.copy(), both)
    need60 = np.array([1.0, 1.0, 60.0])
    assert led.shadow(0, free - small, both, need60, now=4000.0) == 4500.0
    # Work placed while the cluster was held (a backfill) is held to its estimate: past it, it
    # counts as ending now, so backfills that overrun do not let in more backfills.
    held = EndLedger()
    held.add(0, 1000.0, long_gpu.copy(), allocated, under_hold=True)
    assert held.shadow(0, free, allocated, gang, now=500.0) == 1000.0
    assert held.shadow(0, free, allocated, gang, now=1500.0) == 1500.0
    assert overrun(1000.0, 1500.0, under_hold=True) == 1500.0


def drop_one_at_a_time(entries: list[tuple[float, np.ndarray, bool]], allocated: np.ndarray) -> list[float]:
    """The rule of ``reconcile`` as a plain loop: by expected end, drop an entry when the ledger
    still holds more than ``allocated`` of every resource it asks for; the expected ends kept."""
    surplus = np.sum([e[1] for e in entries], axis=0) - allocated
    kept = []
    for end, d, _ in sorted(entries, key=lambda e: e[0]):
        if (surplus[d > 0] > 1e-9).all():
            surplus = surplus - d
        else:
            kept.append(end)
    return kept


def test_reconcile_drops_what_dropping_one_at_a_time_would() -> None:
    """``reconcile`` (cumulative sums, a pass per resource) against the plain loop on random
    ledgers: cpu-only and GPU entries, several resources binding, allocations from nothing to
    more than the ledger holds. Afterwards the ledger holds more than is allocated of a resource
    only where every entry left asking for it also asks for a resource without a surplus."""
    rng = np.random.default_rng(7)
    for trial in range(500):
        m = int(rng.integers(1, 40))
        entries = []
        for _ in range(m):
            d = rng.choice([0.0, 0.5, 1.0, 2.0, 4.0], size=3)
            if rng.random() < 0.6:
                d[2] = 0.0  # cpu-only
            entries.append((float(rng.integers(0, 50)), d, False))
        held = np.sum([e[1] for e in entries], axis=0)
        allocated = held * rng.uniform(-0.1, 1.2, size=3) if trial % 5 else np.zeros(3)
        led = EndLedger()
        led.entries[0] = list(entries)
        kept = led.reconcile(0, allocated)
        assert [e[0] for e in kept] == drop_one_at_a_time(entries, allocated), (trial, allocated)
        assert [e[0] for e in kept] == sorted(e[0] for e in kept)
        assert led.entries[0] == kept
        left = np.sum([e[1] for e in kept], axis=0) if kept else np.zeros(3)
        surplus = left - allocated > 1e-9
        for _, d, _ in kept:
            assert not (surplus[d > 0]).all(), (trial, allocated)


def test_the_ledger_drops_exactly_the_jobs_that_ended_once_told_what_runs() -> None:
    """Two GPU jobs on a cluster: "long" due at 100 and overrunning, "short" due at 200 that ended
    early. By capacity alone ``reconcile`` takes the earliest-due entry ("long") to be the one
    that ended, and the gang's shadow comes from "short"'s overrun (due at 200: 400 at t = 300);
    told what runs (``retain``), the ledger drops "short" and keeps "long", whose overrun is the
    longer (due at 100: 500)."""
    gpu = np.array([4.0, 16.0, 50.0])
    capacity = np.array([64.0, 256.0, 100.0])
    free = capacity - gpu  # only "long" still allocated
    gang = np.array([8.0, 32.0, 90.0])
    guessed = EndLedger()
    guessed.add(0, 100.0, gpu.copy(), gpu * 2, job="long")
    guessed.add(0, 200.0, gpu.copy(), gpu * 2, job="short")
    assert guessed.shadow(0, free, gpu, gang, now=300.0) == 400.0  # "long" taken to have ended
    assert [e[0] for e in guessed.entries[0]] == [200.0]
    told = EndLedger()
    told.retain(set())  # from now on it records which entry is whose
    told.add(0, 100.0, gpu.copy(), gpu * 2, job="long")
    told.add(0, 200.0, gpu.copy(), gpu * 2, job="short")
    told.retain({"long"})
    assert [e[0] for e in told.entries[0]] == [100.0]
    assert told.shadow(0, free, gpu, gang, now=300.0) == overrun(100.0, 300.0) == 500.0
    # It forgets the jobs it dropped, and entries without a job are left to ``reconcile``.
    told.add(0, 400.0, gpu.copy(), gpu * 2)
    told.retain(set())
    assert [e[0] for e in told.entries[0]] == [400.0] and told._jobs == {}


def test_ended_cpu_only_work_does_not_take_a_running_gpu_entry_with_it() -> None:
    """Twenty short cpu-only entries (ends 10 to 200) and one GPU entry (end 100); at t = 50 the
    snapshot shows the GPU entry's GPUs and five cpu-only entries' cpus still allocated (the
    others ended early). Dropping earliest ends until the ledger fits in every resource went past
    the GPU entry (the cpu surplus was not yet gone there), took its 2 GPUs as ending now and put
    a GPU gang's shadow at now; the GPU entry is kept, and the shadow is its expected end."""
    led = EndLedger()
    cpu_only = np.array([2.0, 4.0, 0.0])
    gpu = np.array([4.0, 16.0, 2.0])
    led.entries[0] = [(float(end), cpu_only.copy(), False) for end in range(10, 210, 10)]
    led.entries[0].append((100.0, gpu.copy(), False))
    allocated = gpu + 5 * cpu_only
    capacity = np.array([64.0, 256.0, 2.0])
    free = capacity - allocated
    kept = led.reconcile(0, allocated)
    assert any(e[1][2] > 0 for e in kept)  # the GPU entry survives
    assert np.sum([e[1] for e in kept], axis=0)[2] == 2.0
    assert led.shadow(0, free, allocated, np.array([8.0, 8.0, 2.0]), now=50.0) == 100.0
    # With the GPU entry gone from the snapshot too, its GPUs count as free: the shadow is now.
    alloc_cpu = 5 * cpu_only
    assert led.shadow(0, capacity - alloc_cpu, alloc_cpu, np.array([8.0, 8.0, 2.0]), now=50.0) == 50.0
    assert not any(e[1][2] > 0 for e in led.entries[0])


# ---- who gets the hold (issue 16: 90 % load, sjf) -------------------------------------------------
GANG_RUN_S = 1000.0
GANG_EVERY_S = 200.0
PRE_END_S = 1000.0


def hold_chain(bs: BatchScheduler) -> dict[str, float]:
    """One cluster, shortest-job-first: gangs of 0.6 of it (two never fit together). A long gang
    (1,000 s, exact estimate) arrives every 200 s from t = 0, more than the cluster can run; a
    short gang (10 s) arrives at t = 10. Work the scheduler did not place fills half the cluster
    until t = 1,000, so every gang waits past ``hold_after_s``.

    The short gang is first in the order, so it fails in each cycle *before* the held long gang
    starts and releases its hold; if the hold went to the next job to fail after that, it would
    always go to a long gang later in the order, and the short gang would starve for as long as
    long gangs keep arriving."""
    s, h, cap, allow = hainan_only()
    long = job("hainan", cpu=cap * 0.6, constraints=allow, expected_runtime_s=GANG_RUN_S)
    short = job("hainan", cpu=cap * 0.6, constraints=allow, expected_runtime_s=10.0)
    q = PendingQueue()
    pre = np.array([cap * 0.5, 1.0, 0.0])
    s.allocated[h] += pre
    ends: list[tuple[float, str, np.ndarray]] = [(PRE_END_S, "pre", pre)]
    out: dict[str, float] = {}
    t, n_long = 0.0, 0
    while t <= HORIZON_S * 2:
        release_ended(s, h, ends, t)
        if t >= n_long * GANG_EVERY_S:
            q.push(f"long{n_long:03d}", bs.shapes.intern(long), runtime=GANG_RUN_S)
            n_long += 1
        if t == CYCLE_S:
            q.push("short", bs.shapes.intern(short), runtime=10.0)
        res = bs.run(q, s, now=t)
        assert not overcommitted(s)
        assert len(bs.holds) <= bs.max_holds
        for d in res.decisions:
            if d.chosen >= 0 and d.job_id is not None:
                ends.append((t + (10.0 if d.job_id == "short" else GANG_RUN_S), d.job_id, d.demand.copy()))
                out.setdefault(f"start_{d.job_id}", t)
        if "short" in bs.holds and "hold_at" not in out:  # taken at the cycle's end
            out["hold_at"] = t
            out["drain_by"] = max((e[0] for e in ends), default=t)
        t += CYCLE_S
    return out


def test_sjf_hold_goes_to_the_short_gang_not_the_next_to_fail() -> None:
    bs = batch()
    bs.order = "sjf"
    out = hold_chain(bs)
    # The short gang qualifies at t = 610 (hold_after_s after it came); the hold in place then
    # (the first long gang's) is released at t = 1,000, and the short gang, with the highest
    # expected slowdown of the candidates, takes the next one at once; it starts when the work running then has finished.
    assert "hold_at" in out and out["hold_at"] <= PRE_END_S
    assert "start_short" in out
    assert out["start_short"] <= out["drain_by"] + CYCLE_S
    # Before every long gang that came after it (the first long one came before it).
    later = [v for k, v in out.items() if k.startswith("start_long") and k != "start_long000"]
    assert later and all(out["start_short"] <= v for v in later)


def test_backfill_is_a_last_resort() -> None:
    """A job that fits on another of its clusters goes there, not into the held part (the held
    cluster is the one place the starved gang can run, and an overrun there delays it); with
    nowhere else to go, it may still backfill."""
    bs = batch()
    s, h, cap, only_h = hainan_only()
    g = index("prov-guangdong")
    s.allocated[g] = 0.0  # the other cluster free: while it has room, no backfill
    both = {"allow_clusters": ["prov-hainan", "prov-guangdong"]}
    q = PendingQueue()
    q.push(
        "long",
        bs.shapes.intern(job("hainan", cpu=cap * 0.5, constraints=only_h, expected_runtime_s=LONG_RUN_S)),
    )
    q.push(
        "gang", bs.shapes.intern(job("hainan", cpu=cap * 0.8, constraints=only_h, expected_runtime_s=5000.0))
    )
    t = 0.0
    while "gang" not in bs.holds and t <= HORIZON_S:
        bs.run(q, s, now=t)
        t += CYCLE_S
    assert "gang" in bs.holds and bs.holds["gang"][0] == h
    small = job("hainan", cpu=cap * 0.3, constraints=both, expected_runtime_s=SMALL_RUN_S)
    assert t + SMALL_RUN_S <= LONG_RUN_S  # short enough to backfill
    # What the placement sees: the held part is not offered while the other cluster has room.
    shape = bs.shapes.intern(small)
    bs.evaluate_many([shape], s)
    held = np.zeros_like(s.capacity)
    held[h] = bs.holds["gang"][1]
    free = s.capacity - s.allocated
    at_h = int(np.searchsorted(shape.idx, h))
    rows = bs._rows_with_holds("probe", shape, free, held, SMALL_RUN_S)
    assert rows[at_h, 0] == max(free[h, 0] - held[h, 0], 0.0)  # a hold keeps back at most what is free
    full = free.copy()
    full[g] = 0.0
    rows = bs._rows_with_holds("probe", shape, full, held, SMALL_RUN_S)
    assert rows[at_h, 0] == free[h, 0]  # nowhere else: the held part is offered (backfill)
    # Somewhere else, but the held cluster holds the job's inputs (moves fewer bytes): offered.
    moved = np.full(len(shape.idx), 10.0**9)
    moved[at_h] = 0.0
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Shape, "transfer", property(lambda _: (np.zeros(len(moved)), moved)))
        rows = bs._rows_with_holds("probe", shape, free, held, SMALL_RUN_S)
    assert rows[at_h, 0] == free[h, 0]
    chosen = []
    for k in range(2):
        if k == 1:
            s.allocated[g] = s.capacity[g]  # the other cluster full: the held part, as a last resort
        q.push(f"small{k}", bs.shapes.intern(small), runtime=SMALL_RUN_S)
        res = bs.run(q, s, now=t)
        chosen += [d.chosen for d in res.decisions if d.job_id == f"small{k}"]
        assert not overcommitted(s)
        t += CYCLE_S
    assert chosen == [g, h]
    assert "gang" in bs.holds


# ---- the ranking of candidates: expected slowdown, and no starvation past hold_starving_s -------
FLOOD_EVERY_S = 10.0
FLOOD_RUN_S = 20.0
FLOOD_LONG_RUN_S = 500.0
LONG_AT_S = 200.0
FLOOD_HORIZON_S = 2000.0


def flood(bs: BatchScheduler, order: str = "sjf") -> dict[str, float]:
    """One cluster, shortest-job-first, an overload that never ends: a short gang (0.6 of the
    cluster, 20 s) every 10 s, twice what the cluster can run, and a long gang (0.6, 500 s) at
    t = 200, so the short gangs' backlog and their waits grow without bound. Every
    gang fits only alone, and sjf puts the short gangs first, so without a hold the long gang
    never starts; work the scheduler did not place fills half the cluster until t = 100. Jobs
    qualify for a hold after 60 s of waiting (``hold_after_s``), so short gangs are candidates
    from early on. ``granted_<job>``: when a short gang's hold was granted, while the long gang
    had none."""
    bs.order = order
    bs.hold_after_s = 60.0
    s, h, cap, allow = hainan_only()
    long = job("hainan", cpu=cap * 0.6, constraints=allow, expected_runtime_s=FLOOD_LONG_RUN_S)
    short = job("hainan", cpu=cap * 0.6, constraints=allow, expected_runtime_s=FLOOD_RUN_S)
    pre = np.array([cap * 0.5, 1.0, 0.0])
    s.allocated[h] += pre
    ends: list[tuple[float, str, np.ndarray]] = [(100.0, "pre", pre)]
    q = PendingQueue()
    out: dict[str, float] = {"holds_to_short_gangs_first": 0.0}
    t, n = 0.0, 0
    while t <= FLOOD_HORIZON_S:
        release_ended(s, h, ends, t)
        if t > 0 and t >= n * FLOOD_EVERY_S:
            q.push(f"short{n:04d}", bs.shapes.intern(short), runtime=FLOOD_RUN_S)
            n += 1
        if t == LONG_AT_S:
            q.push("long", bs.shapes.intern(long), runtime=FLOOD_LONG_RUN_S)
        res = bs.run(q, s, now=t)
        assert not overcommitted(s)
        for d in res.decisions:
            if d.chosen >= 0 and d.job_id is not None:
                run = FLOOD_LONG_RUN_S if d.job_id == "long" else FLOOD_RUN_S
                ends.append((t + run, d.job_id, d.demand.copy()))
                out.setdefault(f"start_{d.job_id}", t)
        if "long" in bs.holds and "hold_at" not in out:
            out["hold_at"] = t
            out["drain_by"] = max((e[0] for e in ends), default=t)
        if "hold_at" not in out and any(j.startswith("short") for j in bs.holds):
            out["holds_to_short_gangs_first"] += 1
            for j in bs.holds:  # the latest time a short gang held while the long gang waited
                out[f"held_{j}"] = t
                out.setdefault(f"granted_{j}", t)
        t += CYCLE_S
    return out


def test_hold_rank_age_tier_then_expected_slowdown_and_the_starving_line() -> None:
    day = 86_400.0
    # The same age tier (waits within a factor of two): the short gang first.
    assert age_tier(1000.0) == age_tier(1300.0)
    assert hold_rank(1000.0, 10.0, day) < hold_rank(1300.0, 1000.0, day)
    # A higher tier first, whatever the slowdown: 1,000 s of waiting is tier 4, 700 s tier 3.
    assert age_tier(1000.0) > age_tier(700.0)
    assert hold_rank(1000.0, 5000.0, day) < hold_rank(700.0, 10.0, day)
    # Past the line: before every candidate under it, and the longest-waiting first even where
    # the tier and the slowdown say otherwise (both past a day, one tier, the short one waited less).
    assert age_tier(90_000.0) == age_tier(87_000.0)
    assert hold_rank(90_000.0, 1000.0, day) < hold_rank(87_000.0, 10.0, day)
    assert hold_rank(day, 5000.0, day) < hold_rank(day - 1.0, 10.0, day)
    # Under sjf: the shortest expected runtime first, whatever the tier; the line still first.
    assert hold_rank(700.0, 10.0, day, "sjf") < hold_rank(5000.0, 20.0, day, "sjf")
    assert hold_rank(day, 5000.0, day, "sjf") < hold_rank(day - 1.0, 10.0, day, "sjf")


@pytest.mark.parametrize("order", ["constrained-first", "fifo"])
def test_a_long_gang_in_a_flood_of_short_gangs_gets_its_hold_by_age(order: str) -> None:
    bs = batch()
    out = flood(bs, order)
    # The short gangs that came before it get the holds first ...
    assert out["holds_to_short_gangs_first"] > 0
    # ... until the long gang's age tier passes theirs (well before the starving line) ...
    assert "hold_at" in out and out["hold_at"] < LONG_AT_S + bs.hold_starving_s
    # ... and it starts within the hold's bound.
    assert "start_long" in out and out["start_long"] <= out["drain_by"] + CYCLE_S


def test_under_sjf_holds_go_shortest_first_until_the_starving_line() -> None:
    """Under the sjf order the holds keep the queue's order: every hold in the flood goes to a
    short gang, though the long gang's age tier passes theirs (with the tiers it took a hold at
    about t = 700: the test above); the bound for the long gang is the starving line (a day)."""
    bs = batch()
    out = flood(bs, "sjf")
    assert out["holds_to_short_gangs_first"] > 0
    assert "hold_at" not in out and "start_long" not in out
    assert LONG_AT_S + bs.hold_starving_s > FLOOD_HORIZON_S


def test_past_the_starving_line_holds_go_to_the_longest_waiting() -> None:
    """A line short enough to be crossed in the flood (150 s): past it, the long gang takes a
    hold before every short gang that came after it, though those are ahead of it in the sjf
    order; only short gangs that came before it, and so have waited longer, may still be granted
    holds first (a hold granted before the line stays until its gang starts)."""
    bs = batch()
    bs.hold_starving_s = 150.0
    out = flood(bs)
    assert "hold_at" in out and "start_long" in out
    crossed = LONG_AT_S + 150.0
    late = [k for k, t in out.items() if k.startswith("granted_short") and t >= crossed + CYCLE_S]
    arrived = {k: (int(k.removeprefix("granted_short")) + 1) * FLOOD_EVERY_S for k in late}
    # (one arrived in the long gang's cycle, before it in the queue: equal waits, queue order)
    assert late and all(a <= LONG_AT_S for a in arrived.values()), arrived
    # Under sjf without the line the long gang would get no hold in the flood (the test above).
    assert out["hold_at"] < FLOOD_HORIZON_S
    assert out["start_long"] <= out["drain_by"] + CYCLE_S


def test_a_gpu_hold_does_not_keep_cpu_only_work_off_the_cluster() -> None:
    """A hold keeps back at most what is free: a gang held for more GPUs than are free now (it
    waits for running work to drain) leaves 0 GPUs to others there, not a negative number, so a
    job that asks for no GPUs still runs on the cluster's cpus beyond the gang's share, even when
    it is too long to backfill. Before, free minus held was negative in GPUs and every cpu-only job
    whose only cluster was held for a GPU gang waited until the gang started."""
    bs = batch()
    s, h, cap, only_h = hainan_only()
    gpus = float(s.capacity[h, 2])
    assert gpus >= 2
    q = PendingQueue()
    # Long work holds half the GPUs; the gang needs them all, so it waits for the drain.
    long_work = Resources(cpu=1.0, memory_gib=1.0, gpu=int(gpus // 2))
    gang = Resources(cpu=cap * 0.1, memory_gib=1.0, gpu=int(gpus))
    q.push("long", bs.shapes.intern(gpu_spec(long_work, only_h, LONG_RUN_S)), runtime=LONG_RUN_S)
    assert [d.chosen for d in bs.run(q, s, now=0.0).decisions] == [h]
    q.push("gang", bs.shapes.intern(gpu_spec(gang, only_h, 100.0)), runtime=100.0)
    t = CYCLE_S
    while "gang" not in bs.holds and t <= HORIZON_S:
        bs.run(q, s, now=t)
        t += CYCLE_S
    assert "gang" in bs.holds and bs.holds["gang"][0] == h
    assert s.capacity[h, 2] - s.allocated[h, 2] < bs.holds["gang"][1][2]  # more GPUs held than free
    # Too long to backfill (it would end after the held gang's shadow), and no GPUs.
    cpu_only = job("hainan", cpu=cap * 0.3, constraints=only_h, expected_runtime_s=10 * LONG_RUN_S)
    q.push("cpu-only", bs.shapes.intern(cpu_only), runtime=10 * LONG_RUN_S)
    res = bs.run(q, s, now=t)
    assert [d.chosen for d in res.decisions if d.job_id == "cpu-only"] == [h]
    assert not overcommitted(s)
    # The gang keeps its hold and its cpus: what is left beyond the hold is what it needs.
    assert "gang" in bs.holds
    assert s.capacity[h, 0] - s.allocated[h, 0] >= cap * 0.1
    # Once the drain is overdue (the long work was due at LONG_RUN_S), the long work is expected
    # to overrun by as much again (``overrun``): a GPU job expected to end within that may take
    # a GPU the gang waits for, a longer one may not.
    late = t + 2 * LONG_RUN_S
    overdue = late - LONG_RUN_S
    too_long = overdue + 3 * CYCLE_S  # longer than the overrun so far, in both cycles below
    longer = gpu_spec(Resources(cpu=1.0, memory_gib=1.0, gpu_milli=100), only_h, too_long)
    q.push("gpu-longer", bs.shapes.intern(longer), runtime=too_long)
    res = bs.run(q, s, now=late)
    assert [d.chosen for d in res.decisions if d.job_id == "gpu-longer"] == [-1]
    one_gpu = gpu_spec(Resources(cpu=1.0, memory_gib=1.0, gpu_milli=100), only_h, 1.0)
    q.push("gpu-small", bs.shapes.intern(one_gpu), runtime=1.0)
    res = bs.run(q, s, now=late + CYCLE_S)
    assert [d.chosen for d in res.decisions if d.job_id == "gpu-small"] == [h]
    assert [d.chosen for d in res.decisions if d.job_id == "gpu-longer"] == [-1]
    assert "gang" in bs.holds and not overcommitted(s)


def gpu_spec(resources: Resources, constraints: dict[str, list[str]], runtime: float) -> JobCreate:
    return JobCreate(
        name="j",
        tenant="hainan",
        resources=resources,
        constraints=constraints,
        expected_runtime_s=runtime,
    )
