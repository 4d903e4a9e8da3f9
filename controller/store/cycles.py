"""The scheduling cycle's writes (placements and preemptions in a few executemany statements,
their audit rows) and the decisions it stores.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, func, insert, select, update

from controller.domain import phases
from controller.domain.decision_codec import resolve_parts, unpack_decision, unpack_frame
from controller.domain.phases import JobPhase, Reason
from controller.store import audit_chain
from controller.store import schema as t
from controller.store.base import StoreBase, now, utc
from controller.store.jobs import ACTIVE_PHASES
from controller.store.pgbulk import recordset_columns

# PostgreSQL: a cycle's placements and its unplaced jobs' messages each in one UPDATE from a
# JSON recordset, instead of one UPDATE a row (the server parsed, planned and ran an executor per
# job: ``apply_cycle`` on 2,000 jobs cost it 65-80 µs a job; docs/benchmarks.md). Each row's
# new values are the recordset's; the rows are locked in id order first, as every writer locks
# them (the placed jobs by ``_phases_of``, the others by a ``FOR UPDATE`` read here): an UPDATE
# with a join takes its rows' locks in the join's order, not the ids'.
_SCHEDULED_KEYS = ("id", "cluster", "epoch", "message", "lease_expires_at")


def _scheduled_in_one(conn: Connection, rows: Sequence[dict[str, Any]], at: Any) -> None:
    """The placements (rows already locked by ``_phases_of``) as one UPDATE."""
    columns = recordset_columns(conn.dialect, t.jobs, _SCHEDULED_KEYS)
    sql = (
        "UPDATE jobs SET phase = 'Scheduled', cluster = r.cluster, epoch = r.epoch, message = r.message, "
        f"lease_expires_at = r.lease_expires_at, updated_at = %s FROM json_to_recordset(%s::json) AS r({columns}) "
        "WHERE jobs.id = r.id AND jobs.phase = 'Pending'"
    )
    data = orjson.dumps([{k: r[k] for k in _SCHEDULED_KEYS} for r in rows]).decode()
    conn.exec_driver_sql(sql, (at, data))


def _messages_in_one(conn: Connection, messages: Sequence[tuple[str, str]]) -> None:
    """The unplaced jobs' new messages, ``messages`` in id order: their rows locked in that
    order, then one UPDATE."""
    conn.exec_driver_sql(
        "SELECT id FROM jobs WHERE id = ANY(%s) ORDER BY id FOR UPDATE", ([i for i, _ in messages],)
    )
    columns = recordset_columns(conn.dialect, t.jobs, ("id", "message"))
    data = orjson.dumps([{"id": i, "message": m} for i, m in messages]).decode()
    conn.exec_driver_sql(
        f"UPDATE jobs SET message = r.message FROM json_to_recordset(%s::json) AS r({columns}) WHERE jobs.id = r.id",
        (data,),
    )


class CyclesRepo(StoreBase):
    _contexts: dict[str, dict[str, Any]]  # decision contexts read (immutable)
    _frames: dict[str, bytes]  # decision parts' zstd frames read, decompressed (immutable; at most 4)

    def apply_cycle(
        self,
        conn: Connection,
        *,
        scheduled: Sequence[dict[str, Any]],
        requeued: Sequence[dict[str, Any]],
        decisions: Sequence[dict[str, Any]],
        messages: Sequence[tuple[str, str]],
    ) -> set[str]:
        """Write one scheduling cycle inside ``conn``'s transaction with a few executemany
        statements. ``scheduled``: {id, attempt, cluster, epoch, message, lease_expires_at};
        ``requeued`` (preempted): {id, attempt, cluster, reason} back to Pending with attempt+1.
        A job no longer in the expected phase/attempt (cancelled meanwhile) is skipped; returns
        the ids actually changed. Decisions of skipped jobs are not written."""
        ids = [r["id"] for r in scheduled] + [r["id"] for r in requeued]
        current = self._phases_of(conn, sorted(ids))  # rows locked in id order, as every writer
        at = now()
        ok_sched = [
            r for r in scheduled if current.get(r["id"], ("", -1, None))[:2] == ("Pending", r["attempt"])
        ]
        ok_req = [
            r
            for r in requeued
            if (c := current.get(r["id"])) is not None
            and c[0] in ACTIVE_PHASES
            and c[1] == r["attempt"]
            and c[2] == r["cluster"]
        ]
        for r in ok_sched:
            phases.transition(r["id"], JobPhase.Pending, JobPhase.Scheduled, Reason.Scheduled)
        for r in ok_req:
            phases.transition(r["id"], current[r["id"]][0], JobPhase.Pending, Reason.Preempted)
        changed = {r["id"] for r in ok_sched} | {r["id"] for r in ok_req}
        if ok_sched and not self.is_sqlite:
            _scheduled_in_one(conn, ok_sched, at)
        elif ok_sched:
            self.executemany(
                conn,
                update(t.jobs)
                .where(t.jobs.c.id == bindparam("b_id"), t.jobs.c.phase == "Pending")
                .values(
                    phase="Scheduled",
                    cluster=bindparam("b_cluster"),
                    epoch=bindparam("b_epoch"),
                    message=bindparam("b_message"),
                    lease_expires_at=bindparam("b_lease"),
                    updated_at=at,
                ),
                sorted(  # in id order: the rows' pages in sequence (``insert_decisions``)
                    [
                        {
                            "b_id": r["id"],
                            "b_cluster": r["cluster"],
                            "b_epoch": r["epoch"],
                            "b_message": r["message"],
                            "b_lease": r["lease_expires_at"],
                        }
                        for r in ok_sched
                    ],
                    key=itemgetter("b_id"),
                ),
            )
        if ok_req:
            self.executemany(
                conn,
                update(t.jobs)
                .where(t.jobs.c.id == bindparam("b_id"))
                .values(
                    phase="Pending",
                    cluster=None,
                    attempt=bindparam("b_attempt"),
                    message=bindparam("b_message"),
                    lease_expires_at=None,
                    updated_at=at,
                ),
                [{"b_id": r["id"], "b_attempt": r["attempt"] + 1, "b_message": r["reason"]} for r in ok_req],
            )
        events = [
            {
                "job_id": r["id"],
                "at": at,
                "type": "Scheduled",
                "from_phase": "Pending",
                "to_phase": "Scheduled",
                "cluster": r["cluster"],
                "attempt": r["attempt"],
                "reason": r["message"],
            }
            for r in ok_sched
        ] + [
            {
                "job_id": r["id"],
                "at": at,
                "type": "Preempted",
                "from_phase": current[r["id"]][0],
                "to_phase": "Pending",
                "cluster": None,
                "attempt": r["attempt"] + 1,
                "reason": r["reason"],
            }
            for r in ok_req
        ]
        self.insert_many(conn, t.job_events, events)
        self.insert_decisions(conn, [d for d in decisions if d["cluster"] is None or d["job_id"] in changed])
        if messages and not self.is_sqlite:
            _messages_in_one(conn, sorted(messages))
        elif messages:
            self.executemany(
                conn,
                update(t.jobs).where(t.jobs.c.id == bindparam("b_id")).values(message=bindparam("b_message")),
                [{"b_id": i, "b_message": m} for i, m in sorted(messages)],
            )
        return changed

    def _phases_of(self, conn: Connection, ids: Sequence[str]) -> dict[str, tuple[str, int, str | None]]:
        """(phase, attempt, cluster) of each of ``ids`` that exists, in ``conn``'s transaction,
        the rows locked for update under PostgreSQL (SQLite's write transaction already excludes
        other writers). Under SQLite one plain statement per 500 ids through the driver: built
        and read through SQLAlchemy's expressions and rows, this read cost 8–10 µs a job of a
        10,000-job cycle, about a fifth of ``apply_cycle``."""
        current: dict[str, tuple[str, int, str | None]] = {}
        for k in range(0, len(ids), 500):
            chunk = list(ids[k : k + 500])
            if self.is_sqlite:
                marks = ",".join("?" * len(chunk))
                rows = conn.exec_driver_sql(
                    f"SELECT id, phase, attempt, cluster FROM jobs WHERE id IN ({marks})", tuple(chunk)
                ).all()
            else:
                q = (
                    select(t.jobs.c.id, t.jobs.c.phase, t.jobs.c.attempt, t.jobs.c.cluster)
                    .where(t.jobs.c.id.in_(chunk))
                    .order_by(t.jobs.c.id)
                    .with_for_update()
                )
                rows = conn.execute(q).all()
            for job_id, phase, attempt, cluster in rows:
                current[job_id] = (phase, attempt, cluster)
        return current

    def insert_decisions(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Insert a cycle's decision rows in job id order: ids are time-ordered, so the rows'
        job id index grows at its right edge in sequence (in the cycle's order its pages split
        half full at random places, and more of them are written)."""
        self.insert_many(conn, t.decisions, sorted(rows, key=itemgetter("job_id")))

    def audit_placements(
        self,
        conn: Connection,
        decisions: Sequence[dict[str, Any]],
        changed: set[str],
        summaries: Sequence[str],
    ) -> None:
        """Append an audit row per placement decision written by ``apply_cycle`` (same filter),
        inside the cycle's transaction; ``summaries``: each decision's (``CycleRows``)."""
        rows = [
            {
                "at": d["created_at"],
                "actor": "scheduler",
                "role": "system",
                "tenant": None,
                "action": "placement.decided",
                "target": f"job/{d['job_id']}",
                "detail": {
                    "attempt": d["attempt"],
                    "cluster": d["cluster"],
                    "status": d["status"],
                    "summary": summary[:500],
                },
            }
            for d, summary in zip(decisions, summaries, strict=True)
            if d["cluster"] is None or d["job_id"] in changed
        ]
        audit_chain.append(conn, rows)

    def latest_decision(self, job_id: str) -> dict[str, Any] | None:
        """The job's latest stored decision body, with the row's own columns (job, attempt,
        status, cluster, time: the body does not repeat them) and, for a body in the columns
        format, what it names in ``decision_parts`` (``resolve_parts``: its context, its slice
        of its chunk's packed columns, decompressed, or of a cycle's uncompressed ones as rows
        written before stored them, its explanation), as ``Decision.model_validate`` expands
        it."""
        d = t.decisions.c
        q = (
            select(d.body, d.job_id, d.attempt, d.status, d.cluster, d.created_at)
            .where(d.job_id == job_id)
            .order_by(d.id.desc())
            .limit(1)
        )
        parts = t.decision_parts.c
        with self.read() as conn:
            row = conn.execute(q).first()
            if row is None:
                return None
            columns = {
                "job_id": row.job_id,
                "attempt": row.attempt,
                "status": row.status,
                "cluster": row.cluster,
                "created_at": utc(row.created_at),
            }

            def context(key: str) -> dict[str, Any]:
                found = self._contexts.get(key)
                if found is None:
                    stored = conn.execute(select(parts.body).where(parts.key == key)).first()
                    found = dict(stored[0]) if stored and stored[0] else {"names": []}
                    if len(self._contexts) > 256:
                        self._contexts.clear()
                    self._contexts[key] = found
                return found

            def piece(key: str, offset: int, length: int) -> bytes:
                data = conn.execute(
                    select(func.substr(parts.data, offset + 1, length)).where(parts.key == key)
                ).scalar()
                return bytes(data or b"")

            def frame(key: str) -> bytes:
                found = self._frames.get(key)
                if found is None:
                    stored = conn.execute(select(parts.data).where(parts.key == key)).scalar()
                    found = unpack_frame(bytes(stored)) if stored else b""
                    if len(self._frames) >= 4:  # a chunk is about 1.2 MB decompressed
                        self._frames.clear()
                    self._frames[key] = found
                return found

            return resolve_parts({**columns, **unpack_decision(dict(row.body))}, context, piece, frame)

    def put_decision_parts(self, conn: Connection, parts: Sequence[dict[str, Any]]) -> None:
        """Store a cycle's decision parts (``{key, body}`` contexts, ``{key, data}`` packed
        columns) in ``conn``'s transaction; a context already stored (its key is its digest)
        is left as it is."""
        at = now()
        for p in parts:
            if "body" in p:
                found = conn.execute(
                    select(t.decision_parts.c.key).where(t.decision_parts.c.key == p["key"])
                ).first()
                if found is not None:
                    continue
            conn.execute(
                insert(t.decision_parts).values(
                    key=p["key"], body=p.get("body"), data=p.get("data"), created_at=at
                )
            )
