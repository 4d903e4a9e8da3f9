"""The submissions' write (controller/store/ingest.py): rows converted before the transaction,
three multi-row INSERTs in it. It must store exactly what the row-by-row path stores, the audit
chain included, on both databases."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from controller.audit import verify
from controller.store import Store, audit_chain, bulk
from controller.store import schema as t
from controller.store.store import AUDIT_KEY, new_job_id, now


def rows(n: int, tag: str) -> list[dict[str, Any]]:
    at = now()
    out = []
    for k in range(n):
        job_id = new_job_id()
        out.append(
            {
                "id": job_id,
                "tenant": "guangdong" if k % 2 else "hubei",
                "name": f"{tag}{k}",
                "phase": "Pending",
                "cluster": None,
                "attempt": 1,
                "epoch": 0,
                "priority": 100 + k,
                "spec": {"name": f"{tag}{k}", "tenant": "guangdong", "inputs": ["a", "b"], "x": [1.5, None]},
                "message": "waiting to be scheduled",
                "created_at": at + timedelta(microseconds=k),
                "updated_at": at + timedelta(microseconds=k),
                "lease_expires_at": None,
                "idempotency_key": None,
                "request_hash": None,
                AUDIT_KEY: {
                    "at": at + timedelta(microseconds=k),
                    "actor": "0123456789ab",
                    "role": "tenant",
                    "tenant": "guangdong",
                    "action": "job.submitted",
                    "target": f"job/{job_id}",
                    "detail": {"job_tenant": "guangdong", "name": f"{tag}{k}", "ünï": "中文"},
                },
            }
        )
    return out


def dump(store: Store) -> list[list[tuple[Any, ...]]]:
    with store.read() as conn:
        return [
            [tuple(r) for r in conn.execute(select(t.jobs).order_by(t.jobs.c.id))],
            [tuple(r)[1:] for r in conn.execute(select(t.job_events).order_by(t.job_events.c.id))],
            [tuple(r)[1:] for r in conn.execute(select(t.audit_log).order_by(t.audit_log.c.id))],
        ]


def second_database(db_url: str) -> str:
    """Another empty database of the same kind as ``db_url``."""
    if db_url.startswith("sqlite"):
        return db_url.replace("yiwang.db", "other.db")
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    base = db_url.rsplit("/", 1)[0]
    with psycopg.connect(
        base.replace("postgresql+psycopg://", "postgresql://") + "/postgres", autocommit=True
    ) as c:
        c.execute(f"CREATE DATABASE {name}")
    return f"{base}/{name}"


def test_the_batch_write_stores_what_the_row_by_row_write_stores(db_url: str) -> None:
    batch = rows(7, "a") + rows(5, "b")
    row_by_row = Store(db_url)
    row_by_row.insert_jobs([dict(r) for r in batch])
    bulk_store = Store(second_database(db_url))
    bulk_store.insert_jobs_bulk([dict(r) for r in batch])
    expected, got = dump(row_by_row), dump(bulk_store)
    assert got == expected
    assert [len(x) for x in got] == [12, 12, len(expected[2])] and len(got[2]) >= 12
    assert verify(bulk_store).ok
    row_by_row.close()
    bulk_store.close()


def test_the_sqlite_plan_writes_the_bytes_sqlalchemy_writes(tmp_path: Path) -> None:
    """The converted rows (the types' own bind processors, run before the transaction) are
    byte-for-byte what conn.execute(insert(table), rows) writes, read back raw."""
    import sqlite3

    batch = rows(3, "c")
    jobs = [{k: v for k, v in r.items() if k != AUDIT_KEY} for r in batch]
    dumps = []
    for planned in (False, True):
        url = f"sqlite:///{tmp_path / f'p{int(planned)}.db'}"
        store = Store(url)
        prepared = bulk.PreparedRows(store.engine.dialect, t.jobs, jobs)
        assert prepared.plan is not None
        with store.tx() as conn:
            if planned:
                prepared.execute(conn)
            else:
                conn.execute(insert(t.jobs), jobs)
        store.close()
        con = sqlite3.connect(url.split("///", 1)[1])
        dumps.append(con.execute("select * from jobs order by id").fetchall())
        con.close()
    assert dumps[0] == dumps[1] and len(dumps[0]) == 3


def test_a_plan_needs_every_column_without_a_python_default(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'd.db'}")
    row = {k: v for k, v in rows(1, "d")[0].items() if k not in (AUDIT_KEY, "attempt", "epoch", "message")}
    assert bulk.insert_plan(store.engine.dialect, t.jobs, list(row)) is None
    prepared = bulk.PreparedRows(store.engine.dialect, t.jobs, [row])
    with store.tx() as conn:
        prepared.execute(conn)  # the generic path: SQLAlchemy applies the defaults
    got = store.get_job(row["id"])
    assert got is not None and (got["attempt"], got["epoch"], got["message"]) == (1, 0, "")
    store.close()


def test_chain_prepared_continues_a_chain_written_by_append(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    first = rows(2, "e")
    with store.tx() as conn:
        audit_chain.append(conn, [r[AUDIT_KEY] for r in first])
    store.insert_jobs_bulk(rows(4, "f"))
    with store.tx() as conn:
        audit_chain.append(conn, [r[AUDIT_KEY] for r in rows(2, "g")])
    report = verify(store)
    assert report.ok and report.rows >= 8
    store.close()


def test_group_commit_creates_each_idempotency_key_once_whatever_the_writers(db_url: str) -> None:
    """With two writer threads (PostgreSQL; off by default) batches commit side by side: a key
    sent several times at once still creates one job, and every other request gets it back."""
    import asyncio

    from controller.store.store import GroupCommitter

    store = Store(db_url)
    gc = GroupCommitter(store, writers=1 if store.is_sqlite else 2)
    batch = rows(120, "k")
    for k, r in enumerate(batch):
        r["tenant"] = "guangdong"
        r["idempotency_key"] = f"key-{k % 30}"
        r["request_hash"] = "h"

    async def submit_all() -> list[tuple[dict[str, Any], bool]]:
        out = []
        for k in range(0, len(batch), 40):  # three waves of concurrent requests
            out += await asyncio.gather(*[gc.submit(dict(r)) for r in batch[k : k + 40]])
        return out

    results = asyncio.run(submit_all())
    created = [(r["idempotency_key"], r["id"]) for r, made in results if made]
    assert sorted(k for k, _ in created) == sorted(f"key-{k}" for k in range(30))
    first = dict(created)
    assert all(r["id"] == first[r["idempotency_key"]] for r, _ in results)
    with store.read() as conn:
        assert len(conn.execute(select(t.jobs.c.id)).all()) == 30
    store.close()


def test_one_call_with_new_stored_repeated_and_unkeyed_rows(db_url: str) -> None:
    """``insert_jobs`` reads the stored keys at once and writes new rows in stretches between
    replays: every row answers in its place (new, the stored job, the first row of a key
    repeated in the call), each new job has its event and audit row, and nothing else is
    written."""
    store = Store(db_url)
    (before,) = rows(1, "old")
    before.update(tenant="hubei", idempotency_key="k-5", request_hash="h")
    store.insert_jobs([before])
    batch = rows(8, "n")
    keys = ["k-9", None, "k-5", "k-1", "k-9", None, "k-3", "k-5"]  # k-5 stored, k-9 twice
    for r, key in zip(batch, keys, strict=True):
        r["tenant"] = "hubei"
        r["idempotency_key"], r["request_hash"] = key, "h" if key else None
    got = store.insert_jobs(batch)
    ids = [r["id"] for r, _ in got]
    assert [made for _, made in got] == [True, True, False, True, False, True, True, False]
    assert ids[2] == ids[7] == before["id"] and ids[4] == ids[0] == batch[0]["id"]
    new = {batch[i]["id"] for i in (0, 1, 3, 5, 6)}
    with store.read() as conn:
        stored = {r.id for r in conn.execute(select(t.jobs.c.id))}
        events = [r.job_id for r in conn.execute(select(t.job_events.c.job_id))]
        audited = [r.target for r in conn.execute(select(t.audit_log.c.target))]
    assert stored == new | {before["id"]}
    assert sorted(events) == sorted(new | {before["id"]})
    assert sorted(audited) == sorted(f"job/{i}" for i in new | {before["id"]})
    assert verify(store).ok
    store.close()


def test_a_keyed_insert_takes_the_chain_lock_last(fresh_postgres: str) -> None:
    """A batch with a new job and a replayed key (whose row it touches, ``sync_barrier``) while
    another writer holds that row and then appends its audit row (a cancel): the batch must
    not hold the chain's lock while it waits for the row (a deadlock PostgreSQL breaks by
    aborting one, a 503 to its client). Both commit; the replay returns the stored job."""
    import threading

    from sqlalchemy import text, update

    from controller.live import wait_for

    store = Store(fresh_postgres)
    old, new = rows(2, "dl")
    for r, key in ((old, "b-old"), (new, "a-new")):  # the new key sorts first: inserted first
        r.update(tenant="guangdong", idempotency_key=key, request_hash="h")
    assert old.get(AUDIT_KEY) and new.get(AUDIT_KEY)
    [(_, made)] = store.insert_jobs([dict(old)])
    assert made
    replay = {**rows(1, "again")[0], "tenant": "guangdong", "idempotency_key": "b-old", "request_hash": "h"}
    got: list[Any] = []

    def insert_batch() -> None:
        try:
            got.append(store.insert_jobs([replay, new]))
        except Exception as exc:  # reported below, with the test's own failure
            got.append(exc)

    with store.engine.connect() as other:
        tx = other.begin()
        other.execute(update(t.jobs).where(t.jobs.c.id == old["id"]).values(message="cancelling"))
        thread = threading.Thread(target=insert_batch)
        thread.start()
        waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' AND NOT granted"
        with store.engine.connect() as probe:
            wait_for(
                "the batch waiting for the row the other writer holds",
                lambda: probe.execute(text(waiting)).scalar(),
                5,
                every_s=0.01,
            )
        audit_chain.append(other, [{**old[AUDIT_KEY], "action": "job.cancelled"}])
        tx.commit()
    thread.join(30)
    assert not thread.is_alive()
    assert not isinstance(got[0], Exception), f"insert_jobs failed: {got[0]!r}"
    [(again, replayed), (fresh, created)] = got[0]  # in the order given
    assert (again["id"], replayed) == (old["id"], False)
    assert (fresh["id"], created) == (new["id"], True)
    with store.read() as conn:
        assert sorted(conn.execute(select(t.jobs.c.id)).scalars().all()) == sorted([old["id"], new["id"]])
    assert verify(store).ok
    store.close()


def test_the_group_committer_outlives_a_closed_event_loop() -> None:
    """A batch that commits after its waiters' event loop closed (a client gone, a test's
    loop ended) is dropped quietly; the writer thread lives on for the next submissions."""
    import asyncio
    import threading

    from controller.store.group_commit import GroupCommitter

    class SlowWriter:
        def __init__(self) -> None:
            self.release = threading.Event()

        def insert_jobs(self, rows: Any) -> list[tuple[dict[str, Any], bool]]:
            self.release.wait(10)
            return [(r, True) for r in rows]

        def insert_jobs_bulk(self, rows: Any) -> None:
            self.release.wait(10)

    writer = SlowWriter()
    gc = GroupCommitter(writer)

    async def submit_only() -> None:
        gc.submit({"id": "a", "tenant": "t"})  # not awaited: the loop closes with it pending

    asyncio.run(submit_only())
    writer.release.set()

    async def submit_and_wait() -> tuple[dict[str, Any], bool]:
        return await asyncio.wait_for(gc.submit({"id": "b", "tenant": "t"}), 10)

    row, created = asyncio.run(submit_and_wait())
    assert (row["id"], created) == ("b", True)
    assert all(t.is_alive() for t in gc._threads)
