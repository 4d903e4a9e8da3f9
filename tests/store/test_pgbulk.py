"""The hot INSERTs under PostgreSQL go through COPY (controller/store/pgbulk.py): what they store
must be exactly what the INSERT stores, defaults included; a violated constraint fails the
transaction as the INSERT would (as SQLAlchemy's error, nothing of the batch kept); rows COPY
cannot store as the INSERT would take the INSERT. Real PostgreSQL 15; SQLite keeps its path."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError

from controller.store import Store
from controller.store import schema as t
from controller.store.base import insert_many
from controller.store.pgbulk import copy_plan, copy_rows, insert_together
from controller.store.store import new_job_id, now
from tests.store.lockwait import wait_for_lock_wait

TRICKY = {
    "name": "j",
    "tenant": "guangdong",
    "note": 'tab\there, newline\nand \\back\\slash, 引号"',
    "x": [1.5, None, 1e300],
}


def job(k: int, *, full: bool = True) -> dict[str, Any]:
    at = now() + timedelta(microseconds=k)
    row: dict[str, Any] = {
        "id": new_job_id(),
        "tenant": "guangdong",
        "name": f"j{k}",
        "phase": "Pending",
        "priority": 100 + k,
        "spec": {**TRICKY, "k": k},
        "created_at": at,
        "updated_at": at,
    }
    if full:  # else attempt, epoch and message take their Python-side defaults
        row |= {"attempt": 2, "epoch": 7, "message": "m\tx", "cluster": None, "lease_expires_at": at}
    return row


def submitted(jobs: list[dict[str, Any]], reason: str) -> list[dict[str, Any]]:
    """The jobs' 'Submitted' events (the identity left to the server)."""
    return [
        {
            "job_id": r["id"],
            "at": r["created_at"],
            "type": "Submitted",
            "from_phase": None,
            "to_phase": "Pending",
            "cluster": None,
            "attempt": 1,
            "reason": reason,
        }
        for r in jobs
    ]


def stored(store: Store, table: Table, order: Any, skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Every row, each JSON column also as the server's text (the bytes stored)."""
    cols = [c for c in table.c if c.name not in skip]
    with store.engine.connect() as conn:
        out = [dict(r) for r in conn.execute(select(*cols).order_by(order)).mappings()]
        for c in cols:
            if isinstance(c.type, t.JSON):
                texts = conn.execute(
                    select(text(f"CAST({c.name} AS TEXT)")).select_from(table).order_by(order)
                ).scalars()
                for r, s in zip(out, texts, strict=True):
                    r[f"{c.name}_text"] = s
    return out


def test_copy_stores_what_the_insert_stores(fresh_postgres: str) -> None:
    a = Store(fresh_postgres)
    full = [job(k) for k in range(5)]
    partial = [job(k, full=False) for k in range(5, 9)]
    with a.tx() as conn:
        assert copy_rows(conn, t.jobs, full) and copy_rows(conn, t.jobs, partial)
    via_copy = stored(a, t.jobs, t.jobs.c.id)
    with a.tx() as conn:
        conn.execute(text("DELETE FROM jobs"))
        conn.execute(insert(t.jobs), full)
        conn.execute(insert(t.jobs), partial)
    assert stored(a, t.jobs, t.jobs.c.id) == via_copy
    assert [r["attempt"] for r in via_copy[5:]] == [1] * 4 and via_copy[6]["message"] == ""
    assert via_copy[0]["spec"] == {**TRICKY, "k": 0}

    # events and audit rows: the identity left to the server, in the order given
    events = submitted(full, "job submitted\n")
    with a.tx() as conn:
        insert_many(conn, t.job_events, events)
    got = stored(a, t.job_events, t.job_events.c.id)
    assert [r["job_id"] for r in got] == [r["id"] for r in full]
    assert [r["id"] for r in got] == sorted(r["id"] for r in got)
    with a.tx() as conn:
        conn.execute(text("DELETE FROM job_events"))
        conn.execute(insert(t.job_events), events)
    assert stored(a, t.job_events, t.job_events.c.id, skip=("id",)) == [
        {k: v for k, v in r.items() if k != "id"} for r in got
    ]
    a.close()


def test_a_violated_constraint_fails_the_transaction_as_an_insert_would(fresh_postgres: str) -> None:
    store = Store(fresh_postgres)
    first = job(0)
    with store.tx() as conn:
        insert_many(conn, t.jobs, [first])
    again = [job(1), {**job(2), "id": first["id"]}]  # the second collides with the stored one
    with pytest.raises(IntegrityError), store.tx() as conn:
        insert_many(conn, t.jobs, again)
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM jobs")).scalar() == 1  # nothing of the batch
    with store.tx() as conn:  # the pool's connection is usable afterwards
        insert_many(conn, t.jobs, [job(3)])
    store.close()


def test_rows_copy_cannot_store_as_the_insert_would_take_the_insert(fresh_postgres: str) -> None:
    engine = create_engine(fresh_postgres)
    md = MetaData()
    counter = iter(range(100, 1000))
    odd = Table(
        "odd",
        md,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("name", String(10), nullable=False),
        Column("n", Integer, nullable=False, default=lambda: next(counter)),  # computed per row
    )
    md.create_all(engine)
    assert copy_plan(engine.dialect, odd, ["name"]) is None
    assert copy_plan(engine.dialect, odd, ["name", "nope"]) is None
    assert copy_plan(engine.dialect, odd, ["name", "n"]) is not None
    with engine.begin() as conn:
        insert_many(conn, odd, [{"name": "a"}, {"name": "b"}, {"name": "c", "n": 7}])
        got = conn.execute(select(odd.c.name, odd.c.n).order_by(odd.c.id)).all()
    assert [tuple(r) for r in got] == [("a", 100), ("b", 101), ("c", 7)]
    engine.dispose()


def test_sqlite_keeps_its_insert(tmp_path: Any) -> None:
    store = Store(f"sqlite:///{tmp_path / 'y.db'}")
    rows = [job(k, full=k % 2 == 0) for k in range(4)]
    with store.tx() as conn:
        assert not copy_rows(conn, t.jobs, rows)
        insert_many(conn, t.jobs, rows)
    assert [r["name"] for r in stored(store, t.jobs, t.jobs.c.id)] == ["j0", "j1", "j2", "j3"]
    store.close()


def test_several_tables_in_one_statement_store_what_the_insert_stores(fresh_postgres: str) -> None:
    """``insert_together`` (the submissions' write): jobs and their events as JSON recordsets in
    one statement with the audit chain's lock; the same rows as the INSERT, JSON text included,
    the events' identities in the order given; a value orjson refuses takes the INSERT."""
    store = Store(fresh_postgres)
    full = [job(k) for k in range(5)]
    partial = [job(k, full=False) for k in range(5, 9)]
    events = submitted([*full, *partial], "job submitted\t\\n")
    with store.tx() as conn:
        assert insert_together(conn, [(t.jobs, full), (t.job_events, events[: len(full)])], lock=4242)
        assert insert_together(conn, [(t.jobs, partial), (t.job_events, events[len(full) :])])
        held = conn.execute(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND pid = pg_backend_pid()"
            )
        ).scalar()
        assert held == 1
    jobs_together = stored(store, t.jobs, t.jobs.c.id)
    events_together = stored(store, t.job_events, t.job_events.c.id)
    assert [r["job_id"] for r in events_together] == [r["id"] for r in [*full, *partial]]
    with store.tx() as conn:
        conn.execute(text("DELETE FROM jobs"))
        conn.execute(text("DELETE FROM job_events"))
        conn.execute(insert(t.jobs), full)
        conn.execute(insert(t.jobs), partial)
        conn.execute(insert(t.job_events), events)
    assert stored(store, t.jobs, t.jobs.c.id) == jobs_together
    assert stored(store, t.job_events, t.job_events.c.id, skip=("id",)) == [
        {k: v for k, v in r.items() if k != "id"} for r in events_together
    ]
    with store.tx() as conn:  # beyond 64 bits: orjson refuses it, nothing is written this way
        assert not insert_together(conn, [(t.jobs, [{**job(20), "spec": {"n": 2**70}}])])
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM jobs")).scalar() == len(full) + len(partial)
    store.close()


def test_the_chain_lock_is_taken_only_once_the_rows_are_in(fresh_postgres: str) -> None:
    """The audit chain's lock must be a transaction's last (docs/security.md): a writer holding
    it never waits for a row. Here the batch's job has an Idempotency-Key another writer's open
    transaction just inserted, so its insert waits for that one; meanwhile the chain's lock
    must still be free (were it held, the other writer would wait for it in turn: a deadlock)."""
    import threading

    from controller.store import audit_chain

    store = Store(fresh_postgres)
    keyed = {**job(0), "idempotency_key": "k-1", "request_hash": "h"}
    other = store.engine.connect()
    other.execute(insert(t.jobs), [{**job(1), "idempotency_key": "k-1", "request_hash": "h"}])  # open
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with store.tx() as conn:
                insert_together(conn, [(t.jobs, [keyed])], lock=audit_chain.ADVISORY_LOCK)
        except BaseException as e:  # the test reads it
            errors.append(e)

    th = threading.Thread(target=write)
    th.start()
    try:
        with store.engine.connect() as probe:  # the writer waits on the other's key
            wait_for_lock_wait(probe, "WITH w0%", errors, "the writer never waited for the other's row", 30)
            held = probe.execute(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = :k AND granted"),
                {"k": audit_chain.ADVISORY_LOCK},
            ).scalar()
        assert held == 0, "the chain's lock was taken before the rows were in"
    finally:
        other.rollback()  # the key is free again: the writer's insert goes through
        other.close()
        th.join(30)
    assert not th.is_alive() and not errors, errors
    store.close()
