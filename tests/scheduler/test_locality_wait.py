"""Delay scheduling for data locality (placement policy ``locality_wait_max_s``) and the
locality score's weighing of fetch time and bytes moved."""

from __future__ import annotations

import numpy as np

from controller.datasets import Classification, DatasetRead
from controller.scheduler.batch import REASON_LOCALITY_WAIT
from controller.scheduler.framework import CycleState, JobInfo, normalize_lower_is_better
from controller.scheduler.plugins.locality import LocalityScore, transfer_estimate
from tests.scheduler.helpers import ALL, DATASETS, batch, enqueue, fill, index, job, snap

WEATHER = DATASETS["open-weather"]  # general data, 200 GB, on national-primary


def waiting_policy(max_s: float):  # type: ignore[no-untyped-def]
    return ALL.model_copy(update={"locality_wait_max_s": max_s})


def extra_seconds(s, spec) -> float:  # type: ignore[no-untyped-def]
    """How much longer the inputs take to reach the best other cluster than where they are."""
    seconds, _ = transfer_estimate(JobInfo(id=None, spec=spec, inputs=[WEATHER], missing_inputs=[]), s)
    others = np.delete(seconds, index("national-primary"))
    return float(others.min() - seconds[index("national-primary")])


def test_a_job_waits_for_the_cluster_holding_its_inputs_then_runs_there() -> None:
    s = snap()
    fill(s, "national-primary", 1.0)  # the data's cluster is full
    spec = job(tenant="beijing", cpu=4, inputs=["open-weather"])
    assert extra_seconds(s, spec) > 10
    bs = batch(policy=waiting_policy(300))
    q = enqueue(bs, [spec])
    first = bs.run(q, s, now=1000.0)
    (d,) = first.decisions
    assert d.chosen < 0 and d.job_reason == ("locality", REASON_LOCALITY_WAIT)
    assert "waiting for a cluster that holds its inputs" in d.summary()
    s.allocated[index("national-primary")] = 0.0  # capacity frees up meanwhile
    (d,) = bs.run(q, s, now=1005.0).decisions
    assert d.cluster == "national-primary"  # placed next to its data: nothing moved
    assert not bs.waiting_since


def test_the_wait_ends_after_the_extra_fetch_time_and_never_beyond_the_cap() -> None:
    s = snap()
    fill(s, "national-primary", 1.0)
    spec = job(tenant="beijing", cpu=4, inputs=["open-weather"])
    extra = extra_seconds(s, spec)
    for cap, expected_wait in ((300.0, min(extra, 300.0)), (5.0, 5.0)):
        bs = batch(policy=waiting_policy(cap))
        q = enqueue(bs, [spec])
        assert bs.run(q, s, now=0.0).decisions[0].chosen < 0
        assert bs.run(q, s, now=expected_wait - 0.5).decisions[0].chosen < 0
        (d,) = bs.run(q, s, now=expected_wait + 0.5).decisions
        assert d.chosen >= 0 and d.cluster != "national-primary"  # moving is cheaper than waiting on


def test_off_by_default_and_never_for_jobs_without_inputs() -> None:
    s = snap()
    fill(s, "national-primary", 1.0)
    bs = batch()  # locality_wait_max_s = 0
    (d,) = bs.run(enqueue(bs, [job(tenant="beijing", cpu=4, inputs=["open-weather"])]), s).decisions
    assert d.chosen >= 0
    bs = batch(policy=waiting_policy(300))
    (d,) = bs.run(enqueue(bs, [job(tenant="beijing", cpu=4)]), s, now=0.0).decisions
    assert d.chosen >= 0


def test_locality_weighs_bytes_moved_not_only_fetch_time() -> None:
    """Inputs of 100 GB in Beijing and in Tianjin: the national primary (on the backbone)
    fetches both fastest, so fetch time alone picks it and moves 200 GB; running in either
    province moves 100 GB. The score's bytes half picks a province."""
    a, b = (
        DatasetRead(
            id=ds_id,
            owner="national",
            size_bytes=10**11,
            classification=Classification.general,
            locations=[where],
        )
        for ds_id, where in (("a", "prov-beijing"), ("b", "prov-tianjin"))
    )
    s = snap(datasets={**DATASETS, "a": a, "b": b})
    info = JobInfo(id=None, spec=job(tenant="national", inputs=["a", "b"]), inputs=[a, b], missing_inputs=[])
    seconds, moved = transfer_estimate(info, s)
    feasible = np.ones(s.size, dtype=bool)
    by_time = int(np.argmax(normalize_lower_is_better(seconds, feasible)))
    assert s.names[by_time] == "national-primary" and moved[by_time] == 2 * 10**11
    chosen = int(np.argmax(LocalityScore().score(CycleState(), info, s, feasible)))
    assert s.names[chosen] in ("prov-beijing", "prov-tianjin") and moved[chosen] == 10**11
