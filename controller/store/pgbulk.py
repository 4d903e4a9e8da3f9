"""PostgreSQL's bulk writes of new rows: COPY (``copy_rows``, for ``base.insert_many``) and
several tables in one statement (``insert_together``, for the submissions' write).

SQLAlchemy's executemany under psycopg sends one INSERT per row (pipelined): the server parses,
plans and runs an executor per row, and SQLAlchemy does its per-row bookkeeping in Python. A
``COPY table (columns) FROM STDIN`` takes every row of a batch as one statement, written by
psycopg's C row writer. On the submissions' write (a batch of 54 jobs, each with its 'Submitted'
event and its audit row) that cost 169 µs of the API process's CPU and 139 µs of the server's
per job; through COPY 92-100 and 81-82 (docs/benchmarks.md, issue 15).

What is stored is what the INSERT stores: the same columns, each value through its type's own
bind processor (the engine's JSON serializer), a column left out of the rows given its scalar
Python-side default as SQLAlchemy would, and a column with no default left to the server (the
identity of ``job_events`` and ``audit_log``); tests/store/test_pgbulk.py reads both back.
COPY has no ``ON CONFLICT``: only rows that are new by construction come here (fresh ids, no
Idempotency-Key), and a constraint violation fails the statement and so the transaction, as
the INSERT would. A driver error is raised as SQLAlchemy's ``DBAPIError`` (the store's
unavailable-store handling reads it there)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import JSON, BigInteger, Connection, DateTime, Integer, String, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError


@dataclass(frozen=True)
class CopyPlan:
    sql: str  # COPY t (a, b, ...) FROM STDIN
    names: tuple[str, ...]  # the rows' keys, in the statement's order
    fixed_names: tuple[str, ...]  # the columns the rows leave out that have a default
    fixed: tuple[Any, ...]  # their values (the defaults)
    processors: tuple[Callable[[Any], Any] | None, ...]  # per column: names, then the fixed ones


_plans: dict[tuple[int, str, tuple[str, ...]], CopyPlan | None] = {}
_plans_lock = threading.Lock()


def copy_plan(dialect: Dialect, table: Table, names: Sequence[str]) -> CopyPlan | None:
    """The COPY for rows with keys ``names`` into ``table``; None where COPY cannot store what
    the INSERT would (a key that is not a column, or a column left out whose default SQLAlchemy
    computes per row)."""
    key = (id(getattr(dialect, "_json_serializer", None)), table.name, tuple(names))
    with _plans_lock:
        if key in _plans:
            return _plans[key]
    plan: CopyPlan | None = None
    if all(n in table.c for n in names):
        fixed_cols = []
        fixed_vals = []
        ok = True
        for col in table.c:
            if col.name in names or col.default is None:
                continue  # given, or the server's (NULL, an identity)
            if not col.default.is_scalar:
                ok = False  # a callable or SQL default: the INSERT's path computes it
                break
            fixed_cols.append(col.name)
            fixed_vals.append(col.default.arg)  # type: ignore[attr-defined]
        if ok:
            prep = dialect.identifier_preparer
            cols = [*names, *fixed_cols]
            procs = tuple(table.c[n].type.dialect_impl(dialect).bind_processor(dialect) for n in cols)
            sql = f"COPY {prep.format_table(table)} ({', '.join(prep.format_column(table.c[n]) for n in cols)}) FROM STDIN"
            plan = CopyPlan(sql, tuple(names), tuple(fixed_cols), tuple(fixed_vals), procs)
    with _plans_lock:
        _plans[key] = plan
    return plan


def copy_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> bool:
    """Write ``rows`` (all with the same keys) in ``conn``'s transaction through COPY; False
    (nothing written) where the INSERT's path is needed (another database, ``copy_plan``)."""
    if conn.dialect.name != "postgresql" or not rows:
        return False
    plan = copy_plan(conn.dialect, table, list(rows[0]))
    if plan is None:
        return False
    names, fixed, procs = plan.names, plan.fixed, plan.processors
    raw = conn.connection.driver_connection
    assert raw is not None
    try:
        with raw.cursor() as cur, cur.copy(plan.sql) as copy:
            write = copy.write_row
            if any(p is not None for p in procs):
                for r in rows:
                    values = [r[n] for n in names]
                    values += fixed
                    write([v if p is None or v is None else p(v) for v, p in zip(values, procs, strict=True)])
            else:
                for r in rows:
                    write([*(r[n] for n in names), *fixed])
    except Exception as exc:
        import psycopg

        if isinstance(exc, psycopg.Error):
            raise DBAPIError.instance(plan.sql, None, exc, psycopg.Error) from exc
        raise
    return True


@dataclass(frozen=True)
class RecordsetPlan:
    """``INSERT ... SELECT FROM json_to_recordset(rows as one JSON array)`` of rows with keys
    ``names``: the rows in the order given (``WITH ORDINALITY ... ORDER BY``: the identities the
    server gives them follow it), the columns the rows leave out given their scalar defaults."""

    sql: str  # with one %s for the rows' JSON, then one per fixed column
    names: tuple[str, ...]
    fixed: tuple[Any, ...]


_recordset_plans: dict[tuple[str, tuple[str, ...]], RecordsetPlan | None] = {}


def recordset_columns(dialect: Dialect, table: Table, names: Sequence[str]) -> str:
    """The column definition list ``json_to_recordset`` reads ``names`` of ``table`` with: each
    column in its own type, as the schema declares it."""
    prep = dialect.identifier_preparer
    return ", ".join(
        f"{prep.format_column(table.c[n])} {table.c[n].type.compile(dialect=dialect)}" for n in names
    )


def recordset_plan(dialect: Dialect, table: Table, names: Sequence[str]) -> RecordsetPlan | None:
    """The plan for ``names`` into ``table``; None as ``copy_plan``, or for a column whose type
    does not read back from JSON as the INSERT writes it (only text, numbers, instants and JSON
    come here)."""
    key = (table.name, tuple(names))
    with _plans_lock:
        if key in _recordset_plans:
            return _recordset_plans[key]
    plan: RecordsetPlan | None = None
    base = copy_plan(dialect, table, names)
    if base is not None and all(
        isinstance(table.c[n].type, String | Integer | BigInteger | DateTime | JSON) for n in names
    ):
        prep = dialect.identifier_preparer
        fixed = base.fixed_names
        given = [prep.format_column(table.c[n]) for n in names]
        typed = recordset_columns(dialect, table, names)
        sql = (
            f"INSERT INTO {prep.format_table(table)} "
            f"({', '.join([*given, *(prep.format_column(table.c[n]) for n in fixed)])}) "
            f"SELECT {', '.join([*(f'r.{q}' for q in given), *(['%s'] * len(fixed))])} "
            f"FROM ROWS FROM (json_to_recordset(%s::json) AS ({typed})) WITH ORDINALITY AS r({', '.join(given)}, ord) "
            "ORDER BY r.ord RETURNING 1"
        )
        plan = RecordsetPlan(sql, tuple(names), base.fixed)
    with _plans_lock:
        _recordset_plans[key] = plan
    return plan


def insert_together(
    conn: Connection, parts: Sequence[tuple[Table, Sequence[Mapping[str, Any]]]], *, lock: int | None = None
) -> bool:
    """New rows into several tables in one statement, one round trip (each table's rows all
    with the same keys, in the order given), and with ``lock`` the transaction-scoped advisory
    lock ``lock`` taken by the same statement once every row is in. Each table's rows go as one JSON text (orjson:
    about a microsecond a row here; per-column arrays through the driver's adapters cost 60 µs
    a job more than COPY). False (nothing written) where a table's rows need the INSERT's path
    (``recordset_plan``; a value orjson refuses: an integer beyond 64 bits). Under load each
    round trip waits for a core: the submissions' write sends its jobs, their events and the
    audit chain's lock at once."""
    if conn.dialect.name != "postgresql":
        return False
    ctes: list[str] = []
    params: list[Any] = []
    for k, (table, rows) in enumerate(parts):
        if not rows:
            continue
        plan = recordset_plan(conn.dialect, table, list(rows[0]))
        if plan is None or any(r.keys() != rows[0].keys() for r in rows):
            return False  # a row without a key would store NULL, not the column's default
        try:
            data = orjson.dumps(rows, option=orjson.OPT_SERIALIZE_NUMPY).decode()
        except TypeError:  # orjson.JSONEncodeError: e.g. an integer beyond 64 bits
            return False
        ctes.append(f"w{k} AS ({plan.sql})")
        params += [*plan.fixed, data]
    # The lock is taken by the main query over the inserts' counts, so only once every row is
    # in: a data-modifying WITH the main query does not read runs after it, and a writer
    # holding the audit chain's lock must never wait for a row (another writer's key).
    counts = ", ".join(f"(SELECT count(*) FROM w{k}) AS n{k}" for k, (_, rows) in enumerate(parts) if rows)
    tail = "SELECT pg_advisory_xact_lock(%s)" if lock is not None else "SELECT 1"
    if lock is not None:
        params.append(lock)
    sql = f"WITH {', '.join(ctes)} {tail} FROM {counts}" if ctes else tail
    conn.exec_driver_sql(sql, tuple(params))
    return True
