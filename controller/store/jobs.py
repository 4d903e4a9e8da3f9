"""Jobs: their rows, their phase changes (compare-and-set, checked against the rule table of
``controller.domain.phases``) and the events that record them; the ids and page cursors.
"""

from __future__ import annotations

import base64
import random
import secrets
import threading
import time
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import (
    Boolean,
    Connection,
    Text,
    bindparam,
    case,
    cast,
    func,
    insert,
    null,
    select,
    update,
)

from controller.domain import phases
from controller.domain.phases import JobPhase, Reason
from controller.store import audit_chain, ingest
from controller.store import schema as t
from controller.store.base import StoreBase, now, pairs_joined
from controller.store.group_commit import PG_GROUP_COMMIT_WRITERS, GroupCommitter
from controller.store.records import JobEventRow, JobRow

OUTPUT_EVENT = phases.EventType.Output.value  # an executor's output for an attempt; not a phase change

ACTIVE_PHASES = (JobPhase.Scheduled.value, JobPhase.Running.value)


class Change(NamedTuple):
    """One phase change of a job whose row the transaction holds (``transition_many``): the
    phase and attempt read there, the new phase, message and lease, and its event."""

    job_id: str
    from_phase: str
    attempt: int
    phase: str
    message: str
    clear_lease: bool  # the job ends: its lease goes (else the lease stays as it is)
    cluster: str | None
    event_type: str
    reason: str


# A job row may carry its audit_log row under this key: written in the job's transaction.
AUDIT_KEY = "_audit"

_id_lock = threading.Lock()
_last_us = 0
# Uniqueness comes from the time part (strictly increasing per process); the random part only
# separates processes, so a seeded PRNG serves (os.urandom per id was a syscall per submission).
_id_random = random.Random(secrets.randbits(64))


def _submitted(row: Mapping[str, Any]) -> dict[str, Any]:
    """A new job's 'Submitted' event, its phase checked against the rule table (every new row's
    event is built here, before anything of the call is written)."""
    phases.transition(row["id"], None, row["phase"], Reason.Submitted)
    return {
        "job_id": row["id"],
        "at": row["created_at"],
        "type": "Submitted",
        "from_phase": None,
        "to_phase": "Pending",
        "cluster": None,
        "attempt": row["attempt"],
        "reason": "job submitted",
    }


def new_job_id() -> str:
    """Time-ordered, unique id: 14 hex digits of microseconds, then 8 random hex digits."""
    global _last_us
    with _id_lock:
        us = max(time.time_ns() // 1000, _last_us + 1)
        _last_us = us
    return f"{us:014x}{_id_random.getrandbits(32):08x}"


def encode_cursor(job_id: str) -> str:
    return base64.urlsafe_b64encode(job_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return raw if raw.isalnum() and len(raw) <= 32 else None


_ACTIVE_NAMES = ("id", "tenant", "phase", "attempt", "epoch")
_ACTIVE_IDS = {
    paged: select(t.jobs.c.id, t.jobs.c.tenant, t.jobs.c.phase, t.jobs.c.attempt, t.jobs.c.epoch)
    .where(
        t.jobs.c.cluster == bindparam("cluster"),
        t.ACTIVE_LITERAL,  # the phases as constants: the partial index ``ix_jobs_active_on_cluster``
        *([t.jobs.c.id > bindparam("after")] if paged else []),
    )
    .order_by(t.jobs.c.id)
    .limit(bindparam("limit"))
    for paged in (False, True)
}


class JobsRepo(StoreBase):
    _group_commit: GroupCommitter | None

    def insert_jobs(self, rows: Sequence[dict[str, Any]]) -> list[tuple[dict[str, Any], bool]]:
        """Insert new jobs (each row may carry idempotency_key/request_hash) with their
        'Submitted' events, in one transaction. Returns (row, created) in order; a row whose
        idempotency key exists (stored before, or earlier in ``rows``) comes back as the stored
        job with created=False.

        Lock order (``audit_chain``): keyed rows are written in (tenant, key) order, a replay's
        row lock (``sync_barrier``) taken in its place in that order, so that writers side by
        side take their locks in one order; unkeyed rows after them, in the order given; the
        audit rows last.

        The common case, no key stored yet, is written as ``insert_jobs_bulk`` writes: the
        rows converted before the transaction (``ingest.JobBatch``), and in it one read of the
        keys (no locks) and three multi-row INSERTs. When a key is stored, the new rows between
        two replays are inserted together, converted in the transaction."""
        out: list[tuple[dict[str, Any], bool] | None] = [None] * len(rows)
        keyed = sorted(
            (i for i, r in enumerate(rows) if r.get("idempotency_key")),
            key=lambda i: (rows[i]["tenant"], rows[i]["idempotency_key"], i),
        )
        first: dict[tuple[str, str], int] = {}  # a key's first row in this call creates it
        repeats: dict[int, int] = {}  # a later row with that key: the first's position
        candidates: list[int] = []  # the rows that create a job unless their key is stored
        for i in keyed:
            k = (rows[i]["tenant"], rows[i]["idempotency_key"])
            if k in first:
                repeats[i] = first[k]
            else:
                first[k] = i
                candidates.append(i)
        keys = [(rows[i]["tenant"], rows[i]["idempotency_key"]) for i in candidates]
        candidates += [i for i, r in enumerate(rows) if not r.get("idempotency_key")]
        batch = self._job_batch([rows[i] for i in candidates])  # their phases checked
        with self.tx() as conn:
            stored = self._by_keys(conn, keys)
            if not stored:
                batch.write(conn)
            else:
                audits: list[dict[str, Any]] = []
                run: list[dict[str, Any]] = []  # new rows not yet written
                new: list[dict[str, Any]] = []
                for i in candidates:
                    existing = stored.get((rows[i]["tenant"], rows[i]["idempotency_key"]))
                    if existing is not None:
                        self._insert_rows(conn, run, audits)
                        run = []
                        # a replay acknowledges the stored job: only once it is on both sites
                        self.sync_barrier(conn, t.jobs, t.jobs.c.id, existing["id"])
                        out[i] = (dict(existing), False)
                    else:
                        run.append(rows[i])
                        new.append(rows[i])
                self._insert_rows(conn, run, audits)
                self.insert_many(conn, t.job_events, [_submitted(row) for row in new])
                # The audit rows last: the chain's lock is the transaction's last (``audit_chain``)
                audit_chain.append(conn, audits)
        for i in candidates:
            if out[i] is None:
                out[i] = (rows[i], True)
        for i, j in repeats.items():
            got = out[j]
            assert got is not None
            out[i] = (got[0], False)
        done = [o for o in out if o is not None]
        assert len(done) == len(rows), "every row is inserted or replayed"
        return done

    def _job_batch(self, rows: Sequence[dict[str, Any]]) -> ingest.JobBatch:
        """New rows, their 'Submitted' events (``_submitted``: their phases checked) and their
        audit rows, converted for the driver (no lock needed)."""
        audits = [r[AUDIT_KEY] for r in rows if r.get(AUDIT_KEY)]
        plain = [{k: v for k, v in r.items() if k != AUDIT_KEY} for r in rows] if audits else rows
        return ingest.JobBatch(self.engine.dialect, plain, [_submitted(r) for r in rows], audits)

    def _by_keys(self, conn: Connection, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Any]:
        """The stored jobs of these (tenant, idempotency key)s, read without locks. The pairs go
        as a VALUES list joined to the jobs on the (tenant, key) index, one statement per 1,000
        (a row-value ``IN`` of pairs scans the table under SQLite; a statement per tenant, or
        SQLAlchemy compiling the VALUES list per call, cost more than the inserts); the rows
        found (replays: rare) are read whole after."""
        found = [
            r[0]
            for r in pairs_joined(
                conn,
                keys,
                "SELECT jobs.id FROM wanted JOIN jobs ON jobs.tenant = wanted.a AND jobs.idempotency_key = wanted.b",
            )
        ]
        out: dict[tuple[str, str], Any] = {}
        for k in range(0, len(found), 500):
            for r in conn.execute(select(t.jobs).where(t.jobs.c.id.in_(found[k : k + 500]))).mappings():
                out[(r["tenant"], r["idempotency_key"])] = r
        return out

    def _insert_rows(self, conn: Connection, run: list[dict[str, Any]], audits: list[dict[str, Any]]) -> None:
        """New job rows (their phases checked by ``_job_batch``) in the order given, their audit
        rows kept for the end of the transaction."""
        audits += [row[AUDIT_KEY] for row in run if row.get(AUDIT_KEY)]
        self.executemany(conn, insert(t.jobs), [{k: v for k, v in r.items() if k != AUDIT_KEY} for r in run])

    def insert_jobs_bulk(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert new jobs without idempotency keys, their 'Submitted' events and their audit
        rows in one transaction; the rows are converted before it (controller/store/ingest.py),
        so the write lock is held only for the INSERTs and the audit chain's links."""
        batch = self._job_batch(rows)  # their phases checked
        with self.tx() as conn:
            batch.write(conn)

    def group_commit(self) -> GroupCommitter:
        """The store's group-commit writer (started on first use)."""
        with _id_lock:
            if self._group_commit is None:
                self._group_commit = GroupCommitter(
                    self, writers=1 if self.is_sqlite else PG_GROUP_COMMIT_WRITERS
                )
            return self._group_commit

    def get_job(self, job_id: str) -> JobRow | None:
        with self.read() as conn:
            row = conn.execute(select(t.jobs).where(t.jobs.c.id == job_id)).mappings().first()
            return typing.cast(JobRow, dict(row)) if row else None

    def job_events(self, job_id: str) -> list[JobEventRow]:
        with self.read() as conn:
            rows = (
                conn.execute(
                    select(t.job_events)
                    .where(t.job_events.c.job_id == job_id, t.job_events.c.type != OUTPUT_EVENT)
                    .order_by(t.job_events.c.id)
                )
                .mappings()
                .all()
            )
            return [typing.cast(JobEventRow, dict(r)) for r in rows]

    def list_jobs(
        self,
        *,
        phase: str | None = None,
        tenant: str | None = None,
        cluster: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[JobRow]:
        q = select(t.jobs).order_by(t.jobs.c.id).limit(limit)
        if phase:
            q = q.where(t.jobs.c.phase == phase)
        if tenant:
            q = q.where(t.jobs.c.tenant == tenant)
        if cluster:
            q = q.where(t.jobs.c.cluster == cluster)
        if after:
            q = q.where(t.jobs.c.id > after)
        with self.read() as conn:
            return [typing.cast(JobRow, dict(r)) for r in conn.execute(q).mappings().all()]

    def active_on_cluster(
        self, cluster: str, *, after: str | None = None, limit: int = 500, with_spec: bool = True
    ) -> list[JobRow]:
        """The Scheduled and Running jobs on one cluster, by id, one page at a time (the partial
        index of active attempts serves it however many jobs the cluster ran before). ``with_spec``
        False: the id, tenant, phase, attempt and epoch only (``job_specs_json`` reads the specs)."""
        if not with_spec:
            return self._active_ids(cluster, after, limit)
        q = (
            select(t.jobs)
            .where(t.jobs.c.cluster == cluster, t.ACTIVE_LITERAL)
            .order_by(t.jobs.c.id)
            .limit(limit)
        )
        if after:
            q = q.where(t.jobs.c.id > after)
        with self.read() as conn:
            return [typing.cast(JobRow, dict(r)) for r in conn.execute(q).mappings().all()]

    def _active_ids(self, cluster: str, after: str | None, limit: int) -> list[JobRow]:
        """``active_on_cluster`` without the specs: ``active_attempts`` as rows by name."""
        return [
            typing.cast(JobRow, dict(zip(_ACTIVE_NAMES, r, strict=True)))
            for r in self.active_attempts(cluster, after, limit)
        ]

    def active_attempts(
        self, cluster: str, after: str | None, limit: int
    ) -> list[tuple[str, str, str, int, int]]:
        """The cluster's Scheduled and Running jobs' (id, tenant, phase, attempt, epoch), by id,
        a page at a time, for every agent's poll (each cluster's, twice a second): one
        statement built once per store (``_ACTIVE_IDS``: its parameters bound, not a new
        expression per call) through the partial index of active attempts, its rows as the
        driver's tuples."""
        stmt = _ACTIVE_IDS[after is not None]
        params = {"cluster": cluster, "limit": limit, "after": after or ""}
        with self.read() as conn:
            return typing.cast(list[tuple[str, str, str, int, int]], conn.execute(stmt, params).all())

    def get_jobs(self, conn: Connection, job_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Rows of many jobs inside ``conn``'s transaction, locked for update (PostgreSQL), in
        id order like every writer of many jobs (two writers locking the same rows in other
        orders can each wait for the other)."""
        out: dict[str, dict[str, Any]] = {}
        ids = sorted(set(job_ids))
        for k in range(0, len(ids), 500):
            q = (
                select(t.jobs)
                .where(t.jobs.c.id.in_(ids[k : k + 500]))
                .order_by(t.jobs.c.id)
                .with_for_update()
            )
            out.update({r["id"]: dict(r) for r in conn.execute(q).mappings()})
        return out

    def count_jobs_by_phase(self) -> dict[str, int]:
        with self.read() as conn:
            rows = conn.execute(select(t.jobs.c.phase, func.count()).group_by(t.jobs.c.phase)).all()
            return {str(p): int(n) for p, n in rows}

    def pending_heads(self, limit: int, *, with_spec: bool = True) -> list[dict[str, Any]]:
        """The pending queue's head (highest priority, then oldest), optionally without the spec
        column, for a scheduler that already holds the specs of the jobs it saw submitted."""
        cols = [t.jobs.c.id, t.jobs.c.tenant, t.jobs.c.attempt, t.jobs.c.priority, t.jobs.c.message]
        if with_spec:
            cols.append(t.jobs.c.spec)
        q = (
            select(*cols)
            .where(t.jobs.c.phase == "Pending")
            .order_by(t.jobs.c.priority.desc(), t.jobs.c.id)
            .limit(limit)
        )
        with self.read() as conn:
            return [dict(r) for r in conn.execute(q).mappings().all()]

    def job_specs_json(self, job_ids: Sequence[str]) -> dict[str, str]:
        """job id -> its spec as stored JSON text (``JobCreate.model_validate_json`` parses and
        validates it in one pass, about twice as fast as decoding and then validating)."""
        out: dict[str, str] = {}
        spec_text = cast(t.jobs.c.spec, Text)
        with self.read() as conn:
            for k in range(0, len(job_ids), 500):
                q = select(t.jobs.c.id, spec_text).where(t.jobs.c.id.in_(job_ids[k : k + 500]))
                out.update({r[0]: r[1] for r in conn.execute(q)})
        return out

    def active_jobs(self) -> list[dict[str, Any]]:
        q = select(t.jobs).where(t.jobs.c.phase.in_(ACTIVE_PHASES))
        with self.read() as conn:
            return [dict(r) for r in conn.execute(q).mappings().all()]

    def unfinished_reading(
        self, conn: Connection, tenant: str, dataset_id: str
    ) -> list[tuple[str, str, int, str | None]]:
        """``tenant``'s jobs not finished (Pending, Scheduled, Running) whose inputs name
        ``dataset_id``, as (id, phase, attempt, cluster) in id order, their rows locked in
        ``conn``'s transaction (``transition_many`` may change them). The database keeps the
        rows whose stored spec has the id as a JSON string (a data-set id has no character JSON
        escapes, and ``_``, a LIKE wildcard, only widens the match); each kept spec's inputs are
        then compared exactly."""
        q = (
            select(t.jobs.c.id, t.jobs.c.phase, t.jobs.c.attempt, t.jobs.c.cluster, t.jobs.c.spec)
            .where(
                t.jobs.c.tenant == tenant,
                t.jobs.c.phase.in_([JobPhase.Pending.value, *ACTIVE_PHASES]),
                cast(t.jobs.c.spec, Text).like(f'%"{dataset_id}"%'),
            )
            .order_by(t.jobs.c.id)
            .with_for_update()
        )
        return [
            (job_id, phase, attempt, cluster)
            for job_id, phase, attempt, cluster, spec in conn.execute(q)
            if dataset_id in (spec.get("inputs") or [])
        ]

    def transition(
        self,
        conn: Connection,
        job_id: str,
        *,
        expect_phases: Iterable[str],
        expect_attempt: int | None,
        values: dict[str, Any],
        event_type: str,
        reason: str,
    ) -> bool:
        """Compare-and-set a job's phase inside ``conn``'s transaction and record the event.
        False when the job is no longer in an expected phase/attempt (someone else moved it).
        The change (current phase, ``values["phase"]``, ``event_type``) is checked against the
        rule table (``controller.domain.phases``) under the row's lock: an illegal one raises
        ``IllegalTransition`` and writes nothing."""
        current = conn.execute(
            select(t.jobs.c.phase, t.jobs.c.attempt, t.jobs.c.cluster)
            .where(t.jobs.c.id == job_id)
            .with_for_update()
        ).first()
        if current is None:
            return False
        expect = tuple(expect_phases)
        if current.phase not in expect:
            return False
        values["phase"] = phases.transition(
            job_id, current.phase, values.get("phase", current.phase), event_type
        ).value
        cond = [t.jobs.c.id == job_id, t.jobs.c.phase.in_(expect)]
        if expect_attempt is not None:
            cond.append(t.jobs.c.attempt == expect_attempt)
        at = values.setdefault("updated_at", now())
        res = conn.execute(update(t.jobs).where(*cond).values(**values))
        if res.rowcount != 1:
            return False
        conn.execute(
            insert(t.job_events).values(
                job_id=job_id,
                at=at,
                type=event_type,
                from_phase=current.phase,
                to_phase=values.get("phase", current.phase),
                cluster=values.get("cluster", current.cluster),
                attempt=values.get("attempt", current.attempt),
                reason=reason,
            )
        )
        return True

    def transition_many(self, conn: Connection, changes: Sequence[Change]) -> None:
        """``transition`` for many jobs whose rows ``conn``'s transaction already holds locked
        (``get_jobs``; under SQLite the write transaction itself), each change computed from the
        row as read there: one executemany UPDATE (compare-and-set on phase and attempt, in the
        order given, so two changes of one job apply in turn) and one executemany INSERT of their
        events, instead of three statements a job. Every change is checked against the rule
        table first (``IllegalTransition``: nothing written). A compare-and-set that matches
        fewer rows than changes means a row moved under the lock: ``RuntimeError``, and the
        caller's transaction rolls back whole."""
        if not changes:
            return
        for c in changes:
            phases.transition(c.job_id, c.from_phase, c.phase, c.event_type)
        at = now()
        matched = self.executemany(
            conn,
            update(t.jobs)
            .where(
                t.jobs.c.id == bindparam("b_id"),
                t.jobs.c.phase == bindparam("b_from"),
                t.jobs.c.attempt == bindparam("b_attempt"),
            )
            .values(
                phase=bindparam("b_phase"),
                message=bindparam("b_message"),
                # one statement for every change (their order is kept: two changes of a job)
                lease_expires_at=case(
                    (bindparam("b_clear", type_=Boolean()), null()), else_=t.jobs.c.lease_expires_at
                ),
                updated_at=at,
            ),
            [
                {
                    "b_id": c.job_id,
                    "b_from": c.from_phase,
                    "b_attempt": c.attempt,
                    "b_phase": c.phase,
                    "b_message": c.message,
                    "b_clear": c.clear_lease,
                }
                for c in changes
            ],
        )
        if matched != len(changes):
            raise RuntimeError(f"{len(changes) - matched} of {len(changes)} locked job rows moved meanwhile")
        events = [
            {
                "job_id": c.job_id,
                "at": at,
                "type": c.event_type,
                "from_phase": c.from_phase,
                "to_phase": c.phase,
                "cluster": c.cluster,
                "attempt": c.attempt,
                "reason": c.reason,
            }
            for c in changes
        ]
        self.insert_many(conn, t.job_events, events)

    def requeue_many(
        self, conn: Connection, rows: Sequence[Mapping[str, Any]], event_type: str, reason: str
    ) -> list[str]:
        """Send active jobs back to Pending with their attempt raised (off their cluster, the
        lease gone), inside ``conn``'s transaction: each job of ``rows`` (id, phase, attempt)
        that is still in that phase and attempt, its row locked here (``get_jobs``); one
        executemany UPDATE and one INSERT of events for all of them (a drained or failed
        cluster's thousands of jobs are a few statements, not three each). The ids moved."""
        current = self.get_jobs(conn, [r["id"] for r in rows])
        moving = []
        for r in rows:
            c = current.get(r["id"])
            if c is not None and (c["phase"], c["attempt"]) == (r["phase"], r["attempt"]):
                phases.transition(r["id"], c["phase"], JobPhase.Pending.value, event_type)
                moving.append(c)
                del current[r["id"]]  # a job listed twice moves once
        if not moving:
            return []
        at = now()
        matched = self.executemany(
            conn,
            update(t.jobs)
            .where(t.jobs.c.id == bindparam("b_id"), t.jobs.c.attempt == bindparam("b_attempt"))
            .values(
                phase=JobPhase.Pending.value,
                cluster=None,
                attempt=bindparam("b_next"),
                message=reason,
                lease_expires_at=None,
                updated_at=at,
            ),
            [{"b_id": c["id"], "b_attempt": c["attempt"], "b_next": c["attempt"] + 1} for c in moving],
        )
        if matched != len(moving):
            raise RuntimeError(f"{len(moving) - matched} of {len(moving)} locked job rows moved meanwhile")
        self.insert_many(
            conn,
            t.job_events,
            [
                {
                    "job_id": c["id"],
                    "at": at,
                    "type": event_type,
                    "from_phase": c["phase"],
                    "to_phase": JobPhase.Pending.value,
                    "cluster": None,
                    "attempt": c["attempt"] + 1,
                    "reason": reason,
                }
                for c in moving
            ],
        )
        return [c["id"] for c in moving]

    def add_outputs(self, conn: Connection, outputs: Sequence[tuple[str, str, int, str]]) -> None:
        """``add_output`` for many (job id, cluster, attempt, text), in one executemany."""
        at = now()
        self.insert_many(
            conn,
            t.job_events,
            [
                {
                    "job_id": job_id,
                    "at": at,
                    "type": OUTPUT_EVENT,
                    "from_phase": None,
                    "to_phase": None,
                    "cluster": cluster,
                    "attempt": attempt,
                    "reason": text,
                }
                for job_id, cluster, attempt, text in outputs
            ],
        )

    def add_output(self, conn: Connection, job_id: str, cluster: str, attempt: int, text: str) -> None:
        """Record the output an executor reported for an attempt (``jobs logs``); kept as an event
        of its own type, left out of the job's timeline and of the followers' change feed."""
        conn.execute(
            insert(t.job_events).values(
                job_id=job_id, at=now(), type=OUTPUT_EVENT, cluster=cluster, attempt=attempt, reason=text
            )
        )

    def job_output(self, job_id: str) -> dict[str, Any] | None:
        """The latest output recorded for the job: (cluster, attempt, at, reason)."""
        e = t.job_events.c
        with self.read() as conn:
            row = (
                conn.execute(
                    select(e.cluster, e.attempt, e.at, e.reason)
                    .where(e.job_id == job_id, e.type == OUTPUT_EVENT)
                    .order_by(e.id.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
            return dict(row) if row else None

    def set_message(self, conn: Connection, job_id: str, message: str) -> None:
        conn.execute(update(t.jobs).where(t.jobs.c.id == job_id).values(message=message))

    def add_event(
        self,
        conn: Connection,
        *,
        job_id: str,
        type: str,
        phase: str,
        cluster: str | None,
        attempt: int,
        reason: str,
    ) -> None:
        """An event that records something about a job without changing it."""
        conn.execute(
            insert(t.job_events).values(
                job_id=job_id,
                at=now(),
                type=type,
                from_phase=phase,
                to_phase=phase,
                cluster=cluster,
                attempt=attempt,
                reason=reason,
            )
        )

    def job_states(self, job_ids: Sequence[str]) -> list[dict[str, Any]]:
        """(id, tenant, phase, cluster, attempt, spec) of the given jobs."""
        cols = (
            t.jobs.c.id,
            t.jobs.c.tenant,
            t.jobs.c.phase,
            t.jobs.c.cluster,
            t.jobs.c.attempt,
            t.jobs.c.spec,
        )
        ids = list(job_ids)
        out: list[dict[str, Any]] = []
        with self.read() as conn:
            for k in range(0, len(ids), 500):
                out.extend(
                    dict(r)
                    for r in conn.execute(select(*cols).where(t.jobs.c.id.in_(ids[k : k + 500]))).mappings()
                )
        return out

    def count_active_on(self, cluster: str, conn: Connection | None = None) -> int:
        """Scheduled and Running jobs on the cluster (inside ``conn``'s transaction if given)."""
        q = select(func.count()).where(t.jobs.c.cluster == cluster, t.ACTIVE_LITERAL)
        if conn is not None:
            return int(conn.execute(q).scalar() or 0)
        with self.read() as c:
            return int(c.execute(q).scalar() or 0)

    def active_on_cluster_locked(self, conn: Connection, cluster: str) -> list[dict[str, Any]]:
        """(id, phase, attempt) of every Scheduled and Running job on the cluster, inside
        ``conn``'s transaction, their rows locked (PostgreSQL)."""
        q = (
            select(t.jobs.c.id, t.jobs.c.phase, t.jobs.c.attempt)
            .where(t.jobs.c.cluster == cluster, t.ACTIVE_LITERAL)
            .order_by(t.jobs.c.id)
            .with_for_update()
        )
        return [dict(r) for r in conn.execute(q).mappings().all()]
