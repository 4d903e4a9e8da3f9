"""Migrations on a live PostgreSQL: an index on a table the controllers are writing is built
``CONCURRENTLY`` (``migrate.create_index_online``), so submissions go on while it builds; a build
that died is redone; controller processes starting together migrate the database once.

Real PostgreSQL 15 (the session's throwaway server), real Alembic, real processes."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, insert, text

from controller.store import schema as t
from controller.store.migrate import current_revision, upgrade
from controller.store.store import new_job_id, now
from tests.store.lockwait import wait_for_lock_wait

INDEX = "ix_jobs_active_on_cluster"  # migration 0007's, on the jobs table


def job(phase: str = "Pending", cluster: str | None = None) -> dict[str, Any]:
    at = now()
    return {
        "id": new_job_id(),
        "tenant": "guangdong",
        "name": "j",
        "phase": phase,
        "cluster": cluster,
        "attempt": 1,
        "epoch": 0,
        "priority": 100,
        "spec": {"name": "j", "tenant": "guangdong"},
        "message": "",
        "created_at": at,
        "updated_at": at,
    }


def index_valid(engine: Engine, name: str = INDEX) -> bool | None:
    with engine.connect() as conn:
        got = conn.execute(
            text(
                "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = :n"
            ),
            {"n": name},
        ).scalar()
    return None if got is None else bool(got)


def schema_diff(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), t.metadata))


@pytest.fixture
def engine(fresh_postgres: str) -> Any:
    e = create_engine(fresh_postgres)
    yield e
    e.dispose()


def test_submissions_go_on_while_an_index_on_the_jobs_table_builds(engine: Engine) -> None:
    """A transaction already writing the jobs table (a submission, a cycle) holds the build at
    its start. A plain CREATE INDEX would then queue a SHARE lock that every later insert waits
    behind, until the open transaction and the whole build end. Built CONCURRENTLY, the later
    insert goes through at once (``lock_timeout`` 5 s turns a wait into a failure here)."""
    upgrade(engine, "0006")
    with engine.begin() as conn:
        conn.execute(insert(t.jobs), [job("Running", f"prov-{i % 7}") for i in range(2_000)])
    writer = engine.connect()
    writer.execute(insert(t.jobs), [job()])  # open: not committed until the build is under way
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            upgrade(engine)
        except BaseException as e:  # the test re-raises it
            errors.append(e)

    th = threading.Thread(target=migrate)
    th.start()
    try:
        with engine.connect() as probe:  # the build waits on the open writer (a lock wait)
            wait_for_lock_wait(probe, "CREATE INDEX%", errors, "the index build never started")
        with engine.connect() as other:
            other.execute(text("SET lock_timeout = '5s'"))
            other.execute(insert(t.jobs), [job()])  # a new submission
            other.commit()
    finally:
        writer.commit()
        writer.close()
        th.join(120)
    assert not th.is_alive() and not errors, errors
    assert current_revision(engine) == "0007"
    assert index_valid(engine) is True
    assert schema_diff(engine) == []
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM jobs")).scalar() == 2_002


def test_a_build_that_died_is_redone_and_a_finished_one_kept(engine: Engine) -> None:
    """A concurrent build that dies leaves an invalid index and the version unwritten; one that
    finished just before the process died leaves a valid index and the version unwritten."""
    upgrade(engine)
    with engine.begin() as conn:  # as a build killed mid-way leaves it
        conn.execute(text(f"UPDATE pg_index SET indisvalid = false WHERE indexrelid = '{INDEX}'::regclass"))
        conn.execute(text("UPDATE alembic_version SET version_num = '0006'"))
    assert index_valid(engine) is False
    upgrade(engine)
    assert current_revision(engine) == "0007" and index_valid(engine) is True

    with engine.begin() as conn:  # finished, version not written
        conn.execute(text("UPDATE alembic_version SET version_num = '0006'"))
    upgrade(engine)
    assert current_revision(engine) == "0007" and index_valid(engine) is True
    assert schema_diff(engine) == []


def test_controllers_starting_together_migrate_the_database_once(fresh_postgres: str) -> None:
    """Three processes open the same new database at once (a Deployment's pods): each waits
    for the migration lock or takes it; all start, and the schema is exactly the metadata."""
    code = "import sys; from controller.store import Store; Store(sys.argv[1]).close()"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, fresh_postgres], stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err[-2000:]
    e = create_engine(fresh_postgres)
    try:
        assert current_revision(e) == "0007"
        assert schema_diff(e) == []
        for name in ("ix_jobs_pending_order", INDEX, "ix_job_events_type_at", "ix_audit_log_target"):
            assert index_valid(e, name) is True
    finally:
        e.dispose()
