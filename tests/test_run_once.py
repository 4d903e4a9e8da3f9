"""Run once (issue 10): leases per cluster, fencing of stale leaders and late reports, no
cumulative limits on a cluster's life. Controller-side, through the service and the HTTP API."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from controller.api.app import create_app
from controller.assignments import StatusReport
from controller.errors import StaleLeader
from controller.jobs import JobCreate
from controller.registry import Health
from controller.service import Controller
from controller.settings import Settings
from controller.store import schema as t
from controller.store.store import now

CLUSTER = "prov-hubei"
TINY = {"cpu": 0.001, "memory_gib": 0.0}


def tiny_job(i: int) -> JobCreate:
    return JobCreate.model_validate(
        {
            "name": f"tiny-{i}",
            "tenant": "hubei",
            "resources": TINY,
            "constraints": {"allow_clusters": [CLUSTER]},
            "runtime": {"command": ["true"]},
        }
    )


def make_controller(db_url: str, **kw: object) -> Controller:
    return Controller(Settings(database_url=db_url, background=False, **kw))  # type: ignore[arg-type]


def test_fifty_thousand_jobs_through_one_cluster(tmp_path: Path) -> None:
    """Assignment listing pages over active jobs only: no cap on how many a cluster runs in its
    life (the 10,001st job was never listed before)."""
    # Not a test of the lease: a TTL no cycle of 5,000 jobs outlasts on a loaded machine (with the
    # default 10 s, a cycle that stalled past the 2 s margin before its commit was fenced off, as
    # it should be: StaleLeader, under pytest-xdist with other work on both cores).
    ctl = make_controller(f"sqlite:///{tmp_path / 'y.db'}", schedule_batch=5000, leader_ttl_s=600.0)
    ctl.heartbeat(CLUSTER, {"capacity": {"cpu": 64, "memory_gib": 256, "gpu": 0}})
    total, done = 50_000, 0
    for start in range(0, total, 5000):
        ctl.submit_many([(tiny_job(i), None) for i in range(start, start + 5000)])
        while ctl.schedule_pending():
            listed = []
            after = None
            while True:
                page = ctl.assignments(CLUSTER, after=after, limit=1000)
                listed += page
                if len(page) < 1000:
                    break
                after = page[-1].job_id
            reports = [
                StatusReport(job_id=a.job_id, attempt=a.attempt, epoch=a.epoch, phase="Succeeded")
                for a in listed
            ]
            for k in range(0, len(reports), 1000):
                assert ctl.apply_reports(CLUSTER, reports[k : k + 1000]) == [None] * len(
                    reports[k : k + 1000]
                )
            done += len(reports)
    assert done == total
    assert ctl.store.count_jobs_by_phase() == {"Succeeded": total}
    assert ctl.assignments(CLUSTER) == []
    ctl.store.close()


def test_a_batch_of_reports_is_one_call_that_renews_the_lease(ready: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    ctl: Controller = app.state.controller
    ids = [ctl.submit(tiny_job(i))[0].id for i in range(30)]
    assert ctl.schedule_pending() == 30
    listed = ready.get(f"/v1/agents/{CLUSTER}/assignments", params={"limit": 1000}).json()
    assert sorted(a["job_id"] for a in listed) == sorted(ids)
    page = ready.get(f"/v1/agents/{CLUSTER}/assignments", params={"limit": 10}).json()
    rest = ready.get(f"/v1/agents/{CLUSTER}/assignments", params={"limit": 1000, "after": page[-1]["job_id"]})
    assert [a["job_id"] for a in page + rest.json()] == sorted(ids)
    before = ctl.registry.clusters[CLUSTER].last_heartbeat
    time.sleep(0.01)
    reports = [
        {"job_id": a["job_id"], "attempt": 1, "epoch": a["epoch"], "phase": "Succeeded"} for a in listed
    ]
    reports.append({"job_id": "no-such-job", "attempt": 1, "epoch": 1, "phase": "Running"})
    r = ready.post(f"/v1/agents/{CLUSTER}/reports", json={"reports": reports})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [o["status"] for o in body["outcomes"]] == [200] * 30 + [404]
    assert body["lease_s"] == ctl.policies.failover.lease_s and body["heartbeat_interval_s"] > 0
    assert ctl.registry.clusters[CLUSTER].last_heartbeat > before  # the call was a contact
    assert all(ready.get(f"/v1/jobs/{i}").json()["phase"] == "Succeeded" for i in ids)
    # The same reports again: the jobs are finished, so each is refused as stale (stop it).
    again = ready.post(f"/v1/agents/{CLUSTER}/reports", json={"reports": reports[:3]}).json()
    assert [o["status"] for o in again["outcomes"]] == [409, 409, 409]


def test_lease_expiry_is_per_cluster_from_its_last_contact(ready: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    ctl: Controller = app.state.controller
    job = ctl.submit(tiny_job(0))[0]
    assert ctl.schedule_pending() == 1
    state = ctl.registry.clusters[CLUSTER]
    pol = ctl.policies.failover
    ctl.lead_since = now() - timedelta(hours=1)  # leading long before the silence began
    # Silent longer than the grace: Unreachable, but its jobs stay until lease + grace. (Silent
    # in the store as in the view: a verdict is written only about the last committed contact.)
    state.last_heartbeat = now() - timedelta(seconds=pol.heartbeat_grace_s + 1)
    ctl.store.update_cluster(CLUSTER, last_heartbeat=state.last_heartbeat)
    assert ctl.expire_leases() == 0
    assert state.health == Health.Unreachable
    assert ctl.get_job(job.id).cluster == CLUSTER
    state.last_heartbeat = now() - timedelta(seconds=pol.lease_s + pol.heartbeat_grace_s - 1)
    assert ctl.expire_leases() == 0
    state.last_heartbeat = now() - timedelta(seconds=pol.lease_s + pol.heartbeat_grace_s + 0.5)
    assert ctl.expire_leases() == 0  # the store has a more recent contact than the view: it wins
    silent = now() - timedelta(seconds=pol.lease_s + pol.heartbeat_grace_s + 0.5)
    ctl.store.update_cluster(CLUSTER, last_heartbeat=silent)  # silent in the store too
    state.last_heartbeat = silent
    assert ctl.expire_leases() == 1
    read = ctl.get_job(job.id)
    assert (read.phase.value, read.attempt) == ("Pending", 2)


def test_late_report_of_a_replaced_attempt_is_a_fenced_execution(ready: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    ctl: Controller = app.state.controller
    job = ctl.submit(tiny_job(0))[0]
    assert ctl.schedule_pending() == 1
    [a] = ready.get(f"/v1/agents/{CLUSTER}/assignments").json()
    assert ctl.requeue_cluster_jobs(CLUSTER, "Drained", "test: re-placed") == 1
    late = {"job_id": job.id, "attempt": 1, "epoch": a["epoch"], "phase": "Succeeded"}
    assert ready.post(f"/v1/agents/{CLUSTER}/status", json=late).status_code == 409
    events = ready.get(f"/v1/jobs/{job.id}").json()["events"]
    fenced = [e for e in events if e["type"] == "FencedReport"]
    assert len(fenced) == 1 and "attempt 1" in fenced[0]["reason"], events
    assert ready.get(f"/v1/jobs/{job.id}").json()["phase"] == "Pending"
    metrics = ready.get("/metrics").text
    assert "yiwang_fenced_executions_total 1.0" in metrics
    # The dispatch epoch is visible, so an operator can audit which leader placed a job.
    assert ctl.schedule_pending() == 1
    assert ready.get(f"/v1/jobs/{job.id}").json()["epoch"] == ctl.epoch > 0


def test_a_deposed_leader_dispatches_nothing(db_url: str) -> None:
    """Two controllers on one database: the first leads, its lease is taken over (it stalled
    past its TTL); its next cycle's writes are refused in their own transaction."""
    old = make_controller(db_url, holder="beijing", leader_ttl_s=5.0)
    assert old.is_leader and old.epoch == 1
    old.heartbeat(CLUSTER, {"capacity": {"cpu": 64, "memory_gib": 256, "gpu": 0}})
    job = old.submit(tiny_job(0))[0]
    # Beijing stalls; its lease runs out in the store, and Gui'an takes it with a higher epoch.
    with old.store.tx() as conn:
        conn.execute(update(t.leader).values(expires_at=now() - timedelta(seconds=1)))
    new = make_controller(db_url, holder="guian", leader_ttl_s=5.0, mode="standby")
    assert new.renew_leadership() and new.epoch == 2
    # Beijing still believes it leads (its local view has not caught up): the store refuses.
    with pytest.raises(StaleLeader), old.store.tx() as conn:
        old.store.check_leader(conn, old.epoch)
    old.leadership.lead_until = time.monotonic() + 60  # pretend its local clock says it still leads
    with pytest.raises(StaleLeader):
        old.schedule_pending()
    assert old.store.get_job(job.id)["phase"] == "Pending"  # nothing dispatched by epoch 1
    assert new.schedule_pending() == 1
    row = new.store.get_job(job.id)
    assert (row["phase"], row["epoch"]) == ("Scheduled", 2)
    # Expiry of a silent cluster's lease is a leader write too: refused for the old epoch.
    with pytest.raises(StaleLeader):
        old.requeue_cluster_jobs(CLUSTER, "LeaseExpired", "test", as_leader=True)
    assert new.store.get_job(job.id)["phase"] == "Scheduled"
    # A renewal by the deposed leader does not take the lease back.
    assert not old.renew_leadership() and old.epoch == 0
    old.store.close()
    new.store.close()


def test_a_leader_stops_leading_before_its_lease_can_be_taken(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'y.db'}", background=True, leader_ttl_s=1.0)
    ctl = Controller(settings)
    assert ctl.epoch == 1 and ctl.is_leader
    # No renewal thread runs (start() was not called): the local lease lapses a margin before
    # the store's, so a successor can never find it leading after taking over.
    time.sleep(1.0 - ctl.leader_margin_s + 0.05)
    assert not ctl.is_leader and not ctl.leading()
    row_expiry = ctl.store.engine.connect().execute(t.leader.select()).first().expires_at  # type: ignore[union-attr]
    assert row_expiry is not None
    ctl.store.close()


def test_the_api_documents_the_batch_and_paging(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'y.db'}", background=False))
    with TestClient(app) as c:
        spec = c.get("/openapi.json").json()
    assert "/v1/agents/{cluster}/reports" in spec["paths"]
    params = {p["name"] for p in spec["paths"]["/v1/agents/{cluster}/assignments"]["get"]["parameters"]}
    assert {"after", "limit"} <= params


def test_the_leaders_ledger_of_expected_ends_forgets_exactly_the_jobs_that_ended(tmp_path: Path) -> None:
    """The scheduling cycle tells backfilling's ledger of expected ends which jobs still run (the
    registry's ledger): a job that reported Succeeded is gone from it at the next cycle, one
    still running stays."""
    ctl = make_controller(f"sqlite:///{tmp_path / 'y.db'}")
    ctl.heartbeat(CLUSTER, {"capacity": {"cpu": 64, "memory_gib": 256, "gpu": 0}})
    ctl.submit_many([(tiny_job(i), None) for i in range(2)])
    assert ctl.schedule_pending() == 2
    ends = ctl.scheduling.batch_scheduler().ends
    placed = ctl.assignments(CLUSTER)
    assert sorted(ends._jobs or {}) == sorted(a.job_id for a in placed)
    done, running = placed
    report = StatusReport(job_id=done.job_id, attempt=done.attempt, epoch=done.epoch, phase="Succeeded")
    assert ctl.apply_reports(CLUSTER, [report]) == [None]
    ctl.submit_many([(tiny_job(9), None)])
    assert ctl.schedule_pending() == 1
    kept = set(ends._jobs or {})
    assert done.job_id not in kept and running.job_id in kept and len(kept) == 2
    ctl.store.close()
