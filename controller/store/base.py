"""The base every repository of the store builds on: transactions (``tx``: a write that returns
only after its commit; ``read``), the bulk ``executemany``, and the time helpers.

A write returns only after its transaction committed, so an API answer built on it is durable.
A change and its audit row are written in one transaction (``audit_chain.append``): a write
method that owns its transaction takes the row (``audit=``); one that runs in the caller's
(``conn``) leaves the row to the caller.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import chain
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, Table, insert, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.sql.dml import Insert, UpdateBase

from controller.errors import StoreUnavailable
from controller.store.engine import RETRY_AFTER_S, store_unavailable
from controller.store.pgbulk import copy_rows

SQLITE_MAX_VARIABLES = 32_766  # SQLite's default limit since 3.32


def utc(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def now() -> datetime:
    return datetime.now(UTC)


def _memo(proc: Any) -> Any:
    """A bind processor remembering its answers (for values many rows share: instants)."""
    seen: dict[Any, Any] = {}
    last: list[Any] = [seen, None]  # the last value and its answer (rows often share the object)

    def process(value: Any) -> Any:
        if value is last[0]:
            return last[1]
        key = (value, getattr(value, "tzinfo", None))  # equal instants in other zones differ
        out = seen.get(key, seen)
        if out is seen:
            out = seen[key] = proc(value)
        last[0], last[1] = value, out
        return out

    return process


class StoreBase:
    """What every repository of the store shares: the engine, write transactions, reads and the
    bulk executemany. ``Store`` (controller/store/store.py) sets these attributes up."""

    url: str
    engine: Engine
    is_sqlite: bool
    _write_lock: threading.Lock | None

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """A write transaction. Under SQLite it starts with BEGIN IMMEDIATE: the write lock is
        taken before the first read, so a read-then-write (a compare-and-set, a scheduling
        cycle) is atomic against writers in other processes too, and never fails on a stale
        snapshot. Under PostgreSQL, reads that decide a write lock their rows (FOR UPDATE)."""
        try:
            if self._write_lock is None:
                with self.engine.begin() as conn:
                    yield conn
            else:
                with self._write_lock, self.engine.begin() as conn:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                    yield conn
        except (DBAPIError, PoolTimeout) as exc:
            if store_unavailable(exc):
                raise self.unavailable(exc) from exc
            raise

    def executemany(self, conn: Connection, stmt: UpdateBase, params: Sequence[dict[str, Any]]) -> int:
        """``execute_many`` (below): the hot bulk writes, past SQLAlchemy's per-row bookkeeping
        under SQLite; the rows the statements matched, all executions together."""
        return execute_many(conn, stmt, params)

    def insert_many(self, conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """``insert_many`` (below)."""
        insert_many(conn, table, rows)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except (DBAPIError, PoolTimeout) as exc:
            if store_unavailable(exc):
                raise self.unavailable(exc) from exc
            raise

    @staticmethod
    def unavailable(exc: BaseException) -> StoreUnavailable:
        """The domain error for a store that cannot serve now (nothing was acknowledged)."""
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return StoreUnavailable(
            f"the store is unavailable ({type(exc).__name__}: {first[0][:200] if first else ''}); "
            "nothing was committed that this answer acknowledges: retry the same request",
            retry_after=RETRY_AFTER_S,
        )

    def writable(self) -> bool:
        """The store takes writes now: under PostgreSQL, the session's server is a primary (not
        a standby, nor one being demoted); SQLite always."""
        if self.is_sqlite:
            return True
        with self.read() as conn:
            return not bool(conn.exec_driver_sql("SELECT pg_is_in_recovery()").scalar())

    def sync_barrier(self, conn: Connection, table: Any, key: Any, value: Any) -> None:
        """Make the caller's commit wait until what it read is on the synchronous standby.
        PostgreSQL shows a commit to other sessions only once the standby has confirmed it,
        except when that wait was cut short (a cancel, a statement timeout, the backend ended
        while waiting): the commit is then visible on the primary alone. An answer built only on
        a read (an idempotent replay acknowledges the stored job) therefore writes too: a no-op
        update of the row read writes WAL, so this transaction's commit waits for the standby,
        and with it everything before it. Nothing to do under SQLite (no replica)."""
        if self.is_sqlite:
            return
        conn.execute(update(table).where(key == value).values({key.name: value}))


def pairs_joined(
    conn: Connection, pairs: Sequence[tuple[str, str]], select_from: str
) -> Iterator[tuple[Any, ...]]:
    """The rows of ``select_from`` (a ``SELECT ... FROM wanted JOIN ...`` reading the CTE
    ``wanted(a, b)``) with ``pairs`` as that CTE, 1,000 pairs a statement, sent through the
    driver. Each pair is then one probe of an index on the two columns joined: a row-value
    ``IN`` of pairs scans the table under SQLite, two ``IN`` lists probe every combination of
    them, and SQLAlchemy compiling the ``VALUES`` list per call costs more than the probes."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    for k in range(0, len(pairs), 1000):
        chunk = pairs[k : k + 1000]
        values = ", ".join([f"({mark}, {mark})"] * len(chunk))
        sql = f"WITH wanted(a, b) AS (VALUES {values}) {select_from}"
        yield from conn.exec_driver_sql(sql, tuple(x for pair in chunk for x in pair))


def insert_many(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """New rows into ``table``, in the order given, for the hot writes of rows that are new by
    construction (nothing they could conflict with): under PostgreSQL through COPY
    (``pgbulk``), one statement per stretch of rows with the same keys; elsewhere, or where
    COPY cannot store what the INSERT would, ``execute_many`` of a plain INSERT."""
    if conn.dialect.name == "postgresql":
        for stretch in _stretches(rows):
            if not copy_rows(conn, table, stretch):
                execute_many(conn, insert(table), stretch)
        return
    execute_many(conn, insert(table), rows)


def execute_many(conn: Connection, stmt: UpdateBase, params: Sequence[dict[str, Any]]) -> int:
    """``conn.execute(stmt, params)`` for the hot bulk writes (``StoreBase.executemany``, the
    audit chain's appends). Under SQLite the statement is compiled once and its parameters
    converted by the types' own bind processors (the same conversions SQLAlchemy applies:
    DATETIME text, the engine's JSON serializer, booleans), then handed to the driver's
    executemany: SQLAlchemy's per-row execution bookkeeping was most of a cycle's write time,
    and it ran while holding the database's write lock. The rows are written in the order given
    (the callers' lock orders, a job's changes in turn, the audit chain's order): one execution
    per stretch of consecutive rows with the same keys. Returns the rows matched, all
    executions together (both drivers sum an executemany's counts)."""
    matched = 0
    for stretch in _stretches(params):
        if conn.dialect.name != "sqlite":
            matched += int(conn.execute(stmt, stretch).rowcount)
            continue
        got = _sqlite_executemany(conn, stmt, stretch)
        matched += int(conn.execute(stmt, stretch).rowcount) if got is None else got
    return matched


def _stretches(params: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """``params`` cut where a row's keys differ from the row before's."""
    out: list[list[dict[str, Any]]] = []
    for p in params:
        if out and p.keys() == out[-1][0].keys():
            out[-1].append(p)
        else:
            out.append([p])
    return out


def _sqlite_executemany(conn: Connection, stmt: UpdateBase, params: list[dict[str, Any]]) -> int | None:
    """The rows matched; None (nothing written) for an INSERT that leaves out a column with a
    default: SQLAlchemy computes those per row, so the caller takes its path."""
    keys = list(params[0])
    compiled = stmt.compile(dialect=conn.dialect, column_keys=keys)
    names = compiled.positiontup or []
    if isinstance(stmt, Insert) and set(names) != set(keys):
        return None
    fixed = compiled.params
    plan = []
    for name in names:
        type_ = compiled.binds[name].type
        proc = type_.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        if proc is not None and isinstance(type_, DateTime):
            proc = _memo(proc)  # a cycle's rows share their instants
        plan.append((name, name in keys, proc))
    # Column by column (the processors over whole columns), then zipped into rows.
    columns: list[list[Any]] = []
    for name, given, proc in plan:
        values = [p[name] for p in params] if given else [fixed[name]] * len(params)
        columns.append([proc(v) for v in values] if proc is not None else values)
    sql = compiled.string
    if not isinstance(stmt, Insert) or " VALUES (" not in sql or not names:
        return int(conn.exec_driver_sql(sql, list(zip(*columns, strict=True))).rowcount)
    # One multi-row INSERT per chunk instead of a statement step per row: the driver
    # releases and re-takes the GIL around every step, and in a busy API process each
    # re-take waits behind the event loop, all while this process holds the write lock.
    head, group = sql.split(" VALUES ", 1)
    per = max(1, min(500, SQLITE_MAX_VARIABLES // len(names)))
    matched = 0
    for k in range(0, len(params), per):
        chunk = [c[k : k + per] for c in columns]
        flat = tuple(chain.from_iterable(zip(*chunk, strict=True)))
        sql_k = f"{head} VALUES {', '.join([group] * len(chunk[0]))}"
        matched += int(conn.exec_driver_sql(sql_k, flat).rowcount)
    return matched
