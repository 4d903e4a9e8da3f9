"""Quota: guaranteed nominal, borrowing from the cohort, borrowing limits, priority classes."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from controller.policies import QuotaPolicy, TenantQuota
from controller.scheduler.quota import QuotaBook, effective_priority
from controller.services.policy_files import load_policy_set
from tests.scheduler.helpers import batch, enqueue, job, snap

REPO = Path(__file__).resolve().parents[2]
CAP = [100000.0, 400000.0, 100.0]


def book(**tenants: TenantQuota) -> QuotaBook:
    return QuotaBook(QuotaPolicy(tenants=tenants), CAP, ["a", "b", "c"])


Q = TenantQuota(nominal={"cpu": 10, "memory_gib": 40}, borrowing_limit={"cpu": 5, "memory_gib": 20})


@pytest.mark.parametrize(
    ("used_a", "used_b", "need", "admitted", "why"),
    [
        (0, 0, 10, True, None),  # within nominal: guaranteed
        (8, 0, 4, True, None),  # borrows 2 from b's unused nominal
        (8, 0, 8, False, "nominal+borrowable"),  # 16 > 10 + 5
        (8, 10, 4, False, "no unused quota"),  # b uses all its nominal: nothing to lend
        (0, 10, 10, True, None),  # nominal is guaranteed even when the cohort is busy
    ],
)
def test_admission(used_a: float, used_b: float, need: float, admitted: bool, why: str | None) -> None:
    b = book(a=Q, b=Q)
    b.admit("a", [used_a, 0, 0])
    b.admit("b", [used_b, 0, 0])
    reason, _ = b.check("a", [need, 1, 0])
    assert (reason is None) is admitted, reason
    if why:
        assert reason is not None and why in reason


def test_limit_that_can_never_be_met_is_unresolvable() -> None:
    reason, never = book(a=Q, b=Q).check("a", [20, 1, 0])
    assert reason and never


def test_tenant_without_quota_is_unlimited() -> None:
    assert book(a=Q).check("zzz", [10**6, 10**6, 0]) == (None, False)


def test_unknown_resource_is_rejected() -> None:
    with pytest.raises(ValidationError):
        QuotaPolicy.model_validate({"tenants": {"a": {"nominal": {"cpus": 1}}}})


def test_shipped_quota_policy_loads() -> None:
    ps = load_policy_set(REPO / "policies")
    assert ps.quota.priority_classes["failover"] > ps.quota.priority_classes["normal"]
    assert "national" in ps.quota.tenants


def test_priority_class_gives_the_priority() -> None:
    p = QuotaPolicy()
    assert effective_priority(job(priority_class="high"), p) == 1000
    assert effective_priority(job(priority=7), p) == 7
    assert effective_priority(job(priority_class="nope"), p) is None


def test_batch_applies_quota_with_live_usage() -> None:
    """Three 6-cpu jobs of a tenant with nominal 10 + borrow 5: two fit (12 <= 15), the third waits
    with the quota reason on the clusters it would fit, and nothing is reserved for it."""
    quota = QuotaPolicy(tenants={"guangdong": Q}, default=TenantQuota(nominal={"cpu": 100}))
    bs = batch(quota)
    s = snap()
    res = bs.run(enqueue(bs, [job(cpu=6.0)] * 3), s)
    assert res.scheduled == 2
    waiting = [d for d in res.decisions if d.chosen < 0]
    assert len(waiting) == 1
    full = waiting[0].to_decision()
    assert full.status == "Unschedulable" and full.feasible == []
    assert {r.plugin for r in full.rejected} == {"quota"}
    assert "would exceed its quota of cpu" in full.summary
    assert s.allocated[:, 0].sum() == pytest.approx(12.0)


def test_unknown_priority_class_waits_with_a_reason() -> None:
    bs = batch(QuotaPolicy())
    res = bs.run(enqueue(bs, [job(priority_class="platinum")]), snap())
    d = res.decisions[0].to_decision()
    assert d.cluster is None and "priority class 'platinum'" in d.summary
