"""``bench_scheduler`` (make bench's scheduler parts) runs under both policy sets, at a small size:
the all-plugins figure and the shipped policies' figure beside it, each saying which it used."""

from __future__ import annotations

import pytest

from controller.bench.mixed import bench_scheduler
from controller.sim.federation import DEFAULT_DATA_DIR


@pytest.mark.parametrize(("policies", "wait", "filters"), [("all-plugins", 0.0, 6), ("shipped", 300.0, 5)])
def test_bench_scheduler_runs_under_either_policy_set(policies: str, wait: float, filters: int) -> None:
    r = bench_scheduler(DEFAULT_DATA_DIR, runs=2, batch=300, policies=policies)
    assert r["policies"] == policies and r["locality_wait_max_s"] == wait
    assert len(r["plugins"]["filters"]) == filters  # the shipped placement leaves quota to the book
    assert len(r["runs"]) == 2 and all(x > 0 for x in r["runs"])
    assert all(0 < n <= 300 for n in r["scheduled_per_batch"])
    assert r["distinct_jobs_per_batch"] == [300, 300, 300]


def test_bench_scheduler_refuses_an_unknown_policy_set() -> None:
    with pytest.raises(ValueError, match="all-plugins or shipped"):
        bench_scheduler(DEFAULT_DATA_DIR, runs=1, batch=10, policies="fast")
