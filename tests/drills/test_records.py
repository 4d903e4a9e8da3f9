"""The double-run detector, fed records; and the recording executor's own start/stop records."""

from __future__ import annotations

from controller.assignments import Assignment
from controller.drills.records import (
    ExecutionRecord,
    RecordingSimulatedExecutor,
    RecordSink,
    find_double_runs,
)
from controller.executors.simulated import SimNode, VirtualClock
from controller.jobs import JobCreate
from controller.store.store import now


def rec(job: str, attempt: int, start: float, end: float | None, cluster: str = "prov-a") -> ExecutionRecord:
    return ExecutionRecord(cluster, job, attempt, start, start, end, end)


def test_detects_two_attempts_running_at_the_same_time() -> None:
    found = find_double_runs(
        [rec("j1", 1, 0.0, 10.0, "prov-guangdong"), rec("j1", 2, 8.0, 20.0, "national-backup")]
    )
    assert len(found) == 1
    assert found[0].job_id == "j1" and abs(found[0].overlap_s - 2.0) < 1e-9
    assert (found[0].first.attempt, found[0].second.attempt) == (1, 2)


def test_detects_one_attempt_on_two_clusters_and_a_never_stopped_attempt() -> None:
    same_attempt = [rec("j2", 1, 0.0, 5.0, "prov-a"), rec("j2", 1, 4.0, 6.0, "prov-b")]
    never_stopped = [rec("j3", 1, 0.0, None), rec("j3", 2, 100.0, 110.0)]
    found = find_double_runs(same_attempt + never_stopped)
    assert sorted(d.job_id for d in found) == ["j2", "j3"]
    assert next(d for d in found if d.job_id == "j3").as_dict()["overlap_s"] == 10.0


def test_sequential_and_touching_executions_are_not_double_runs() -> None:
    records = [
        rec("j4", 1, 0.0, 5.0),
        rec("j4", 2, 5.0, 9.0),  # starts exactly when the first stopped
        rec("j4", 3, 12.0, 14.0),
        rec("j5", 1, 0.0, 20.0),  # another job at the same time is fine
    ]
    assert find_double_runs(records) == []


def assignment(job: str, attempt: int, runtime: float) -> Assignment:
    spec = JobCreate(name=job, tenant="hainan", expected_runtime_s=runtime)
    return Assignment(
        job_id=job,
        attempt=attempt,
        epoch=1,
        cluster="prov-hainan",
        tenant="hainan",
        spec=spec,
        lease_expires_at=now(),
    )


def test_recording_executor_writes_start_stop_and_completion_times() -> None:
    clock = VirtualClock(100.0)
    sink = RecordSink()
    ex = RecordingSimulatedExecutor("prov-hainan", [SimNode("n0", 8, 32)], sink, clock=clock)
    ex.start(assignment("a", 1, 10.0))
    ex.start(assignment("a", 1, 10.0))  # idempotent: one record
    ex.start(assignment("b", 1, 50.0))
    clock.advance(4.0)
    ex.stop("b", 1, "LeaseLost")
    clock.advance(30.0)
    assert ex.poll("a", 1).phase == "Succeeded"
    by_job = {r.job_id: r for r in sink.snapshot()}
    assert len(sink.snapshot()) == 2
    assert (by_job["a"].started, by_job["a"].ended, by_job["a"].end_reason) == (100.0, 110.0, "Completed")
    assert (by_job["b"].started, by_job["b"].ended, by_job["b"].end_reason) == (100.0, 104.0, "Stopped")
    assert find_double_runs(sink.snapshot()) == []
