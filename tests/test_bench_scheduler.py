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


def test_the_10m_memory_figure_is_a_fit_with_its_band_not_two_points() -> None:
    """A leader whose memory is flat except for an arena step between two points: the line
    through every point past the warm-up stays near flat, its band covers the flat truth; a
    memory that grows a fixed amount per million is extrapolated exactly, with no band."""
    from controller.bench.mixed import extrapolate_10m

    flat = [
        [250_000 * k, 400.0 + (12.0 if k >= 7 else 0.0) + (1.5 if k % 2 else -1.5), 0.0] for k in range(1, 8)
    ]
    got = extrapolate_10m(flat)
    assert got["fit_points"] == 6 and got["fit_span"] == [500_000, 1_750_000]  # the warm-up left out
    two_points = flat[-1][1] + (flat[-1][1] - flat[3][1]) / 0.75 * (10 - 1.75)  # the old estimate
    assert got["after_10m_mib"] < two_points
    lo, hi = got["after_10m_band_mib"]
    assert lo < 412.0 < hi and lo <= got["after_10m_mib"] <= hi

    growing = [[250_000 * k, 300.0 + 8.0 * k / 4, 0.0] for k in range(1, 9)]
    exact = extrapolate_10m(growing)
    assert exact["after_10m_mib"] == 380.0 and exact["slope_mib_per_million"] == 8.0
    assert exact["after_10m_band_mib"] == [380.0, 380.0]

    short = extrapolate_10m([[250_000, 390.0, 0.0], [500_000, 395.0, 0.0]])
    assert short["fit_points"] == 2 and short["after_10m_mib"] == 390.0 + 5.0 * (10 - 0.25) / 0.25


def test_bench_reports_takes_every_report_of_every_placed_job() -> None:
    """The reports benchmark on a small queue: every placed job reported Running then
    Succeeded, each report taken (the benchmark refuses to report a rate otherwise)."""
    from controller.bench.lifecycle import bench_reports

    r = bench_reports(DEFAULT_DATA_DIR, jobs=600)
    assert r["jobs_placed"] >= 500 and r["reports"] == 2 * r["jobs_placed"]
    assert r["reports_per_s"] > 0 and r["store"] == "sqlite"
    # idle rounds with the pages' tags sent back: nothing answered but 304s
    assert r["idle_poll_bytes_per_round"] == 0 and r["poll_bytes_per_round"] > 600 * 500
    assert r["agent_parse_us_per_assignment"] > 0


def test_bench_listing_lists_the_active_attempts_among_the_finished() -> None:
    from controller.bench.lifecycle import bench_listing_one_cluster

    r = bench_listing_one_cluster(active=700, finished=1400)
    assert r["listed"] == 700 and r["listing_ms"] > 0 and r["store"] == "sqlite"


def test_bench_saturated_times_cycles_of_a_full_federation_with_and_without_candidates() -> None:
    """``bench_saturated`` (``make bench --only saturated``), small: the federation filled, then
    each timed cycle beside the same cycle without preemption candidates; the cycles preempt."""
    from controller.bench.mixed import bench_saturated

    r = bench_saturated(DEFAULT_DATA_DIR, fill_batches=3, batch=300, cycles=2)
    assert len(r["with_candidates_ms"]) == len(r["without_candidates_ms"]) == 2
    assert r["placed_jobs"] > 10_000 and r["cycle_ms"] > 0
    assert sum(r["victims_per_cycle"]) > 0  # the candidates were used
