"""`drill run --runs N` reports the median (and range) of every numeric measurement."""

from __future__ import annotations

from controller.drills.report import DrillReport
from controller.drills.runner import medians


def test_medians_over_runs_skip_missing_values() -> None:
    reps = []
    for dup, rto in [(3, 40.0), (0, None), (5, 30.0), (1, 35.0), (0, 50.0)]:
        rep = DrillReport("s", "", "")
        rep.measurements = {"duplicate_successes": dup, "rto_s": rto, "code": "x"}
        reps.append(rep)
    m = medians(reps)
    assert m["duplicate_successes"] == {"median": 1, "min": 0, "max": 5, "runs": 5}
    assert m["rto_s"] == {"median": 37.5, "min": 30.0, "max": 50.0, "runs": 4}
    assert "code" not in m
