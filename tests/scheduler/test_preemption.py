"""Preemption: bounded, explained victim choice on one cluster; victims go back to Pending."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from controller.policies import QuotaPolicy
from controller.scheduler.queue import Running
from controller.settings import Settings
from tests.scheduler.helpers import batch, enqueue, index, job, snap
from tests.scheduler.test_kernels import reprieve_numpy

HAINAN = "prov-hainan"
ONLY_HAINAN = {"allow_clusters": [HAINAN]}


def full_hainan(priorities: list[int], share: float = 0.25) -> tuple[object, dict[int, list[Running]]]:
    s = snap()
    i = index(HAINAN)
    cap = s.capacity[i]
    running = {i: []}
    for k, p in enumerate(priorities):
        d = cap * share
        running[i].append(Running(f"victim-{k}", i, p, d, "hainan", 1))
    s.allocated[i] = cap * share * len(priorities)
    return s, running


@pytest.mark.parametrize(
    ("priorities", "need_share", "max_victims", "expect"),
    [
        ([10, 20, 30, 40], 0.25, 8, ["victim-0"]),  # one victim, the lowest priority
        ([50, 10, 50, 10], 0.5, 8, ["victim-1", "victim-3"]),  # the two lowest, not the 50s
        ([10, 20, 30, 40], 0.75, 2, []),  # would need 3 victims: over the bound, no preemption
        ([100, 200, 300, 400], 0.25, 8, []),  # nobody has a lower priority than 100
    ],
)
def test_victim_choice(priorities: list[int], need_share: float, max_victims: int, expect: list[str]) -> None:
    s, running = full_hainan(priorities)
    bs = batch(QuotaPolicy(max_victims=max_victims, reclaim_borrowed=False))
    cap = s.capacity[index(HAINAN)]
    spec = job(
        "hainan", cpu=float(cap[0] * need_share) * 0.99, memory_gib=1.0, priority=100, constraints=ONLY_HAINAN
    )
    res = bs.run(enqueue(bs, [spec]), s, running=running)
    assert sorted(v.job_id for v in res.victims) == expect
    d = res.decisions[0]
    if expect:
        assert d.cluster == HAINAN
        for v in res.victims:
            assert "preempted on prov-hainan by job j00000 (priority 100" in v.reason
        assert "after preempting" in d.to_decision().summary
        assert not (s.allocated > s.capacity + 1e-6).any()
        kept = {r.job_id for r in running[index(HAINAN)]}
        assert not kept & set(expect)
    else:
        assert d.chosen < 0


def test_preempted_jobs_go_back_to_pending_with_attempt_raised(tmp_path: Path) -> None:
    from controller.jobs import Constraints, JobCreate, Resources
    from controller.service import Controller

    ctl = Controller(Settings(database_url=f"sqlite:///{tmp_path / 'p.db'}", background=False))
    for name in ctl.registry.clusters:
        ctl.heartbeat(name, None)
    cap = ctl.registry.clusters[HAINAN].spec.capacity
    allow = Constraints(allow_clusters=[HAINAN])
    low = [
        JobCreate(
            name=f"low{i}",
            tenant="hainan",
            priority=10,
            constraints=allow,
            resources=Resources(cpu=cap.cpu / 2, memory_gib=1),
        )
        for i in range(2)
    ]
    ids = [ctl.submit(s)[0].id for s in low]
    assert ctl.schedule_pending() == 2
    high = JobCreate(
        name="urgent",
        tenant="hainan",
        priority_class="failover",
        constraints=allow,
        resources=Resources(cpu=cap.cpu / 2, memory_gib=1),
    )
    hid = ctl.submit(high)[0].id
    assert ctl.schedule_pending() == 1
    assert ctl.get_job(hid).cluster == HAINAN
    jobs = [ctl.get_job(i) for i in ids]
    back = [j for j in jobs if j.phase.value == "Pending"]
    assert len(back) == 1 and back[0].attempt == 2
    assert back[0].events[-1].type == "Preempted" and "urgent" not in back[0].events[-1].reason
    assert f"by job {hid}" in back[0].events[-1].reason
    assert next(j for j in jobs if j.phase.value == "Scheduled").cluster == HAINAN
    d = ctl.get_decision(hid)
    assert d.cluster == HAINAN and "after preempting 1 job(s)" in d.summary
    # Nothing is lost: the victim is scheduled again when there is room (here: never on hainan).
    assert np.isclose(ctl.registry.ledger.cluster_total(HAINAN)[0], cap.cpu)


def test_lowest_priority_follows_appends_and_replacements() -> None:
    """``_lowest_priority`` (the preemption scan skips clusters where nothing has a lower priority)
    is brought up to date with the placements appended during the cycle and rescans a list that
    a preemption replaced; it equals the minimum over the list every time."""
    bs = batch()
    bs._lowest = {}
    d = np.zeros(3)
    running: dict[int, list[Running]] = {}
    assert bs._lowest_priority(running, 3) == np.inf
    running[3] = [Running("a", 3, 200, d, "t")]
    assert bs._lowest_priority(running, 3) == 200
    running[3].append(Running("b", 3, 50, d, "t"))  # a placement of the cycle
    assert bs._lowest_priority(running, 3) == 50
    running[3].append(Running("c", 3, 400, d, "t"))
    assert bs._lowest_priority(running, 3) == 50
    running[3] = [r for r in running[3] if r.job_id != "b"]  # a preemption took the 50 away
    assert bs._lowest_priority(running, 3) == 200
    running[3] = []
    assert bs._lowest_priority(running, 3) == np.inf


def _room_by_hand(
    running: dict[int, list[Running]],
    clusters: list[int],
    free: np.ndarray,
    need: np.ndarray,
    prio: float,
    tenant: str,
    lends: set[str] | None,
) -> list[bool]:
    """What ``Evictable.room`` answers, from the lists themselves."""
    out = []
    for c in clusters:
        evict = [
            r.demand
            for r in running.get(c, [])
            if r.priority < prio or (lends is not None and r.tenant != tenant and r.tenant in lends)
        ]
        total = free[c] + (np.sum(evict, axis=0) if evict else 0.0)
        out.append(bool((total >= need - 1e-6).all()))
    return out


def test_evictable_sums_follow_the_lists_and_answer_as_the_lists_do() -> None:
    """``Evictable`` (preemption's prefilter) against the lists it follows, through appends (the
    cycle's placements), replaced lists (a preemption's victims taken out), emptied ones and a
    first read of a cluster, for random jobs and askers, with and without reclaim."""
    from controller.scheduler.evictable import Evictable

    rng = np.random.default_rng(7)
    n = 12
    tenants = [f"t{k}" for k in range(6)]
    running: dict[int, list[Running]] = {}
    ev = Evictable(n)
    counter = 0

    def one(c: int) -> Running:
        nonlocal counter
        counter += 1
        demand = rng.uniform(0, 8, 3) * (rng.random(3) < 0.8)
        return Running(
            f"j{counter}", c, float(rng.choice([0, 10, 100, 1000])), demand, str(rng.choice(tenants)), 1
        )

    evicted = 0
    for step in range(400):
        c = int(rng.integers(n))
        what = rng.random()
        if what < 0.6:
            running.setdefault(c, []).append(one(c))
            ev.touch(c)  # as the cycle does on every change
        elif what < 0.7 and running.get(c):  # a preemption's victims taken out (their order kept)
            ev.evict(c, running, [r for r in running[c] if rng.random() < 0.4])
            evicted += 1
        elif what < 0.8 and running.get(c):
            running[c] = [r for r in running[c] if rng.random() < 0.6]
            ev.touch(c)
        elif what < 0.85:
            running[c] = []
            ev.touch(c)
        clusters = sorted(set(rng.integers(n, size=int(rng.integers(1, n))).tolist()))
        ev.sync(running, clusters)
        free = rng.uniform(0, 10, (n, 3))
        need = rng.uniform(0, 40, 3)
        prio = float(rng.choice([0, 50, 500, 5000]))
        tenant = str(rng.choice(tenants))
        lends = {t for t in tenants if rng.random() < 0.4} if step % 2 else None
        ask = ev.ask(prio, tenant, lends.__contains__ if lends is not None else None)
        got = ev.room(ask, clusters, free, need)
        assert got.tolist() == _room_by_hand(running, clusters, free, need, prio, tenant, lends), step
        # the victims on each cluster, as the lists give them (what ``_preempt`` listed before:
        # the candidates, tried from the highest priority down, then by job id)
        for c in clusters:
            listed = [
                r
                for r in running.get(c, [])
                if r.priority < prio or (lends is not None and r.tenant != tenant and r.tenant in lends)
            ]
            order = sorted(range(len(listed)), key=lambda i: (-listed[i].priority, listed[i].job_id))
            need_c = rng.uniform(0, 20, 3)
            got = ev.victims(ask, c, running, free[c], need_c)
            want = reprieve_numpy(free[c], [r.demand for r in listed], order, need_c) if listed else None
            if want is None:
                assert got is None, step
                continue
            assert got is not None
            jobs, victims = got
            assert [jobs[i].job_id for i in victims.tolist()] == [listed[i].job_id for i in want], step
        _sums_follow_fresh_lists(ev, running)
    assert evicted >= 20, evicted  # the preemption's path ran


def _sums_follow_fresh_lists(ev: Any, running: dict[int, list[Running]]) -> None:
    """Every cluster ``Evictable`` holds as read (not touched since) sums its list's demand."""
    fresh = np.flatnonzero(ev.fresh).tolist()
    assert fresh, "no cluster was read: the check would check nothing"
    for c in fresh:
        held = sum((ev.demand[row] for row in ev.rows_of.get(c, ())), np.zeros(3))
        listed = sum((r.demand for r in running.get(c, [])), np.zeros(3))
        assert np.allclose(held, listed), c


def test_the_prefilter_changes_no_decision_in_a_saturated_federation(monkeypatch: pytest.MonkeyPatch) -> None:
    """A federation filled until preemption and the reclaim of borrowed quota decide most
    placements (the shipped quota policy): the cycles decide exactly as when every cluster is
    searched (the prefilter answering yes everywhere), victims included."""
    from controller.jobs import JobCreate
    from controller.scheduler.batch import BatchScheduler
    from controller.scheduler.evictable import Evictable
    from controller.scheduler.queue import PendingQueue
    from controller.scheduler.scheduler import Scheduler
    from controller.services.policy_files import load_policy_set
    from controller.settings import REPO_POLICIES
    from controller.sim.federation import DEFAULT_DATA_DIR, federation, snapshot_of
    from controller.sim.mixed import MixedJobs
    from controller.sim.workload import make_catalogue
    from controller.topology.network import NetworkModel

    topo = federation(DEFAULT_DATA_DIR, ministries=8)
    cat = make_catalogue(topo)
    files = load_policy_set(REPO_POLICIES)

    def cycles() -> list[tuple[str | None, str | None, list[str]]]:
        bs = BatchScheduler(Scheduler.from_policy(files.placement), files.quota)
        gen = MixedJobs(topo, cat, seed=3)
        snap = snapshot_of(topo, NetworkModel(topo), datasets=dict(cat.datasets), residency=files.residency)
        snap.capacity *= 0.05  # a small federation: full after a few hundred jobs
        running: dict[int, list[Running]] = {}
        out = []
        for b in range(5):
            q = PendingQueue()
            for k, body in enumerate(gen.bodies(600)):
                spec = JobCreate.model_validate(body)
                q.push(f"b{b}-{k:04d}", bs.shapes.intern(spec), runtime=spec.expected_runtime_s)
            res = bs.run(q, snap, limit=600, running=running, now=100.0 + b)
            out += [(d.job_id, d.cluster, sorted(v.job_id for v in d.victims)) for d in res.decisions]
            _sums_follow_fresh_lists(bs._evictable, running)
        return out

    fast = cycles()
    monkeypatch.setattr(Evictable, "room", lambda self, ask, clusters, *a: np.ones(len(clusters), dtype=bool))
    every = cycles()
    assert fast == every
    preempting = [d for d in fast if d[2]]
    assert len(preempting) >= 20, len(preempting)  # the case the prefilter is for


def test_preemption_sees_lower_priority_work_placed_by_an_earlier_cycle() -> None:
    """A low-priority job placed by the previous cycle is a victim for a later job of higher
    priority: the lowest-priority memo starts afresh each cycle, never stale."""
    s, running = full_hainan([300, 300, 300])  # three quarters held by priority 300
    bs = batch(QuotaPolicy(max_victims=8, reclaim_borrowed=False))
    cap = s.capacity[index(HAINAN)]
    low = job(
        "hainan", cpu=float(cap[0] * 0.25) * 0.99, memory_gib=1.0, priority=100, constraints=ONLY_HAINAN
    )
    res = bs.run(enqueue(bs, [low]), s, running=running)
    assert res.decisions[0].cluster == HAINAN  # fills the last quarter at priority 100
    high = job("hainan", cpu=float(cap[0] * 0.2), memory_gib=1.0, priority=200, constraints=ONLY_HAINAN)
    res = bs.run(enqueue(bs, [high], prefix="h"), s, running=running)
    assert [v.job_id for v in res.victims] == ["j00000"]
    assert res.decisions[0].cluster == HAINAN


def test_who_borrows_is_asked_again_when_the_quota_book_changes() -> None:
    """``Evictable.ask`` keeps who borrows while the book's count of changes stays; a job admitted
    past its tenant's nominal quota (or released under it) is seen by the next ask."""
    from controller.policies import TenantQuota
    from controller.scheduler.evictable import Evictable
    from controller.scheduler.quota import QuotaBook

    quota = QuotaPolicy(
        tenants={t: TenantQuota(nominal={"cpu": 10}, borrowing_limit={"cpu": 100}) for t in "ab"}
    )
    book = QuotaBook(quota, np.array([1000.0, 1000.0, 8.0]), ["a", "b"])
    ev = Evictable(2)
    running = {0: [Running("j1", 0, 0, np.array([1.0, 1.0, 0.0]), "a"), Running("j2", 0, 0, np.ones(3), "b")]}
    ev.sync(running, [0])

    def lends() -> list[bool]:
        ask = ev.ask(100, "b", book.borrowing, (id(book), book.changes))
        assert ask.lends is not None
        return ask.lends.tolist()

    assert lends() == [False, False]
    book.admit("a", [15.0, 0.0, 0.0])  # past a's nominal 10 cpu: borrowing
    assert lends() == [True, False]
    assert lends() == [True, False]  # kept
    book.release("a", [15.0, 0.0, 0.0])
    assert lends() == [False, False]
