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
        self.jobs.execute(conn)
        self.events.execute(conn)
        if self.audit_bodies:
            links = audit_chain.chain_prepared(conn, self.audit_bodies)
            self.audits.execute(conn, {"prev_hash": [p for p, _ in links], "hash": [h for _, h in links]})
