"""Bulk INSERTs for the hot write paths, with the rows converted before the transaction.

Under SQLite one process at a time holds the database's write lock, and the API's group commit
and the scheduling leader's cycle take turns at it: whatever a writer does while holding it
(compiling a statement, serialising JSON columns, formatting instants, SQLAlchemy's per-row
bookkeeping) is time the other waits. An ``InsertPlan`` is compiled once per (dialect, table,
columns) and converts rows with the column types' own bind processors (the very conversions
SQLAlchemy applies, so the stored bytes are the same), so a writer can convert its rows first
and, holding the lock, only hand the driver ready tuples in multi-row INSERTs.

PostgreSQL has no single write lock; there the rows go through ``base.insert_many`` inside the
transaction (COPY: ``pgbulk``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

from sqlalchemy import Connection, DateTime, Table, insert
from sqlalchemy.engine import Dialect

from controller.store.base import insert_many

SQLITE_MAX_VARIABLES = 32_766  # SQLite's default limit since 3.32
MAX_ROWS_PER_STATEMENT = 500


@dataclass(frozen=True)
class InsertPlan:
    """A compiled multi-row INSERT of ``names`` into one table (SQLite)."""

    head: str  # "INSERT INTO t (a, b)"
    group: str  # "(?, ?)"
    names: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]
    datetimes: tuple[bool, ...]  # which processors format instants (worth remembering per batch)

    @property
    def per_statement(self) -> int:
        return max(1, min(MAX_ROWS_PER_STATEMENT, SQLITE_MAX_VARIABLES // len(self.names)))

    def convert(self, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        """The rows as the driver's parameter tuples (no lock needed: pure computation)."""
        columns: list[list[Any]] = []
        for name, proc, is_dt in zip(self.names, self.processors, self.datetimes, strict=True):
            values = [r[name] for r in rows]
            if proc is None:
                columns.append(values)
            elif is_dt:  # rows of a batch share instants (created_at is updated_at)
                last: Any = object()
                out: Any = None
                converted = []
                for v in values:
                    if v is not last:
                        last, out = v, proc(v)
                    converted.append(out)
                columns.append(converted)
            else:
                columns.append([proc(v) for v in values])
        return list(zip(*columns, strict=True))

    def execute(self, conn: Connection, values: Sequence[tuple[Any, ...]]) -> None:
        """Insert converted rows: one statement per chunk, one driver step each (the driver
        releases and re-takes the GIL around every step, and each re-take can wait behind a
        busy event loop while this process holds the write lock)."""
        per = self.per_statement
        for k in range(0, len(values), per):
            chunk = values[k : k + per]
            sql = f"{self.head} VALUES {', '.join([self.group] * len(chunk))}"
            conn.exec_driver_sql(sql, tuple(chain.from_iterable(chunk)))


_plans: dict[tuple[str, int, str, tuple[str, ...]], InsertPlan | None] = {}
_plans_lock = threading.Lock()


def insert_plan(dialect: Dialect, table: Table, names: Sequence[str]) -> InsertPlan | None:
    """The plan for inserting ``names`` into ``table`` under SQLite, or None where the generic
    path is needed (another dialect, or a column left out that has a Python-side default:
    SQLAlchemy computes those per row). The parameters are in ``names`` order."""
    if dialect.name != "sqlite":
        return None
    # the JSON columns' processors use the engine's serializer: part of the key
    key = (dialect.name, id(getattr(dialect, "_json_serializer", None)), table.name, tuple(names))
    with _plans_lock:
        if key in _plans:
            return _plans[key]
    compiled = insert(table).compile(dialect=dialect, column_keys=list(names))
    order = list(compiled.positiontup or [])
    plan: InsertPlan | None = None
    if order and set(order) == set(names):
        head, group = compiled.string.split(" VALUES ", 1)
        # The columns as ``names`` orders them (the compiled statement lists them in the
        # table's order): rewrite the column list to match.
        head = f"{head.split(' (', 1)[0]} ({', '.join(names)})"
        procs = []
        dts = []
        for name in names:
            type_ = compiled.binds[name].type
            procs.append(type_.dialect_impl(dialect).bind_processor(dialect))
            dts.append(isinstance(type_, DateTime))
        plan = InsertPlan(head, group, tuple(names), tuple(procs), tuple(dts))
    with _plans_lock:
        _plans[key] = plan
    return plan


class PreparedRows:
    """Rows for one table, converted for the driver ahead of the transaction where a plan
    exists (SQLite), kept as dicts for ``base.insert_many`` otherwise (PostgreSQL: COPY)."""

    def __init__(self, dialect: Dialect, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        self.table = table
        self.rows = rows
        self.plan = insert_plan(dialect, table, list(rows[0])) if rows else None
        if self.plan is not None and any(len(r) != len(self.plan.names) for r in rows):
            self.plan = None  # rows with different columns: the generic path
        self.values = self.plan.convert(rows) if self.plan is not None else []

    def execute(self, conn: Connection, late: Mapping[str, Sequence[Any]] | None = None) -> None:
        """Insert the rows. ``late``: per column, one value per row for columns whose values
        are known only inside the transaction (the audit chain's hashes); they replace what
        the rows held for them when prepared."""
        if not self.rows:
            return
        if self.plan is not None:
            values = self.values
            if late:
                at = []
                for name, vals in late.items():
                    i = self.plan.names.index(name)
                    proc = self.plan.processors[i]
                    at.append((i, [proc(x) for x in vals] if proc is not None else vals))
                rebuilt = []
                for k, v in enumerate(values):
                    row = list(v)
                    for i, converted in at:
                        row[i] = converted[k]
                    rebuilt.append(tuple(row))
                values = rebuilt
            self.plan.execute(conn, values)
            return
        rows = [dict(r) for r in self.rows]
        for name, vals in (late or {}).items():
            for r, v in zip(rows, vals, strict=True):
                r[name] = v
        insert_many(conn, self.table, rows)
