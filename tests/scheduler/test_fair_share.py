"""Ordering: priority, then dominant-resource fair share, then FIFO."""

from __future__ import annotations

from controller.policies import QuotaPolicy
from controller.scheduler.queue import PendingQueue
from controller.scheduler.quota import QuotaBook
from controller.scheduler.shapes import ShapeTable
from tests.scheduler.helpers import batch, enqueue, fill, job, snap

CAP = [1000.0, 4000.0, 10.0]


def order(q: PendingQueue, b: QuotaBook, admit: bool = False) -> list[str]:
    out = []
    for job_id, _, _, shape in q.drain_ordered(b, 100):
        out.append(job_id)
        if admit:
            b.admit(shape.tenant, shape.demand_list)
    return out


def test_lower_dominant_share_goes_first() -> None:
    shapes = ShapeTable()
    q = PendingQueue()
    q.push("a1", shapes.intern(job("anhui")))
    q.push("b1", shapes.intern(job("beijing")))
    b = QuotaBook(None, CAP, ["anhui", "beijing"])
    b.admit("anhui", [100, 0, 0])  # anhui already uses 10 % of the cpu
    assert order(q, b) == ["b1", "a1"]


def test_dominant_resource_is_the_largest_share() -> None:
    b = QuotaBook(None, CAP, ["x", "y"])
    b.admit("x", [10, 2000, 0])  # 1 % cpu, 50 % memory
    b.admit("y", [300, 0, 0])  # 30 % cpu
    assert b.dominant_share("x") > b.dominant_share("y")


def test_priority_beats_fair_share_and_fifo_holds_within_a_tenant() -> None:
    shapes = ShapeTable()
    q = PendingQueue()
    q.push("low-1", shapes.intern(job("anhui", priority=10)))
    q.push("low-2", shapes.intern(job("anhui", priority=10, cpu=2)))
    q.push("high", shapes.intern(job("beijing", priority=500)))
    b = QuotaBook(None, CAP, ["anhui", "beijing"])
    b.admit("beijing", [900, 0, 0])
    assert order(q, b) == ["high", "low-1", "low-2"]


def test_contended_tenants_alternate_by_share() -> None:
    """Equal jobs of two tenants: DRF interleaves them as each placement raises a share."""
    shapes = ShapeTable()
    q = PendingQueue()
    for i in range(3):
        q.push(f"a{i}", shapes.intern(job("anhui", cpu=10)))
    for i in range(3):
        q.push(f"b{i}", shapes.intern(job("beijing", cpu=10)))
    got = order(q, QuotaBook(None, CAP, ["anhui", "beijing"]), admit=True)
    assert got == ["a0", "b0", "a1", "b1", "a2", "b2"]


def test_batch_serves_the_starved_tenant_first_when_capacity_is_short() -> None:
    """Room for one 100-cpu job on the only allowed cluster: the tenant with nothing running
    gets it, though the other tenant's job was queued first."""
    bs = batch(QuotaPolicy())
    s = snap()
    fill(s, "prov-hainan", 0.0)
    s.allocated[:] = s.capacity
    s.allocated[bs_index := [c.name for c in s.clusters].index("prov-hainan")] = 0
    cap = float(s.capacity[bs_index, 0])
    allow = {"allow_clusters": ["prov-hainan"]}
    specs = [job("anhui", cpu=cap * 0.6, constraints=allow), job("beijing", cpu=cap * 0.6, constraints=allow)]
    s.tenant_usage = {"anhui": __import__("numpy").array([5000.0, 0, 0])}
    res = bs.run(enqueue(bs, specs), s)
    placed = [d.job_id for d in res.decisions if d.chosen >= 0]
    assert placed == ["j00001"]  # beijing's job


def test_constrained_work_goes_before_flexible_work() -> None:
    """Room for one job on hainan: the job that may only run there gets it, though queued last."""
    bs = batch()
    s = snap()
    i = [c.name for c in s.clusters].index("prov-hainan")
    s.allocated[:] = s.capacity
    s.allocated[i] = 0
    cap = float(s.capacity[i, 0])
    flexible = job("anhui", cpu=cap * 0.6)
    constrained = job("hainan", cpu=cap * 0.6, constraints={"allow_clusters": ["prov-hainan"]})
    res = bs.run(enqueue(bs, [flexible, constrained]), s)
    assert [d.job_id for d in res.decisions if d.chosen >= 0] == ["j00001"]


def test_drf_order_is_live_within_a_cycle() -> None:
    from controller.scheduler.batch import ORDER_DRF

    bs = batch()
    bs.order = ORDER_DRF
    specs = [job("anhui", cpu=100)] * 3 + [job("beijing", cpu=100)] * 3
    res = bs.run(enqueue(bs, specs), snap())
    tenants = [d.shape.tenant for d in res.decisions]
    assert tenants == ["anhui", "beijing"] * 3
