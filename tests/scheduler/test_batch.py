"""The batch loop: never overcommits, explains every decision (plan = cycle: test_plan_parity.py)."""

from __future__ import annotations

import numpy as np
import pytest

from controller.scheduler.decision import Decision
from controller.scheduler.queue import PendingQueue
from tests.scheduler.helpers import DATASETS, TOPO, batch, enqueue, job, overcommitted, snap

TENANTS = sorted({c.tenant for c in TOPO.clusters})


def burst(rng: np.random.Generator, n: int) -> list:
    specs = []
    for _ in range(n):
        inputs = list(rng.choice(sorted(DATASETS), size=int(rng.integers(0, 3)), replace=False))
        specs.append(
            job(
                str(rng.choice(TENANTS)),
                cpu=float(rng.choice([1, 8, 64, 256])),
                memory_gib=float(rng.choice([1, 64, 512])),
                replicas=int(rng.integers(1, 9)),
                inputs=inputs,
                priority=int(rng.integers(0, 3)) * 100,
                delay_tolerant=bool(rng.random() < 0.5),
            )
        )
    return specs


@pytest.mark.parametrize("seed", range(8))
def test_random_bursts_never_overcommit(seed: int) -> None:
    """A failover-sized wave into a partly full federation, several cycles in a row."""
    rng = np.random.default_rng(seed)
    s = snap()
    s.allocated[:] = s.capacity * rng.uniform(0.0, 0.9, size=(len(s.capacity), 1))
    bs = batch()
    q = enqueue(bs, burst(rng, 600))
    before = s.allocated.copy()
    placed = 0
    for _ in range(3):
        res = bs.run(q, s, limit=400)
        placed += res.scheduled
        assert not overcommitted(s)
        for d in res.decisions:
            body = d.to_body()
            full = Decision.model_validate(body)
            assert len(full.feasible) + len(full.rejected) == len(TOPO.clusters)
            if d.chosen >= 0:
                assert full.cluster in {f.cluster for f in full.feasible}
                best = max(f.total for f in full.feasible)
                assert [f.total for f in full.feasible if f.cluster == full.cluster] == [best]
                assert d.shape.feasible_static[d.chosen]  # residency and constraints held
            else:
                assert full.feasible == [] and full.summary.startswith("0/")
    assert np.all(s.allocated >= before - 1e-9)
    assert len(q) == 600 - placed


def test_decision_time_does_not_depend_on_queue_length() -> None:
    """Structural, not timed: a cycle with limit k pops k jobs whatever the queue holds."""
    bs = batch()
    q = enqueue(bs, [job(cpu=1.0)] * 5000)
    res = bs.run(q, snap(), limit=100)
    assert len(res.decisions) == 100 and len(q) == 4900


def test_compact_body_round_trips() -> None:
    bs = batch()
    res = bs.run(enqueue(bs, [job(inputs=["gd-tax"])]), snap())
    d = res.decisions[0]
    full = Decision.model_validate(d.to_body())
    assert full == Decision.model_validate(d.to_decision().model_dump(mode="json"))
    assert full.cluster == "prov-guangdong"
    assert {f.cluster for f in full.feasible} == {"prov-guangdong", "national-primary", "national-backup"}
    assert set(full.feasible[0].scores) == {"locality", "constraints", "balance", "green"}


def test_hold_keeps_room_for_a_starving_gang() -> None:
    """With holds on, a gang that keeps failing gets capacity held; smaller jobs cannot take it."""
    s = snap()
    i = [c.name for c in s.clusters].index("prov-hainan")
    s.allocated[:] = s.capacity
    s.allocated[i] = s.capacity[i] * 0.5
    cap = float(s.capacity[i, 0])
    allow = {"allow_clusters": ["prov-hainan"]}
    bs = batch()
    bs.hold_after = 1
    bs.hold_after_s = 0.0
    q = enqueue(bs, [job("hainan", cpu=cap * 0.8, constraints=allow)], prefix="gang")
    bs.run(q, s)
    assert "gang00000" in bs.holds
    small = enqueue(bs, [job("hainan", cpu=cap * 0.3, constraints=allow)], prefix="small")
    res = bs.run(small, s)
    assert res.decisions[0].chosen < 0  # 0.5 free, 0.8 held: nothing left for it
    s.allocated[i] = 0.0
    res = bs.run(q, s)
    assert res.decisions[0].cluster == "prov-hainan" and not bs.holds


def test_failover_goes_to_the_first_feasible_designated_backup() -> None:
    """A re-placed job of a failed cluster takes the first backup of its group that fits, even
    when another cluster scores higher; without an origin it goes where the scores say."""
    from controller.jobs import JobCreate

    backups = {"prov-guangdong": ["national-backup", "prov-hainan"]}
    s = snap()
    s.cordoned[[c.name for c in s.clusters].index("national-backup")] = True
    spec = JobCreate(name="j", tenant="guangdong")
    bs = batch()
    q = PendingQueue()
    q.push("again", bs.shapes.intern(spec, origin="prov-guangdong"), attempt=2)
    q.push("first", bs.shapes.intern(spec))
    res = bs.run(q, s, backups=backups)
    by_id = {d.job_id: d for d in res.decisions}
    assert by_id["again"].cluster == "prov-hainan"
    assert "failover: designated backup of prov-guangdong" in by_id["again"].to_decision().summary
    assert by_id["first"].cluster != "prov-hainan"
