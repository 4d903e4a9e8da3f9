"""An agent's batch of status reports is written in bulk (``AgentProtocol.apply_reports`` ->
``JobsRepo.transition_many``): one UPDATE and one INSERT of events for the call. What the batch
must keep of the per-report path it replaced, on SQLite and on PostgreSQL: every report checked
against its job as the reports before it left it, each outcome in order, the rows, events,
leases and outputs exactly as one report at a time wrote them, and nothing written when a row
moved under the lock."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from controller.assignments import StatusReport
from controller.errors import NotFound, StaleAttempt
from controller.jobs import JobCreate
from controller.service import Controller
from controller.settings import Settings
from controller.store import schema as t
from controller.store.store import OUTPUT_EVENT, Change

CLUSTER = "prov-hubei"


def _controller(db_url: str) -> Controller:
    ctl = Controller(Settings(database_url=db_url, background=False, leader_ttl_s=600.0))
    ctl.heartbeat(CLUSTER, {"capacity": {"cpu": 64, "memory_gib": 256, "gpu": 0}})
    return ctl


def _placed(ctl: Controller, n: int) -> list[str]:
    spec = {
        "tenant": "hubei",
        "resources": {"cpu": 0.01, "memory_gib": 0.0},
        "constraints": {"allow_clusters": [CLUSTER]},
        "runtime": {"command": ["true"]},
    }
    ids = [ctl.submit(JobCreate.model_validate({**spec, "name": f"j{i}"}))[0].id for i in range(n)]
    assert ctl.schedule_pending() == n
    return ids


def _report(ctl: Controller, job_id: str, phase: str, **kw: object) -> StatusReport:
    job = ctl.get_job(job_id)
    return StatusReport(job_id=job_id, attempt=job.attempt, epoch=job.epoch, phase=phase, **kw)  # type: ignore[arg-type]


def _events(ctl: Controller, job_id: str) -> list[tuple[str, str | None, str | None]]:
    e = t.job_events.c
    with ctl.store.read() as conn:
        rows = conn.execute(
            select(e.type, e.from_phase, e.to_phase).where(e.job_id == job_id).order_by(e.id)
        ).all()
    return [(r.type, r.from_phase, r.to_phase) for r in rows]


def _lease(ctl: Controller, job_id: str) -> object:
    with ctl.store.read() as conn:
        return conn.execute(select(t.jobs.c.lease_expires_at).where(t.jobs.c.id == job_id)).scalar_one()


def test_one_call_applies_each_report_in_turn_with_its_outcome(db_url: str) -> None:
    ctl = _controller(db_url)
    a, b, c, d = _placed(ctl, 4)
    ctl.cancel(d)
    leased = _lease(ctl, b)
    assert leased is not None
    stale = _report(ctl, c, "Running").model_copy(update={"attempt": 7})
    reports = [
        _report(ctl, a, "Running"),
        _report(ctl, b, "Running", output_tail="loading\nrows: 12\n"),
        _report(ctl, a, "Succeeded"),  # the same job again: applies after its Running
        _report(ctl, a, "Succeeded"),  # a repeat of a finished job: stop it
        stale,  # another attempt: refused, c untouched
        StatusReport(job_id="0" * 22, attempt=1, epoch=1, phase="Running"),  # no such job
        _report(ctl, d, "Running"),  # cancelled meanwhile: its agent must stop it
        _report(ctl, b, "Running"),  # a repeat: taken, nothing written
    ]
    out = ctl.apply_reports(CLUSTER, reports)
    kinds = [type(x).__name__ if x is not None else None for x in out]
    assert kinds == [None, None, None, "StaleAttempt", "StaleAttempt", "NotFound", "StaleAttempt", None]
    assert isinstance(out[5], NotFound) and isinstance(out[3], StaleAttempt)
    assert ctl.get_job(a).phase == "Succeeded" and ctl.get_job(b).phase == "Running"
    assert ctl.get_job(c).phase == "Scheduled" and ctl.get_job(d).phase == "Cancelled"
    assert _events(ctl, a)[-2:] == [
        ("Running", "Scheduled", "Running"),
        ("Succeeded", "Running", "Succeeded"),
    ]
    # the terminal change clears the lease; Running keeps it as it was
    assert _lease(ctl, a) is None and _lease(ctl, b) == leased
    assert "output: loading | rows: 12" in ctl.get_job(b).message
    out_events = [e for e in _events(ctl, b) if e[0] == OUTPUT_EVENT]
    assert len(out_events) == 1 and ctl.store.job_output(b)["reason"] == "loading\nrows: 12\n"  # type: ignore[index]
    assert [e[0] for e in _events(ctl, b)].count("Running") == 1  # the repeat wrote no event
    ctl.store.close()


def test_a_row_moved_under_the_lock_rolls_the_whole_call_back(db_url: str) -> None:
    """``transition_many`` trusts the rows its caller locked; a compare-and-set that misses
    (a wrong attempt here) must not leave the other changes written."""
    ctl = _controller(db_url)
    a, b = _placed(ctl, 2)
    job_a, job_b = ctl.get_job(a), ctl.get_job(b)

    def change(job_id: str, frm: str, attempt: int) -> Change:
        return Change(job_id, frm, attempt, "Running", "started", False, CLUSTER, "Running", "started")

    with pytest.raises(RuntimeError, match="1 of 2 locked job rows moved"), ctl.store.tx() as conn:
        ctl.store.transition_many(
            conn, [change(a, "Scheduled", job_a.attempt), change(b, "Scheduled", job_b.attempt + 5)]
        )
    assert ctl.get_job(a).phase == "Scheduled" and ctl.get_job(b).phase == "Scheduled"
    assert ("Running", "Scheduled", "Running") not in _events(ctl, a)
    ctl.store.close()


def test_an_illegal_change_writes_nothing(db_url: str) -> None:
    from controller.domain.phases import IllegalTransition

    ctl = _controller(db_url)
    (a,) = _placed(ctl, 1)
    bad = Change(a, "Scheduled", ctl.get_job(a).attempt, "Pending", "x", False, CLUSTER, "Running", "x")
    with pytest.raises(IllegalTransition), ctl.store.tx() as conn:
        ctl.store.transition_many(conn, [bad])
    assert ctl.get_job(a).phase == "Scheduled"
    ctl.store.close()


def test_requeue_many_moves_the_jobs_still_as_read_and_skips_the_rest(db_url: str) -> None:
    """A drained or failed cluster's jobs go back to Pending in bulk (``requeue_many``): each
    job still in the phase and attempt it was listed with moves once (attempt raised, off the
    cluster, lease gone, an event); one that finished or moved on since is left as it is."""
    ctl = _controller(db_url)
    a, b, c = _placed(ctl, 3)
    assert ctl.apply_reports(CLUSTER, [_report(ctl, b, "Running"), _report(ctl, c, "Running")]) == [
        None,
        None,
    ]
    listed = [{"id": j, "phase": ctl.get_job(j).phase, "attempt": ctl.get_job(j).attempt} for j in (a, b, c)]
    assert ctl.apply_reports(CLUSTER, [_report(ctl, c, "Succeeded")]) == [None]  # finished since
    with ctl.store.tx() as conn:
        moved = ctl.store.requeue_many(conn, [*listed, listed[0]], "Drained", "cluster drained")
    assert moved == [a, b]
    for j, frm in ((a, "Scheduled"), (b, "Running")):
        job = ctl.get_job(j)
        assert (job.phase, job.attempt, job.cluster, job.message) == ("Pending", 2, None, "cluster drained")
        assert _lease(ctl, j) is None and _events(ctl, j)[-1] == ("Drained", frm, "Pending")
    assert ctl.get_job(c).phase == "Succeeded" and _events(ctl, c)[-1][0] == "Succeeded"
    ctl.store.close()


def test_a_report_batch_takes_its_clusters_row_before_its_jobs_rows(fresh_postgres: str) -> None:
    """A drain (and a lease expiry) locks the cluster's row, then its jobs' rows; a report
    batch of that cluster must take them in the same order, or each could hold what the other
    waits for (PostgreSQL aborts one: a 503). Here another transaction holds the cluster's row
    as a drain does; while the batch waits for it, the batch must hold none of its jobs' rows
    (the drain's next step, locking them, goes through at once). Then both commit."""
    import threading

    from sqlalchemy import text, update

    from controller.live import wait_for

    ctl = _controller(fresh_postgres)
    a, b = _placed(ctl, 2)
    reports = [_report(ctl, a, "Running"), _report(ctl, b, "Running")]
    got: list[Any] = []

    def report() -> None:
        try:
            got.append(ctl.apply_reports(CLUSTER, reports))
        except Exception as exc:  # reported below, with the test's own failure
            got.append(exc)

    with ctl.store.engine.connect() as drain:
        tx = drain.begin()
        drain.execute(update(t.clusters).where(t.clusters.c.name == CLUSTER).values(cordoned=True))
        thread = threading.Thread(target=report)
        thread.start()
        waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' AND NOT granted"
        with ctl.store.engine.connect() as probe:
            wait_for(
                "the report batch waiting for the cluster's row",
                lambda: probe.execute(text(waiting)).scalar(),
                5,
                every_s=0.01,
            )
        # the drain's next step: its jobs' rows, without waiting (NOWAIT fails if the batch holds one)
        locked = drain.execute(
            select(t.jobs.c.id).where(t.jobs.c.id.in_([a, b])).with_for_update(nowait=True)
        ).all()
        assert len(locked) == 2
        drain.execute(update(t.clusters).where(t.clusters.c.name == CLUSTER).values(cordoned=False))
        tx.commit()
    thread.join(30)
    assert not thread.is_alive()
    assert got == [[None, None]], got
    assert ctl.get_job(a).phase == ctl.get_job(b).phase == "Running"
    ctl.store.close()
