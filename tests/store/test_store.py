"""The durable store on SQLite and a real PostgreSQL: migrations, idempotency, leadership,
and that an acknowledged submission survives a killed process."""

from __future__ import annotations

import time
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from controller.live import LiveController
from controller.store import Store
from controller.store.migrate import downgrade, upgrade
from controller.store.schema import metadata
from controller.store.store import new_job_id, now


def job_row(tenant: str = "guangdong", key: str | None = None) -> dict[str, object]:
    at = now()
    return {
        "id": new_job_id(),
        "tenant": tenant,
        "name": "j",
        "phase": "Pending",
        "cluster": None,
        "attempt": 1,
        "epoch": 0,
        "priority": 100,
        "spec": {"name": "j", "tenant": tenant},
        "message": "",
        "created_at": at,
        "updated_at": at,
        "lease_expires_at": None,
        "idempotency_key": key,
        "request_hash": "h" if key else None,
    }


def test_migrations_create_exactly_the_schema(db_url: str) -> None:
    store = Store(db_url)
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    downgrade(store.engine, "base")
    assert set(inspect(store.engine).get_table_names()) <= {"alembic_version"}
    upgrade(store.engine)
    assert {"jobs", "job_events", "decisions", "clusters", "datasets", "policies", "leader"} <= set(
        inspect(store.engine).get_table_names()
    )
    store.close()


def test_idempotency_key_is_unique_per_tenant(db_url: str) -> None:
    store = Store(db_url)
    first = job_row(key="k")
    ((_, created),) = store.insert_jobs([first])
    assert created
    ((again, created2),) = store.insert_jobs([job_row(key="k")])
    assert not created2 and again["id"] == first["id"]
    ((_, created3),) = store.insert_jobs([job_row(tenant="hubei", key="k")])
    assert created3
    assert [e["type"] for e in store.job_events(str(first["id"]))] == ["Submitted"]
    store.close()


def test_transition_is_compare_and_set(db_url: str) -> None:
    store = Store(db_url)
    row = job_row()
    store.insert_jobs([row])
    with store.tx() as conn:
        assert store.transition(
            conn,
            str(row["id"]),
            expect_phases=["Pending"],
            expect_attempt=1,
            values={"phase": "Scheduled", "cluster": "prov-hubei"},
            event_type="Scheduled",
            reason="r",
        )
    with store.tx() as conn:  # a second writer expecting the old phase loses
        assert not store.transition(
            conn,
            str(row["id"]),
            expect_phases=["Pending"],
            expect_attempt=1,
            values={"phase": "Cancelled"},
            event_type="Cancelled",
            reason="r",
        )
    assert store.get_job(str(row["id"]))["phase"] == "Scheduled"
    assert [e["to_phase"] for e in store.job_events(str(row["id"]))] == ["Pending", "Scheduled"]
    store.close()


def test_leader_lease_fences_with_a_rising_epoch(db_url: str) -> None:
    a, b = Store(db_url), Store(db_url, migrate=False)
    assert a.acquire_leadership("a", ttl_s=0.5) == 1
    assert b.acquire_leadership("b", ttl_s=0.5) is None  # a's lease is live
    assert a.acquire_leadership("a", ttl_s=0.5) == 1  # renewal keeps the epoch
    time.sleep(0.6)
    assert b.acquire_leadership("b", ttl_s=5) == 2  # expired: b takes over with a higher epoch
    assert a.acquire_leadership("a", ttl_s=5) is None
    a.close()
    b.close()


def test_acknowledged_submissions_survive_kill_9(db_url: str, tmp_path: Path) -> None:
    """Submit through a real server process, kill it with SIGKILL right after the answers, and
    find every acknowledged job in the database."""
    server = LiveController(process=True, database_url=db_url, background=False, start_timeout_s=60)
    acked: list[str] = []
    try:
        server.start()
        with server.http() as c:
            for i in range(40):
                r = c.post("/v1/jobs", json={"name": f"j{i}", "tenant": "hubei"})
                assert r.status_code == 201
                acked.append(r.json()["id"])
    finally:
        server.kill()
    store = Store(db_url, migrate=False)
    for job_id in acked:
        row = store.get_job(job_id)
        assert row is not None and row["phase"] == "Pending"
    store.close()


def test_the_sqlite_bulk_path_writes_exactly_what_sqlalchemy_writes(tmp_path: Path) -> None:
    """Store.executemany (compiled once, the types' own bind processors, the driver's
    executemany) stores byte-for-byte the rows conn.execute(stmt, rows) stores: datetimes,
    JSON (including a JSON null), booleans, constants and renamed bind parameters."""
    import sqlite3

    from sqlalchemy import bindparam, insert, update

    from controller.store import schema as t

    at = now()
    rows_for = {
        "audit_log": [
            {
                "at": at,
                "actor": "a",
                "role": "admin",
                "tenant": None,
                "action": "x",
                "target": "t",
                "detail": None,
            },
            {
                "at": at,
                "actor": "b",
                "role": "system",
                "tenant": "gd",
                "action": "y",
                "target": "u",
                "detail": {"k": [1, 2.5]},
            },
        ],
        "clusters": [
            {
                "name": "c1",
                "spec": {"a": 1},
                "cordoned": True,
                "draining": False,
                "health": "Ready",
                "registered_at": at,
            },
        ],
    }
    jobs = [job_row(), job_row(tenant="beijing")]
    dumps: list[list[tuple[object, ...]]] = []
    for bulk in (False, True):
        url = f"sqlite:///{tmp_path / f'bulk{int(bulk)}.db'}"
        store = Store(url)
        with store.tx() as conn:
            for table, rows in [("jobs", jobs), *rows_for.items()]:
                if bulk:
                    store.executemany(conn, insert(t.metadata.tables[table]), rows)
                else:
                    conn.execute(insert(t.metadata.tables[table]), rows)
            stmt = (
                update(t.jobs)
                .where(t.jobs.c.id == bindparam("b_id"), t.jobs.c.phase == "Pending")
                .values(
                    phase="Scheduled",
                    cluster=bindparam("b_cluster"),
                    lease_expires_at=bindparam("b_lease"),
                    updated_at=at,
                )
            )
            params = [{"b_id": j["id"], "b_cluster": "prov-x", "b_lease": at} for j in jobs]
            if bulk:
                store.executemany(conn, stmt, params)
            else:
                conn.execute(stmt, params)
        store.close()
        con = sqlite3.connect(url.split("///", 1)[1])
        dumps.append(
            [
                row
                for table in ("jobs", "audit_log", "clusters")
                for row in con.execute(f"select * from {table} order by 1")
            ]
        )
        con.close()
    assert dumps[0] == dumps[1]
    assert len(dumps[0]) == 5


def test_the_sqlite_bulk_path_leaves_column_defaults_to_sqlalchemy(tmp_path: Path) -> None:
    """An INSERT whose rows leave out columns with defaults (attempt, epoch, message) is not
    taken by the bulk path: the rows get their defaults, not NULL."""
    import sqlite3

    from sqlalchemy import insert

    from controller.store import schema as t

    url = f"sqlite:///{tmp_path / 'defaults.db'}"
    store = Store(url)
    row = {k: v for k, v in job_row().items() if k not in ("attempt", "epoch", "message")}
    with store.tx() as conn:
        store.executemany(conn, insert(t.jobs), [row])
    store.close()
    con = sqlite3.connect(url.split("///", 1)[1])
    assert con.execute("select attempt, epoch, message from jobs").fetchall() == [(1, 0, "")]
    con.close()


def test_decision_bodies_are_stored_packed_and_read_back_whole() -> None:
    """pack_decision keeps the summary readable and the body a third of its size or less;
    unpack_decision restores it exactly, and leaves a body stored unpacked as it is."""
    import json

    from controller.domain.decision_codec import pack_decision, unpack_decision

    body = {
        "format": "yiwang.decision.compact/1",
        "summary": "42/42 clusters are available; chose prov-hubei.",
        "clusters": [f"prov-{i}" for i in range(42)],
        "scores": [[round(i * 1.37 % 100, 3) for i in range(42)] for _ in range(4)],
    }
    packed = pack_decision(body)
    assert packed["summary"] == body["summary"]
    assert len(json.dumps(packed)) * 2 < len(json.dumps(body))
    assert unpack_decision(packed) == body
    assert unpack_decision(body) == body


def test_every_sqlite_connection_is_durable_with_a_larger_page_cache(tmp_path: Path) -> None:
    """Each pooled connection gets the pragmas: WAL, a full fsync at commit, foreign keys, and a
    page cache of ``SQLITE_CACHE_KIB`` (a cycle's writes re-read pages with SQLite's 2 MiB)."""
    from controller.store.engine import SQLITE_CACHE_KIB

    store = Store(f"sqlite:///{tmp_path}/p.db")
    try:
        conns = [store.engine.connect() for _ in range(3)]  # distinct pooled connections
        for conn in conns:
            got = {
                p: conn.exec_driver_sql(f"PRAGMA {p}").scalar()
                for p in ("journal_mode", "synchronous", "foreign_keys", "cache_size")
            }
            assert got == {
                "journal_mode": "wal",
                "synchronous": 2,
                "foreign_keys": 1,
                "cache_size": -SQLITE_CACHE_KIB,
            }
        for conn in conns:
            conn.close()
    finally:
        store.close()
