"""Preemption: bounded, explained victim choice on one cluster; victims go back to Pending."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from controller.policies import QuotaPolicy
from controller.scheduler.batch import Running
from controller.settings import Settings
from tests.scheduler.helpers import batch, enqueue, index, job, snap

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
