"""Fractional GPUs in the scheduler: capacity packs thousandths, gang and quota see the same
demand, DRF counts GPUs as a resource (dominant share)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from controller.jobs import JobCreate, Resources
from controller.policies import QuotaPolicy
from controller.scheduler.framework import GPU, demand_vector
from controller.scheduler.quota import QuotaBook
from tests.scheduler.helpers import batch, enqueue, index, overcommitted, snap


def gpu_job(milli: int, replicas: int = 1, tenant: str = "hainan") -> JobCreate:
    return JobCreate(
        name="t",
        tenant=tenant,
        resources=Resources(cpu=1.0, memory_gib=1.0, gpu_milli=milli),
        replicas=replicas,
        constraints={"allow_clusters": ["prov-hainan"]},
    )


def test_the_demand_vector_carries_thousandths() -> None:
    assert demand_vector(gpu_job(250, replicas=3))[GPU] == pytest.approx(0.75)
    whole = JobCreate(name="t", tenant="hainan", resources=Resources(gpu=2), replicas=2)
    assert demand_vector(whole)[GPU] == 4.0
    assert Resources(gpu=1, gpu_milli=1000).gpus == 1.0  # the same amount both ways is fine
    with pytest.raises(ValidationError):
        Resources(gpu=1, gpu_milli=300)


def test_shared_gpus_pack_to_the_last_thousandth_and_no_further() -> None:
    s = snap()
    h = index("prov-hainan")
    s.capacity[h, GPU] = 1.0
    bs = batch()
    q = enqueue(bs, [gpu_job(250) for _ in range(5)])
    res = bs.run(q, s)
    placed = [d for d in res.decisions if d.chosen == h]
    assert len(placed) == 4  # four quarters fill the one GPU
    assert s.allocated[h, GPU] == pytest.approx(1.0)
    assert not overcommitted(s)
    waiting = [d for d in res.decisions if d.chosen < 0]
    assert len(waiting) == 1 and "gpu" in waiting[0].summary()


def test_a_gang_of_shared_gpus_larger_than_the_cluster_is_never_placed() -> None:
    s = snap()
    h = index("prov-hainan")
    s.capacity[h, GPU] = 1.0
    bs = batch()
    res = bs.run(enqueue(bs, [gpu_job(400, replicas=3)]), s)  # 1.2 GPUs on a 1-GPU cluster
    assert res.decisions[0].chosen < 0 and "gang" in res.decisions[0].summary()


def test_gpus_are_a_dominant_resource_for_fair_share_and_quota() -> None:
    s = snap()
    total = s.capacity.sum(axis=0)
    book = QuotaBook(None, total, list(s.tenants), {})
    book.admit("hainan", list(demand_vector(gpu_job(500, replicas=4))))
    # 2 GPUs of the federation's GPUs is a larger share than 4 cores of its cores here.
    assert book.dominant_share("hainan") == pytest.approx(2.0 / total[GPU])
    quota = QuotaPolicy.model_validate({"tenants": {"hainan": {"nominal": {"gpu": 1.0}}}})
    qbook = QuotaBook(quota, total, list(s.tenants), {"hainan": np.array([0.0, 0.0, 0.75])})
    why, _never = qbook.check("hainan", list(demand_vector(gpu_job(300))))
    assert why is not None and "gpu" in why  # 0.75 + 0.3 > 1 GPU
    why, _never = qbook.check("hainan", list(demand_vector(gpu_job(250))))
    assert why is None  # 0.75 + 0.25 = 1 GPU fits


def test_balance_sends_a_gpu_job_where_the_most_gpu_share_stays_free() -> None:
    from controller.scheduler.plugins.balance import BalanceScore

    cap = np.array([[100.0, 100.0, 4.0], [100.0, 100.0, 4.0]])
    free = np.array([[90.0, 90.0, 1.0], [50.0, 50.0, 4.0]])  # the first has cpu, the second GPUs
    gpu = BalanceScore().score_free(free, cap, np.array([1.0, 1.0, 0.5]))
    assert gpu[1] > gpu[0]
    cpu_only = BalanceScore().score_free(free, cap, np.array([1.0, 1.0, 0.0]))
    assert cpu_only[0] > cpu_only[1]  # a cpu-only job does not look at GPUs
