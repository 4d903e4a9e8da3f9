"""How a cluster fault's jobs are counted: ran again (timed in RTO), waiting for residency, or
finished where they were as the fault struck (counted apart: nothing was recovered)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from controller.drills.runner import DrillRunner
from controller.drills.scenario import parse_scenario
from tests.drills.conftest import small_scenario


def job(job_id: str, phase: str, cluster: str, attempt: int) -> dict[str, Any]:
    return {"id": job_id, "phase": phase, "cluster": cluster, "attempt": attempt, "message": ""}


@pytest.fixture
def runner() -> Iterator[DrillRunner]:
    """A runner of the small scenario, never started: the tests set what it observed."""
    r = DrillRunner(parse_scenario(small_scenario()))
    yield r
    shutil.rmtree(r.workdir, ignore_errors=True)


def test_a_job_that_finished_in_place_is_not_timed_as_recovered(runner: DrillRunner) -> None:
    [run] = runner.runs
    run.injected_mono, run.detected_s = time.monotonic() - 2.0, 1.0
    for j in ("a", "b", "c"):
        run.affected[j] = job(j, "Running", "prov-hainan", 1)
    runner.jobs = {
        "a": job("a", "Succeeded", "prov-hainan", 1),  # its success reached us as the fault struck
        "b": job("b", "Running", "national-backup", 2),
        "c": job("c", "Running", "prov-hainan", 1),  # not yet moved
    }
    runner.observe(None)
    assert run.finished_in_place == {"a"} and set(run.recovered) == {"b"}
    assert run.moved_to == {"b": "national-backup"}
    assert run.outstanding() == ["c"] and run.rto_s is None and not runner.settled()

    runner.jobs["c"] = job("c", "Succeeded", "national-backup", 2)
    runner.observe(None)
    assert run.outstanding() == [] and run.rto_s is not None and run.rto_s >= 2.0
    body = run.as_dict()
    assert (body["affected_jobs"], body["recovered_jobs"], body["finished_in_place"]) == (3, 2, 1)
    assert body["moved_to"] == {"b": "national-backup", "c": "national-backup"}
    assert runner.settled()


def test_a_fault_whose_jobs_all_finished_in_place_measures_no_rto(runner: DrillRunner) -> None:
    """Nothing ran again, so there is no recovery to time: the RTO is unmeasured (a budget on it
    then fails as unmeasured), not 0."""
    [run] = runner.runs
    run.injected_mono = time.monotonic()
    run.affected["a"] = job("a", "Running", "prov-hainan", 1)
    runner.jobs = {"a": job("a", "Succeeded", "prov-hainan", 1)}
    runner.observe(None)
    assert run.finished_in_place == {"a"} and run.outstanding() == []
    assert run.rto_s is None and run.as_dict()["rto_s"] is None


def test_the_rto_is_when_the_executors_started_the_jobs_again(runner: DrillRunner) -> None:
    """A cluster fault's RTO reads the executors' records (what ran), not the drill's view through
    the API, which comes later by however long the drill went without a fresh view; both are
    reported, and the slowest job with both of its times."""
    from controller.drills.records import ExecutionRecord

    [run] = runner.runs
    t0 = time.monotonic() - 20.0
    run.injected_mono, run.detected_s = t0, 1.0
    for j in ("a", "b"):
        run.affected[j] = job(j, "Running", "prov-hainan", 1)
    runner.jobs = {j: job(j, "Running", "national-backup", 2) for j in ("a", "b")}
    runner.observe(None)  # seen back about 20 s after the fault
    seen = run.rto_s
    assert seen is not None and seen >= 20.0

    records = [
        ExecutionRecord("prov-hainan", "a", 1, t0 - 5.0, 0.0, t0, 0.0, "stopped"),  # before the fault
        ExecutionRecord("national-backup", "a", 2, t0 + 3.5, 0.0),
        ExecutionRecord("national-backup", "b", 2, t0 + 4.25, 0.0),
        ExecutionRecord("national-backup", "b", 2, t0 + 9.0, 0.0),  # a later one does not count
    ]
    runner.note_restarts(records)
    assert run.started_again == pytest.approx({"a": 3.5, "b": 4.25})
    assert run.rto_s == pytest.approx(4.25) and run.rto_seen_s == seen
    body = run.as_dict()
    assert body["rto_s"] == pytest.approx(4.25, abs=1e-3) and body["rto_seen_s"] >= 20.0
    assert body["slowest_recovery"]["job_id"] == "b"
    assert body["slowest_recovery"]["executor_started_s"] == pytest.approx(4.25, abs=1e-3)
