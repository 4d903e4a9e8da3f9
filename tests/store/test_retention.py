"""Retention (``controller/store/retention.py``, ``controller/services/retention.py``): finished
jobs older than the cutoff go with their events and decisions, the decision parts no remaining
decision names go, and nothing else does; on SQLite and on PostgreSQL, and end to end through the
API (a pruned job is 404, a kept job's decision still explains itself)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import bindparam, func, insert, select

from controller.services.retention import PRUNED, Retention
from controller.settings import Settings
from controller.store import Store
from controller.store import schema as t
from controller.store.retention import id_before
from controller.store.store import now

DAY = timedelta(days=1)


def _id(at: datetime) -> str:
    return f"{int(at.timestamp() * 1_000_000):014x}{random.getrandbits(32):08x}"


def _job(name: str, submitted: datetime, phase: str, changed: datetime) -> dict[str, Any]:
    return {
        "id": _id(submitted),
        "tenant": "hubei",
        "name": name,
        "phase": phase,
        "cluster": None if phase == "Pending" else "prov-hubei",
        "attempt": 1,
        "epoch": 1,
        "priority": 100,
        "spec": {"name": name, "tenant": "hubei"},
        "message": "",
        "created_at": submitted,
        "updated_at": changed,
        "lease_expires_at": None,
        "idempotency_key": None,
        "request_hash": None,
    }


def _count(store: Store, table: Any, **where: Any) -> int:
    q = select(func.count()).select_from(table)
    for col, value in where.items():
        q = q.where(table.c[col] == value)
    with store.read() as conn:
        return int(conn.execute(q).scalar_one())


def test_prune_takes_exactly_the_old_finished_jobs_and_the_parts_nothing_names(db_url: str) -> None:
    store = Store(db_url)
    at = now()
    before = at - 90 * DAY
    old, recent = at - 100 * DAY, at - 10 * DAY
    jobs = {
        "done-old": _job("done-old", old, "Succeeded", old + DAY),  # pruned
        "cancelled-old": _job("cancelled-old", old, "Cancelled", old),  # pruned
        "running-old": _job("running-old", old, "Running", old),  # not finished: kept
        "pending-old": _job("pending-old", old, "Pending", old),  # not finished: kept
        "long-runner": _job("long-runner", old, "Succeeded", recent),  # finished lately: kept
        "done-recent": _job("done-recent", recent, "Failed", recent),  # kept
    }
    store.insert_jobs_bulk([{**r, "phase": "Pending", "cluster": None} for r in jobs.values()])
    with store.engine.begin() as conn:  # each job's phase and last change as its life left them
        conn.execute(
            t.jobs.update()
            .where(t.jobs.c.id == bindparam("b_id"))
            .values(phase=bindparam("b_phase"), cluster=bindparam("b_cluster"), updated_at=bindparam("b_at")),
            [
                {"b_id": r["id"], "b_phase": r["phase"], "b_cluster": r["cluster"], "b_at": r["updated_at"]}
                for r in jobs.values()
            ],
        )
        # parts: contexts (a body, named by digest) and a cycle's bytes (packed columns, explanations)
        parts = {
            "only-pruned": ("data", old),  # named only by a pruned job's decision: goes
            "shared": ("data", old),  # named by a pruned job and a running one: stays
            "long-runner": ("data", old),  # named by a job finished lately: stays
            "unnamed": ("data", old),  # named by nothing: goes
            "context": ("body", old),  # a context: stays
            "fresh": ("data", before),  # written within the margin before the cutoff: stays
        }
        conn.execute(
            insert(t.decision_parts),
            [
                {
                    "key": key,
                    "body": {"names": []} if kind == "body" else None,
                    "data": b"x" if kind == "data" else None,
                    "created_at": when,
                }
                for key, (kind, when) in parts.items()
            ],
        )

        def decision(job: str, blob: str, why: str) -> dict[str, Any]:
            body = {"format": 3, "ctx": "context", "blob": [blob, 0, 1, 1], "why": [why, 0, 1, 1]}
            return {
                "job_id": jobs[job]["id"],
                "attempt": 1,
                "cluster": "prov-hubei",
                "status": "Scheduled",
                "created_at": jobs[job]["created_at"],
                "body": body,
            }

        conn.execute(
            insert(t.decisions),
            [
                decision("done-old", "only-pruned", "shared"),
                decision("cancelled-old", "only-pruned", "only-pruned"),
                decision("running-old", "shared", "shared"),
                decision("long-runner", "long-runner", "long-runner"),
                decision("done-recent", "fresh", "fresh"),
            ],
        )
        for name, r in jobs.items():
            for k in range(2):
                conn.execute(
                    insert(t.job_events).values(
                        job_id=r["id"], at=r["created_at"], type="Note", attempt=1, reason=f"{name} {k}"
                    )
                )

    counts = store.prune_finished(before, batch=1)  # one job a transaction: the loop goes on
    assert counts == {"jobs": 2, "events": 6, "decisions": 2}  # events: Submitted and two notes
    with store.read() as conn:
        left = {r[0] for r in conn.execute(select(t.jobs.c.name))}
    assert left == set(jobs) - {"done-old", "cancelled-old"}
    for gone in ("done-old", "cancelled-old"):
        assert _count(store, t.job_events, job_id=jobs[gone]["id"]) == 0
        assert _count(store, t.decisions, job_id=jobs[gone]["id"]) == 0
    assert _count(store, t.job_events) == 12 and _count(store, t.decisions) == 3
    assert store.prune_parts(before) == 2
    with store.read() as conn:
        kept = {r[0] for r in conn.execute(select(t.decision_parts.c.key))}
    assert kept == {"shared", "long-runner", "context", "fresh"}
    # again: nothing more to do
    assert store.prune_finished(before) == {"jobs": 0, "events": 0, "decisions": 0}
    assert store.prune_parts(before) == 0
    store.close()


def test_a_pass_is_bounded_and_audited(db_url: str) -> None:
    """``Retention.prune`` deletes at most ``limit`` jobs a pass and says a backlog remains (the
    parts wait for the last pass); a pass that deleted something appends one audit row."""
    store = Store(db_url)
    old = now() - 100 * DAY
    rows = [_job(f"j{k}", old + timedelta(seconds=k), "Succeeded", old) for k in range(25)]
    store.insert_jobs_bulk([{**r, "phase": "Pending"} for r in rows])
    with store.engine.begin() as conn:
        conn.execute(
            t.jobs.update().where(t.jobs.c.id == bindparam("b_id")).values(phase="Succeeded", updated_at=old),
            [{"b_id": r["id"]} for r in rows],
        )
    pruner = Retention(store, Settings(database_url=db_url, retention_days=90))
    first = pruner.prune(now() - 90 * DAY, limit=20)
    assert first["jobs"] == 20 and first["backlog"] and first["parts"] == 0
    second = pruner.prune(now() - 90 * DAY, limit=20)
    assert second["jobs"] == 5 and not second["backlog"]
    assert pruner.prune(now() - 90 * DAY, limit=20)["jobs"] == 0
    with store.read() as conn:
        audited = conn.execute(select(t.audit_log.c.detail).where(t.audit_log.c.action == PRUNED)).all()
    assert [a[0]["jobs"] for a in audited] == [20, 5]
    # the oldest submitted went first
    with store.read() as conn:
        assert _count(store, t.jobs) == 0
    store.close()


def test_id_before_orders_with_the_ids_of_jobs_submitted_then() -> None:
    at = now()
    assert _id(at - timedelta(microseconds=1)) < id_before(at) <= _id(at)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    from controller.api.app import create_app

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'yiwang.db'}", background=False))
    with TestClient(app, raise_server_exceptions=False) as c:
        for name in app.state.controller.registry.clusters:
            assert c.post(f"/v1/agents/{name}/heartbeat").status_code == 200
        yield c


def _finish(api: TestClient, job_id: str) -> None:
    """Report the placed job finished, as its agent does."""
    cluster = api.get(f"/v1/jobs/{job_id}").json()["cluster"]
    [entry] = [a for a in api.get(f"/v1/agents/{cluster}/assignments").json() if a["job_id"] == job_id]
    report = {"job_id": job_id, "attempt": 1, "epoch": entry["epoch"], "phase": "Succeeded"}
    r = api.post(f"/v1/agents/{cluster}/status", json=report)
    assert r.status_code == 200 and r.json()["phase"] == "Succeeded", r.text


def test_through_the_controller_a_pruned_job_is_gone_and_a_kept_one_explains_itself(api: TestClient) -> None:
    """Real cycles: the first places three jobs (one of them finishes), the second one job that
    finishes. A pass with the cutoff after all of it takes the two finished jobs and the second
    cycle's parts; the first cycle's parts stay, named by the two jobs still running, whose
    decisions still explain every cluster."""
    ctl = api.app.state.controller  # type: ignore[attr-defined]
    job = {"name": "report", "tenant": "hubei", "resources": {"cpu": 1, "memory_gib": 1}}
    first = [api.post("/v1/jobs", json={**job, "name": f"a{k}"}).json()["id"] for k in range(3)]
    assert ctl.schedule_pending() == 3
    second = api.post("/v1/jobs", json={**job, "name": "b"}).json()["id"]
    assert ctl.schedule_pending() == 1
    _finish(api, first[0])
    _finish(api, second)
    explained = api.get(f"/v1/jobs/{first[1]}/decision").json()
    parts_before = _count(ctl.store, t.decision_parts)

    out = ctl.retention.prune(now() + 2 * DAY)  # everything written so far is past the cutoff
    assert (out["jobs"], out["parts"], out["backlog"]) == (2, 2, False)
    assert _count(ctl.store, t.decision_parts) == parts_before - 2
    for gone in (first[0], second):
        assert api.get(f"/v1/jobs/{gone}").status_code == 404
        assert api.get(f"/v1/jobs/{gone}/decision").status_code == 404
    for kept in first[1:]:
        assert api.get(f"/v1/jobs/{kept}").json()["phase"] == "Scheduled"
    assert api.get(f"/v1/jobs/{first[1]}/decision").json() == explained
    assert explained["feasible"] and explained["summary"].endswith(".")  # the parts were read
    [row] = api.get("/v1/audit", params={"action": PRUNED}).json()["items"]
    assert row["actor"] == "retention" and row["detail"]["jobs"] == 2
    # nothing more to do: no second audit row
    assert ctl.retention.prune(now() + 2 * DAY)["jobs"] == 0
    assert len(api.get("/v1/audit", params={"action": PRUNED}).json()["items"]) == 1


def test_the_cli_prunes_once_and_names_a_database_it_cannot_reach(tmp_path: Path) -> None:
    """``yiwang db-prune``: the same pass, run until no backlog is left, its numbers as JSON; a
    database it cannot reach is one line on stderr, exit 1, the password not shown."""
    import json

    from tests.conftest import free_port
    from tests.test_cli_errors import yiwang

    url = f"sqlite:///{tmp_path / 'yiwang.db'}"
    store = Store(url)
    old = now() - 100 * DAY
    rows = [_job(f"j{k}", old + timedelta(seconds=k), "Failed", old) for k in range(3)]
    rows.append(_job("recent", now() - DAY, "Failed", now() - DAY))
    store.insert_jobs_bulk([{**r, "phase": "Pending"} for r in rows])
    with store.engine.begin() as conn:
        conn.execute(
            t.jobs.update()
            .where(t.jobs.c.id == bindparam("b_id"))
            .values(phase="Failed", updated_at=bindparam("b_at")),
            [{"b_id": r["id"], "b_at": r["updated_at"]} for r in rows],
        )
    store.close()
    r = yiwang("db-prune", "--older-than-days", "90", "--database-url", url)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"jobs": 3, "events": 3, "decisions": 0, "parts": 0}
    again = yiwang("db-prune", "--older-than-days", "0.5", "--database-url", url)
    assert json.loads(again.stdout)["jobs"] == 1
    dead = f"postgresql+psycopg://u:secret@127.0.0.1:{free_port()}/x"
    r = yiwang("db-prune", "--older-than-days", "90", "--database-url", dead)
    assert r.returncode == 1 and "cannot prune the database" in r.stderr and "secret" not in r.stderr, (
        r.stderr
    )
    assert len(r.stderr.strip().splitlines()) == 1


def test_the_leaders_pass_runs_when_due_and_retention_is_on(tmp_path: Path) -> None:
    """``maybe_prune`` (the control loop calls it each tick while leading): nothing with
    retention off or before the next pass is due; due, a pass, then the next an interval on."""
    import time

    url = f"sqlite:///{tmp_path / 'yiwang.db'}"
    store = Store(url)
    off = Retention(store, Settings(database_url=url, retention_days=0))
    off._next = 0.0
    assert off.maybe_prune() is None
    on = Retention(store, Settings(database_url=url, retention_days=30, retention_check_s=600))
    assert on.maybe_prune() is None  # not at start-up
    on._next = 0.0
    out = on.maybe_prune()
    assert out is not None and out["jobs"] == 0 and not out["backlog"]
    assert on._next > time.monotonic() + 500 and on.maybe_prune() is None
    store.close()
