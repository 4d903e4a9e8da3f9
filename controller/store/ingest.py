"""The submissions' write: new jobs, their 'Submitted' events and their audit rows, prepared
before the write transaction and written in it with as little work as possible.

``Store.insert_jobs_bulk`` (the group commit's writer, controller/store/store.py) builds a
``JobBatch`` and then writes it in one transaction. Preparing converts every row for the driver
(``bulk.PreparedRows``: the job's spec as JSON, the instants as text, the audit row normalised
and its canonical bytes computed); inside the transaction, holding SQLite's write lock (or, under
PostgreSQL, the audit chain's advisory lock from its first audit row to the commit), what is
left is three multi-row INSERTs and the chain's links (one SM3 per audit row). The audit rows
go last, so the chain's lock is held for the shortest time. What is stored is exactly what
``Store.insert_jobs`` stores for the same rows (tests/store/test_ingest.py compares them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect

from controller.store import audit_chain
from controller.store import schema as t
from controller.store.bulk import PreparedRows
from controller.store.pgbulk import insert_together


class JobBatch:
    """New job rows, their events and their audit rows, converted
    for the driver; ``write`` inserts them in the caller's transaction. The caller checks the
    phase changes (``phases.transition``) and builds the events."""

    def __init__(
        self,
        dialect: Dialect,
        rows: Sequence[Mapping[str, Any]],
        events: Sequence[Mapping[str, Any]],
        audits: Sequence[dict[str, Any]],
    ) -> None:
        self.jobs = PreparedRows(dialect, t.jobs, rows)
        self.events = PreparedRows(dialect, t.job_events, events)
        prepared = audit_chain.prepare(audits)
        self.audit_bodies = [body for _, body in prepared]
        self.audits = PreparedRows(
            dialect, t.audit_log, [{**row, "prev_hash": None, "hash": None} for row, _ in prepared]
        )

    def write(self, conn: Connection) -> None:
        """Under PostgreSQL the jobs, their events and the chain's lock go in one statement
        (``pgbulk.insert_together``), then the last hash is read and the audit rows are copied:
        three round trips and the commit, where an INSERT, a COPY or a SELECT each was one or
        two (ten in all). Under load each waits for a core: the group commit's batch took 31 ms
        (7 of them its own CPU)."""
        locked = conn.dialect.name == "postgresql" and insert_together(
            conn,
            [(t.jobs, self.jobs.rows), (t.job_events, self.events.rows)],
            lock=audit_chain.ADVISORY_LOCK if self.audit_bodies else None,
        )
        if not locked:
            self.jobs.execute(conn)
            self.events.execute(conn)
        if self.audit_bodies:
            links = audit_chain.chain_prepared(conn, self.audit_bodies, locked=locked)
            self.audits.execute(conn, {"prev_hash": [p for p, _ in links], "hash": [h for _, h in links]})
