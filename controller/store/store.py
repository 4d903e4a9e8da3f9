"""The Store: every durable read and write of the controller, in short transactions.

A write returns only after its transaction committed, so an API answer built on it is durable.
SQLite runs in WAL mode with synchronous=FULL (a killed process or a power cut loses no
acknowledged commit); PostgreSQL with its defaults. A change and its audit row are written in one
transaction (``audit_chain.append``): a write method that owns its transaction takes the row
(``audit=``); one that runs in the caller's (``conn``) leaves the row to the caller.

Replicated PostgreSQL (the national store, docs/national.md): the URL may name several hosts the
way libpq does (``postgresql+psycopg://user@h1:5432,h2:5432/yiwang?target_session_attrs=read-write``)
and every new connection goes to the one that is writable now. When the primary dies or is
demoted, the errors that say so (a closed connection, a read-only server, an administrator
shutdown) invalidate the whole pool, so the next transaction connects afresh and finds the new
primary; the failed transaction itself raises ``StoreUnavailable`` (503 with Retry-After) and was
not acknowledged. Dead peers are noticed by TCP keepalives and ``tcp_user_timeout`` (a partition
drops packets: without them a call would hang for minutes). Statement timeouts are deliberately
not used: a commit cancelled while it waits for the synchronous standby is reported as committed
with only a warning, which would acknowledge a write that is on one site only.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import queue
import random
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import chain
from pathlib import Path
from typing import Any, Literal, NamedTuple

import orjson
from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    Text,
    bindparam,
    cast,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.dml import Insert, UpdateBase

from controller.domain import phases
from controller.domain.decision_codec import unpack_decision
from controller.domain.phases import JobPhase, Reason
from controller.errors import StaleLeader, StoreUnavailable
from controller.store import audit_chain, ingest
from controller.store import schema as t

OUTPUT_EVENT = phases.EventType.Output.value  # an executor's output for an attempt; not a phase change

ACTIVE_PHASES = (JobPhase.Scheduled.value, JobPhase.Running.value)
SQLITE_MAX_VARIABLES = 32_766  # SQLite's default limit since 3.32


class EventRef(NamedTuple):
    id: int
    job_id: str
    type: str
    to_phase: str | None
    cluster: str | None
    attempt: int


# A job row may carry its audit_log row under this key: written in the job's transaction.
AUDIT_KEY = "_audit"
_id_lock = threading.Lock()
_last_us = 0
# Uniqueness comes from the time part (strictly increasing per process); the random part only
# separates processes, so a seeded PRNG serves (os.urandom per id was a syscall per submission).
_id_random = random.Random(secrets.randbits(64))


def new_job_id() -> str:
    """Time-ordered, unique id: 14 hex digits of microseconds, then 8 random hex digits."""
    global _last_us
    with _id_lock:
        us = max(time.time_ns() // 1000, _last_us + 1)
        _last_us = us
    return f"{us:014x}{_id_random.getrandbits(32):08x}"


def utc(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def now() -> datetime:
    return datetime.now(UTC)


def encode_cursor(job_id: str) -> str:
    return base64.urlsafe_b64encode(job_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return raw if raw.isalnum() and len(raw) <= 32 else None


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _json_dumps(value: Any) -> str:
    # orjson: the scheduling cycle writes a decision body per job; stdlib json was a fifth of it.
    # It refuses what stdlib json writes (integers beyond 64 bits in a free-form body): those
    # take the stdlib path, so any JSON the API accepted can be stored.
    try:
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    except TypeError:
        return json.dumps(value)


def _json_loads(text: str | bytes) -> Any:
    # orjson refuses numbers beyond a double (``number is infinity when parsed as double``) and
    # would fail the whole query that reads such a row (at start-up: the whole controller). Those
    # rows take the stdlib path; the loaders then validate the value and skip or report it.
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


JSON_CODEC: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": _json_loads}


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


# SQLSTATEs that mean "this server cannot take the transaction now; another may": the whole
# pool is then dropped, so the next connection goes through the multi-host list again.
FAILOVER_SQLSTATES = frozenset(
    {
        "25006",  # read_only_sql_transaction: the server was demoted under an open connection
        "57P01",  # admin_shutdown (Patroni stopping or demoting it)
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting, or in recovery)
        "08000",  # connection_exception
        "08001",  # sqlclient_unable_to_establish_sqlconnection
        "08003",  # connection_does_not_exist
        "08004",  # sqlserver_rejected_establishment_of_sqlconnection
        "08006",  # connection_failure
    }
)
# libpq settings applied unless the URL sets them: a peer that stops answering (a partition
# drops its packets) is given up after about 10 s instead of the kernel's 15 minutes.
PG_CONNECT_DEFAULTS = {
    "connect_timeout": "2",
    "keepalives": "1",
    "keepalives_idle": "4",
    "keepalives_interval": "2",
    "keepalives_count": "3",
    "tcp_user_timeout": "10000",
}
RETRY_AFTER_S = 2.0
# Group-commit writer threads under PostgreSQL (GroupCommitter). Two were measured on this
# machine (issue 15): no gain in submissions/s and more API CPU per job, so one, like SQLite.
PG_GROUP_COMMIT_WRITERS = 1


def normalise_url(url: str) -> str:
    """libpq's multi-host form ``scheme://user@h1:p1,h2:p2/db?query`` as SQLAlchemy's
    ``scheme://user@/db?host=h1:p1&host=h2:p2&query`` (SQLAlchemy's parser takes one host in the
    authority part); any other URL is returned unchanged."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme.startswith("postgresql"):
        return url
    authority, _slash, tail = rest.partition("/")
    userinfo, at, hostlist = authority.rpartition("@")
    if "," not in hostlist:
        return url
    hosts = "&".join(f"host={h}" for h in hostlist.split(",") if h)
    path, _, query = tail.partition("?")
    return f"{scheme}://{userinfo}{at}/{path}?{hosts}" + (f"&{query}" if query else "")


def store_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the store cannot serve now but may shortly (a failover, a dead or
    demoted primary, no connection, a busy SQLite file), as opposed to a bug or bad data."""
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError) or isinstance(exc, IntegrityError):
        return False
    if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
        return True
    return getattr(exc.orig, "sqlstate", None) in FAILOVER_SQLSTATES


def _failover_is_disconnect(ctx: Any) -> None:
    """SQLAlchemy's handle_error hook: errors of a server that cannot be written any more count
    as a disconnect, so the pool is invalidated and the next checkout reconnects."""
    state = getattr(ctx.original_exception, "sqlstate", None)
    if state in FAILOVER_SQLSTATES and not ctx.is_disconnect:
        ctx.is_disconnect = True


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 10},
            pool_size=8,
            max_overflow=8,
            **JSON_CODEC,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    given = set(make_url(url).query)
    connect_args = {k: v for k, v in PG_CONNECT_DEFAULTS.items() if k not in given}
    if os.environ.get("YIWANG_DB_NULLPOOL"):
        engine = create_engine(url, poolclass=NullPool, connect_args=connect_args, **JSON_CODEC)
    else:
        # pool_pre_ping: a pooled connection to a primary that died is replaced at checkout;
        # pool_timeout: a request waits at most this long for a connection, then gets a 503.
        engine = create_engine(
            url,
            pool_size=10,
            max_overflow=10,
            pool_pre_ping=True,
            pool_timeout=10,
            connect_args=connect_args,
            **JSON_CODEC,
        )
    event.listen(engine, "handle_error", _failover_is_disconnect)
    return engine


class GroupCommitter:
    """Group commit for submissions: concurrent requests hand their job rows to one writer
    thread, which inserts everything queued so far in one transaction (one fsync) and then
    resolves each waiter. A waiter is resolved only after its row committed, so a 2xx answer
    built on it is durable (as ``insert_jobs`` guarantees for a single batch)."""

    def __init__(self, store: Store, max_batch: int = 1024, writers: int = 1) -> None:
        """``writers``: threads taking batches from the one queue. Under PostgreSQL, whose
        transactions run side by side, a second writer can fill and send the next batch while
        the first waits for its commit (``PG_GROUP_COMMIT_WRITERS``; measured without gain on
        this machine, so one); under SQLite (one writer at a time) one is enough."""
        self.store = store
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[
            tuple[dict[str, Any], asyncio.AbstractEventLoop, asyncio.Future[Any]]
        ] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"yiwang-group-commit-{k}", daemon=True)
            for k in range(writers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, row: dict[str, Any]) -> asyncio.Future[tuple[dict[str, Any], bool]]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[dict[str, Any], bool]] = loop.create_future()
        self._queue.put((row, loop, fut))
        return fut

    @staticmethod
    def _resolve_all(items: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
        for fut, result, exc in items:
            if fut.done():
                continue
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(result)

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            rows = [r for r, _, _ in batch]
            try:
                results: list[tuple[dict[str, Any], bool]] = self._insert(rows)
                errors: list[BaseException | None] = [None] * len(rows)
            except StoreUnavailable as exc:
                # The store is failing over: nothing in the batch is acknowledged (its commit may
                # or may not have happened; a retry with the same Idempotency-Key finds out).
                # Row by row would only wait for the same dead primary once per row.
                results, errors = [({}, False)] * len(rows), [exc] * len(rows)
            except Exception:  # one bad row must not fail the others: retry them one by one
                results, errors = [], []
                for row in rows:
                    try:
                        results.append(self.store.insert_jobs([row])[0])
                        errors.append(None)
                    except Exception as exc:
                        results.append(({}, False))
                        errors.append(exc)
            # One wake-up per event loop for the whole batch, not one per waiter: each
            # call_soon_threadsafe writes to the loop's self-pipe.
            by_loop: dict[
                asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]
            ]
            by_loop = {}
            for (_, loop, fut), res, err in zip(batch, results, errors, strict=True):
                by_loop.setdefault(loop, []).append((fut, res, err))
            for loop, items in by_loop.items():
                loop.call_soon_threadsafe(self._resolve_all, items)

    def _insert(self, rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], bool]]:
        keyed = [r for r in rows if r.get("idempotency_key")]
        if keyed:
            # Keys need a lookup per row (and the same key twice in one batch must create once).
            seen: dict[tuple[str, str], int] = {}
            unique: list[dict[str, Any]] = []
            where: list[int] = []
            for r in rows:
                k = (r["tenant"], r["idempotency_key"]) if r.get("idempotency_key") else None
                if k is not None and k in seen:
                    where.append(-1 - seen[k])
                    continue
                if k is not None:
                    seen[k] = len(unique)
                where.append(len(unique))
                unique.append(r)
            done = self.store.insert_jobs(unique)
            return [done[w] if w >= 0 else (done[-1 - w][0], False) for w in where]
        self.store.insert_jobs_bulk(rows)
        return [(r, True) for r in rows]


class Store:
    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.is_sqlite = url.startswith("sqlite")
        # SQLite allows one writer; serialising writers here avoids busy retries.
        self._write_lock = threading.Lock() if self.is_sqlite else None
        self._group_commit: GroupCommitter | None = None
        self._contexts: dict[str, dict[str, Any]] = {}  # decision contexts read (immutable)
        if migrate:
            from controller.store.migrate import upgrade

            upgrade(self.engine)

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

    def executemany(self, conn: Connection, stmt: UpdateBase, params: Sequence[dict[str, Any]]) -> None:
        """``conn.execute(stmt, params)`` for the hot bulk writes. Under SQLite the statement is
        compiled once and its parameters converted by the types' own bind processors (the same
        conversions SQLAlchemy applies: DATETIME text, the engine's JSON serializer, booleans),
        then handed to the driver's executemany: SQLAlchemy's per-row execution bookkeeping was
        most of a cycle's write time, and it ran while holding the database's write lock.
        Rows are grouped by their keys (one compiled statement per group)."""
        if not params:
            return
        if not self.is_sqlite:
            conn.execute(stmt, list(params))
            return
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for p in params:
            groups.setdefault(tuple(p), []).append(p)
        for group in groups.values():
            if not self._sqlite_executemany(conn, stmt, group):
                conn.execute(stmt, group)

    @staticmethod
    def _sqlite_executemany(conn: Connection, stmt: UpdateBase, params: list[dict[str, Any]]) -> bool:
        """False (nothing written) for an INSERT that leaves out a column with a default:
        SQLAlchemy computes those per row, so the caller takes its path."""
        keys = list(params[0])
        compiled = stmt.compile(dialect=conn.dialect, column_keys=keys)
        names = compiled.positiontup or []
        if isinstance(stmt, Insert) and set(names) != set(keys):
            return False
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
            conn.exec_driver_sql(sql, list(zip(*columns, strict=True)))
            return True
        # One multi-row INSERT per chunk instead of a statement step per row: the driver
        # releases and re-takes the GIL around every step, and in a busy API process each
        # re-take waits behind the event loop, all while this process holds the write lock.
        head, group = sql.split(" VALUES ", 1)
        per = max(1, min(500, SQLITE_MAX_VARIABLES // len(names)))
        for k in range(0, len(params), per):
            chunk = [c[k : k + per] for c in columns]
            flat = tuple(chain.from_iterable(zip(*chunk, strict=True)))
            conn.exec_driver_sql(f"{head} VALUES {', '.join([group] * len(chunk[0]))}", flat)
        return True

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

    # ---- jobs -------------------------------------------------------------------------------
    def insert_jobs(self, rows: Sequence[dict[str, Any]]) -> list[tuple[dict[str, Any], bool]]:
        """Insert new jobs (each row may carry idempotency_key/request_hash) with their
        'Submitted' events, in one transaction. Returns (row, created) in order; a row whose
        idempotency key exists comes back as the stored job with created=False."""
        out: list[tuple[dict[str, Any], bool]] = []
        with self.tx() as conn:
            for row in rows:
                existing = None
                if row.get("idempotency_key"):
                    existing = (
                        conn.execute(
                            select(t.jobs).where(
                                t.jobs.c.tenant == row["tenant"],
                                t.jobs.c.idempotency_key == row["idempotency_key"],
                            )
                        )
                        .mappings()
                        .first()
                    )
                if existing is not None:
                    # a replay acknowledges the stored job: only once it is on both sites
                    self.sync_barrier(conn, t.jobs, t.jobs.c.id, existing["id"])
                    out.append((dict(existing), False))
                    continue
                phases.transition(row["id"], None, row["phase"], Reason.Submitted)
                audit = row.get(AUDIT_KEY)
                conn.execute(insert(t.jobs).values(**{k: v for k, v in row.items() if k != AUDIT_KEY}))
                if audit:
                    audit_chain.append(conn, [audit])
                conn.execute(
                    insert(t.job_events).values(
                        job_id=row["id"],
                        at=row["created_at"],
                        type="Submitted",
                        from_phase=None,
                        to_phase="Pending",
                        cluster=None,
                        attempt=row["attempt"],
                        reason="job submitted",
                    )
                )
                out.append((row, True))
        return out

    def insert_jobs_bulk(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert new jobs without idempotency keys, their 'Submitted' events and their audit
        rows in one transaction; the rows are converted before it (controller/store/ingest.py),
        so the write lock is held only for the INSERTs and the audit chain's links."""
        for r in rows:
            phases.transition(r["id"], None, r["phase"], Reason.Submitted)
        audits = [r[AUDIT_KEY] for r in rows if r.get(AUDIT_KEY)]
        if audits:
            rows = [{k: v for k, v in r.items() if k != AUDIT_KEY} for r in rows]
        events = [
            {
                "job_id": r["id"],
                "at": r["created_at"],
                "type": "Submitted",
                "from_phase": None,
                "to_phase": "Pending",
                "cluster": None,
                "attempt": r["attempt"],
                "reason": "job submitted",
            }
            for r in rows
        ]
        batch = ingest.JobBatch(self.engine.dialect, rows, events, audits)
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

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        with self.read() as conn:
            row = conn.execute(select(t.jobs).where(t.jobs.c.id == job_id)).mappings().first()
            return dict(row) if row else None

    def job_events(self, job_id: str) -> list[dict[str, Any]]:
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
            return [dict(r) for r in rows]

    def list_jobs(
        self,
        *,
        phase: str | None = None,
        tenant: str | None = None,
        cluster: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[dict[str, Any]]:
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
            return [dict(r) for r in conn.execute(q).mappings().all()]

    def active_on_cluster(
        self, cluster: str, *, after: str | None = None, limit: int = 500
    ) -> list[dict[str, Any]]:
        """The Scheduled and Running jobs on one cluster, by id, one page at a time (an index on
        (cluster, phase) serves it however many jobs the cluster ran before)."""
        q = (
            select(t.jobs)
            .where(t.jobs.c.cluster == cluster, t.jobs.c.phase.in_(ACTIVE_PHASES))
            .order_by(t.jobs.c.id)
            .limit(limit)
        )
        if after:
            q = q.where(t.jobs.c.id > after)
        with self.read() as conn:
            return [dict(r) for r in conn.execute(q).mappings().all()]

    def get_jobs(self, conn: Connection, job_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Rows of many jobs inside ``conn``'s transaction, locked for update (PostgreSQL)."""
        out: dict[str, dict[str, Any]] = {}
        for k in range(0, len(job_ids), 500):
            q = select(t.jobs).where(t.jobs.c.id.in_(job_ids[k : k + 500])).with_for_update()
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

    # ---- bulk writes of the batch scheduling loop -------------------------------------------
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
        current: dict[str, tuple[str, int, str | None]] = {}
        for k in range(0, len(ids), 500):
            q = (
                select(t.jobs.c.id, t.jobs.c.phase, t.jobs.c.attempt, t.jobs.c.cluster)
                .where(t.jobs.c.id.in_(ids[k : k + 500]))
                .order_by(t.jobs.c.id)
                .with_for_update()
            )
            for row in conn.execute(q):
                current[row.id] = (row.phase, row.attempt, row.cluster)
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
        if ok_sched:
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
        self.executemany(conn, insert(t.job_events), events)
        rows = [d for d in decisions if d["cluster"] is None or d["job_id"] in changed]
        self.executemany(conn, insert(t.decisions), rows)
        if messages:
            self.executemany(
                conn,
                update(t.jobs).where(t.jobs.c.id == bindparam("b_id")).values(message=bindparam("b_message")),
                [{"b_id": i, "b_message": m} for i, m in messages],
            )
        return changed

    def audit_placements(
        self, conn: Connection, decisions: Sequence[dict[str, Any]], changed: set[str]
    ) -> None:
        """Append an audit row per placement decision written by ``apply_cycle`` (same filter),
        inside the cycle's transaction."""
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
                    "summary": str(d["body"].get("summary", ""))[:500],
                },
            }
            for d in decisions
            if d["cluster"] is None or d["job_id"] in changed
        ]
        audit_chain.append(conn, rows)

    def last_placed_clusters(self, job_ids: Sequence[str]) -> dict[str, str]:
        """job id -> the cluster of its latest event that named one (where a re-queued job ran
        before it was sent back to Pending; the failover origin)."""
        out: dict[str, str] = {}
        ids = list(job_ids)
        with self.read() as conn:
            for k in range(0, len(ids), 500):
                q = (
                    select(t.job_events.c.job_id, t.job_events.c.cluster)
                    .where(t.job_events.c.job_id.in_(ids[k : k + 500]), t.job_events.c.cluster.is_not(None))
                    .order_by(t.job_events.c.id)
                )
                for row in conn.execute(q):
                    out[row.job_id] = row.cluster
        return out

    # ---- decisions --------------------------------------------------------------------------
    def latest_decision(self, job_id: str) -> dict[str, Any] | None:
        """The job's latest stored decision body. A body in the columns format gets what it
        names: its context's fields (``names``, ``plugins``, ``cols``) and its slice of the
        cycle's packed columns (``bytes``), as ``Decision.model_validate`` expands it."""
        q = (
            select(t.decisions.c.body)
            .where(t.decisions.c.job_id == job_id)
            .order_by(t.decisions.c.id.desc())
            .limit(1)
        )
        with self.read() as conn:
            row = conn.execute(q).first()
            if row is None:
                return None
            body = unpack_decision(dict(row[0]))
            key = body.get("ctx")
            if isinstance(key, str):
                context = self._contexts.get(key)
                if context is None:
                    stored = conn.execute(
                        select(t.decision_parts.c.body).where(t.decision_parts.c.key == key)
                    ).first()
                    context = dict(stored[0]) if stored and stored[0] else {"names": []}
                    if len(self._contexts) > 256:
                        self._contexts.clear()
                    self._contexts[key] = context
                body = {**context, **body}
            ref = body.get("blob")
            if isinstance(ref, list) and len(ref) == 3:
                part, offset, length = ref
                data = conn.execute(
                    select(func.substr(t.decision_parts.c.data, int(offset) + 1, int(length))).where(
                        t.decision_parts.c.key == part
                    )
                ).scalar()
                body["bytes"] = bytes(data or b"")
            return body

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

    # ---- clusters ---------------------------------------------------------------------------
    def cluster_specs(
        self, conn: Connection, names: Iterable[str], *, lock: Literal["update", "key-share"]
    ) -> dict[str, dict[str, Any]]:
        """The stored specs of the named clusters (those that exist), inside ``conn``'s
        transaction, their rows locked until it ends (PostgreSQL; SQLite's write lock already
        serialises writers). ``update``: a change of the cluster itself (re-registration,
        deregistration) waits for, and makes wait, everything below. ``key-share``: a write that
        relies on the cluster staying what it is (a scheduling cycle placing jobs on it, a data set
        catalogued there); it does not conflict with heartbeats and other plain updates."""
        wanted = sorted(set(names))
        if not wanted:
            return {}
        q = select(t.clusters.c.name, t.clusters.c.spec).where(t.clusters.c.name.in_(wanted))
        q = q.with_for_update() if lock == "update" else q.with_for_update(read=True, key_share=True)
        return {r.name: dict(r.spec) if isinstance(r.spec, dict) else {} for r in conn.execute(q)}

    def upsert_cluster(self, conn: Connection, name: str, spec: dict[str, Any], *, exists: bool) -> None:
        """Create (``exists`` False) or replace a cluster's spec in ``conn``'s transaction; keeps
        cordon/health state."""
        if exists:
            conn.execute(update(t.clusters).where(t.clusters.c.name == name).values(spec=spec))
            return
        conn.execute(
            insert(t.clusters).values(
                name=name,
                spec=spec,
                cordoned=False,
                draining=False,
                health="Unknown",
                registered_at=now(),
            )
        )

    def insert_missing_clusters(self, specs: dict[str, dict[str, Any]]) -> int:
        """Seed clusters from the topology in one transaction; existing ones are left as they are.
        Another process seeding at the same time makes the first try fail on PostgreSQL; the
        second sees its rows."""
        try:
            return self._insert_missing_clusters(specs)
        except IntegrityError:
            return self._insert_missing_clusters(specs)

    def _insert_missing_clusters(self, specs: dict[str, dict[str, Any]]) -> int:
        with self.tx() as conn:
            have = {r[0] for r in conn.execute(select(t.clusters.c.name)).all()}
            rows = [
                {
                    "name": n,
                    "spec": spec,
                    "cordoned": False,
                    "draining": False,
                    "health": "Unknown",
                    "registered_at": now(),
                }
                for n, spec in specs.items()
                if n not in have
            ]
            if rows:
                conn.execute(insert(t.clusters), rows)
            return len(rows)

    def heartbeat(self, name: str, reported: dict[str, Any] | None, at: datetime) -> None:
        """Mark the cluster Ready with its last contact and reported capacity. The lease of its
        attempts is the cluster's (counted from this contact), so no job row is written."""
        with self.tx() as conn:
            conn.execute(
                update(t.clusters)
                .where(t.clusters.c.name == name)
                .values(health="Ready", last_heartbeat=at, reported=reported)
            )

    def touch_cluster(self, conn: Connection, name: str, at: datetime) -> None:
        """A contact other than a heartbeat (a batch of status reports): Ready, last contact."""
        conn.execute(
            update(t.clusters).where(t.clusters.c.name == name).values(health="Ready", last_heartbeat=at)
        )

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

    def cluster_contact_for_update(self, conn: Connection, name: str) -> datetime | None:
        """The cluster's last contact, its row locked until ``conn`` commits: a heartbeat or a
        report (which update that row) is ordered entirely before or after the caller."""
        row = conn.execute(
            select(t.clusters.c.last_heartbeat).where(t.clusters.c.name == name).with_for_update()
        ).first()
        return utc(row[0]) if row is not None else None

    def delete_cluster(self, conn: Connection, name: str) -> bool:
        return bool(conn.execute(delete(t.clusters).where(t.clusters.c.name == name)).rowcount)

    def list_clusters(self) -> list[dict[str, Any]]:
        with self.read() as conn:
            return [dict(r) for r in conn.execute(select(t.clusters)).mappings().all()]

    def update_cluster(self, name: str, *, audit: dict[str, Any] | None = None, **values: Any) -> bool:
        """Set columns of a cluster's row; ``audit``: the change's audit row, appended in the same
        transaction when the cluster exists. False when it does not."""
        with self.tx() as conn:
            changed = self.set_cluster(conn, name, **values)
            if changed:
                audit_chain.record(conn, audit)
            return changed

    def set_cluster(self, conn: Connection, name: str, **values: Any) -> bool:
        res = conn.execute(update(t.clusters).where(t.clusters.c.name == name).values(**values))
        return bool(res.rowcount)

    # ---- datasets ---------------------------------------------------------------------------
    def insert_dataset(self, conn: Connection, row: dict[str, Any]) -> None:
        """Insert a data set in ``conn``'s transaction (an existing id: IntegrityError)."""
        conn.execute(insert(t.datasets).values(**row))

    def datasets_on(self, conn: Connection, cluster: str) -> list[str]:
        """Ids of the data sets with a copy on ``cluster``, inside ``conn``'s transaction (the
        catalogue is small; its locations are a JSON list, filtered here on both databases)."""
        rows = conn.execute(select(t.datasets.c.id, t.datasets.c.locations).order_by(t.datasets.c.id))
        return [r.id for r in rows if isinstance(r.locations, list) and cluster in r.locations]

    def get_dataset(self, ds_id: str) -> dict[str, Any] | None:
        with self.read() as conn:
            row = conn.execute(select(t.datasets).where(t.datasets.c.id == ds_id)).mappings().first()
            return dict(row) if row else None

    def list_datasets(self) -> list[dict[str, Any]]:
        with self.read() as conn:
            return [
                dict(r) for r in conn.execute(select(t.datasets).order_by(t.datasets.c.id)).mappings().all()
            ]

    # ---- policies ---------------------------------------------------------------------------
    def get_policies(self) -> dict[str, dict[str, Any]]:
        with self.read() as conn:
            return {
                r.kind: {"version": r.version, "body": r.body} for r in conn.execute(select(t.policies)).all()
            }

    def seed_policy(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """Store ``body`` as version 1 of ``kind`` unless the kind is stored already; returns
        the stored body. Processes seeding at once agree on one row and never raise the version."""
        for _ in range(2):  # under PostgreSQL a concurrent insert shows as an IntegrityError once
            try:
                with self.tx() as conn:
                    cur = conn.execute(select(t.policies.c.body).where(t.policies.c.kind == kind)).first()
                    if cur is not None:
                        stored: dict[str, Any] = cur[0]
                        return stored
                    conn.execute(insert(t.policies).values(kind=kind, version=1, body=body, updated_at=now()))
                    return body
            except IntegrityError:
                continue
        raise RuntimeError(f"could not seed the {kind} policy")

    def put_policy(self, kind: str, body: dict[str, Any], *, audit: dict[str, Any] | None = None) -> int:
        """Store a new version of a policy; ``audit``: the change's audit row, appended in the
        same transaction with the new version in its detail."""
        with self.tx() as conn:
            cur = conn.execute(select(t.policies.c.version).where(t.policies.c.kind == kind)).first()
            version = (cur[0] + 1) if cur else 1
            if cur:
                conn.execute(
                    update(t.policies)
                    .where(t.policies.c.kind == kind)
                    .values(version=version, body=body, updated_at=now())
                )
            else:
                conn.execute(
                    insert(t.policies).values(kind=kind, version=version, body=body, updated_at=now())
                )
            audit_chain.record(conn, audit, version=version)
            return version

    # ---- change feed: what another controller process changed -------------------------------
    def max_audit_id(self) -> int:
        with self.read() as conn:
            return int(conn.execute(select(func.max(t.audit_log.c.id))).scalar() or 0)

    def audit_after(self, after: int, actions: Sequence[str]) -> tuple[int, list[tuple[int, str, str, Any]]]:
        """The highest audit id now, and the audit rows with an id above ``after`` (up to it)
        whose action is one of ``actions``, as (id, action, target, detail), in id order (audit
        rows are appended under a lock held to commit, so ids commit in order). The caller
        continues from the highest id, not from its last match: the rows in between (mostly
        placements) are not scanned again at every sync."""
        a = t.audit_log.c
        with self.read() as conn:
            top = int(conn.execute(select(func.max(a.id))).scalar() or 0)
            if top <= after:
                return after, []
            q = (
                select(a.id, a.action, a.target, a.detail)
                .where(a.action.in_(list(actions)), a.id > after, a.id <= top)
                .order_by(a.id)
            )
            return top, [(int(r[0]), r[1], r[2], r[3]) for r in conn.execute(q)]

    def max_event_id(self) -> int:
        with self.read() as conn:
            return int(conn.execute(select(func.max(t.job_events.c.id))).scalar() or 0)

    def events_after(self, after: int, also: Sequence[int] = ()) -> list[EventRef]:
        """The job events with an id above ``after``, plus those in ``also`` (ids a reader saw
        missing earlier: under PostgreSQL a transaction that took a lower id may commit after
        one with a higher id), in id order, as (id, job id, type, to phase, cluster, attempt)."""
        e = t.job_events.c
        cols = (e.id, e.job_id, e.type, e.to_phase, e.cluster, e.attempt)
        with self.read() as conn:
            rows = [EventRef(*r) for r in conn.execute(select(*cols).where(e.id > after).order_by(e.id))]
            extra = list(also)
            for k in range(0, len(extra), 500):
                q = select(*cols).where(e.id.in_(extra[k : k + 500]))
                rows.extend(EventRef(*r) for r in conn.execute(q))
        rows.sort()
        return rows

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
        q = select(func.count()).where(t.jobs.c.cluster == cluster, t.jobs.c.phase.in_(ACTIVE_PHASES))
        if conn is not None:
            return int(conn.execute(q).scalar() or 0)
        with self.read() as c:
            return int(c.execute(q).scalar() or 0)

    def active_on_cluster_locked(self, conn: Connection, cluster: str) -> list[dict[str, Any]]:
        """(id, phase, attempt) of every Scheduled and Running job on the cluster, inside
        ``conn``'s transaction, their rows locked (PostgreSQL)."""
        q = (
            select(t.jobs.c.id, t.jobs.c.phase, t.jobs.c.attempt)
            .where(t.jobs.c.cluster == cluster, t.jobs.c.phase.in_(ACTIVE_PHASES))
            .order_by(t.jobs.c.id)
            .with_for_update()
        )
        return [dict(r) for r in conn.execute(q).mappings().all()]

    def count_datasets(self) -> int:
        with self.read() as conn:
            return int(conn.execute(select(func.count()).select_from(t.datasets)).scalar() or 0)

    def policy_versions(self) -> dict[str, int]:
        with self.read() as conn:
            return {
                str(r[0]): int(r[1]) for r in conn.execute(select(t.policies.c.kind, t.policies.c.version))
            }

    # ---- dashboard reads (aggregates; each one or two indexed queries) ------------------------
    def active_counts_by_cluster(self) -> dict[str, dict[str, int]]:
        """cluster -> {phase: count} of its Scheduled and Running jobs."""
        j = t.jobs.c
        q = (
            select(j.cluster, j.phase, func.count())
            .where(j.phase.in_(ACTIVE_PHASES), j.cluster.is_not(None))
            .group_by(j.cluster, j.phase)
        )
        out: dict[str, dict[str, int]] = {}
        with self.read() as conn:
            for cluster, phase, n in conn.execute(q):
                out.setdefault(str(cluster), {})[str(phase)] = int(n)
        return out

    def counts_by_tenant(self) -> dict[str, dict[str, Any]]:
        """tenant -> {phase: count} of its Pending, Scheduled and Running jobs, and
        ``oldest_pending`` (the creation time of its oldest Pending job)."""
        j = t.jobs.c
        out: dict[str, dict[str, Any]] = {}
        with self.read() as conn:
            q = (
                select(j.tenant, j.phase, func.count())
                .where(j.phase.in_(("Pending", *ACTIVE_PHASES)))
                .group_by(j.tenant, j.phase)
            )
            for tenant, phase, n in conn.execute(q):
                out.setdefault(str(tenant), {})[str(phase)] = int(n)
            oldest = select(j.tenant, func.min(j.created_at)).where(j.phase == "Pending").group_by(j.tenant)
            for tenant, at in conn.execute(oldest):
                out.setdefault(str(tenant), {})["oldest_pending"] = utc(at)
        return out

    def recent_events(self, types: Sequence[str], since: datetime, limit: int = 2000) -> list[dict[str, Any]]:
        """The newest events of the given types since ``since`` (newest first, at most
        ``limit``), with their job's tenant: id, job_id, type, at, attempt, reason, tenant."""
        e = t.job_events.c
        q = (
            select(e.id, e.job_id, e.type, e.at, e.attempt, e.reason, t.jobs.c.tenant)
            .join(t.jobs, t.jobs.c.id == e.job_id)
            .where(e.type.in_(list(types)), e.at >= since)
            .order_by(e.id.desc())
            .limit(limit)
        )
        with self.read() as conn:
            return [{**dict(r), "at": utc(r["at"])} for r in conn.execute(q).mappings()]

    def placed_events(self, job_ids: Sequence[str]) -> dict[str, list[tuple[int, str, str, int]]]:
        """job id -> its events that name a cluster, in order: (event id, type, cluster, attempt)."""
        e = t.job_events.c
        out: dict[str, list[tuple[int, str, str, int]]] = {}
        ids = list(dict.fromkeys(job_ids))
        with self.read() as conn:
            for k in range(0, len(ids), 500):
                q = (
                    select(e.job_id, e.id, e.type, e.cluster, e.attempt)
                    .where(e.job_id.in_(ids[k : k + 500]), e.cluster.is_not(None), e.type != OUTPUT_EVENT)
                    .order_by(e.id)
                )
                for job_id, ev_id, typ, cluster, attempt in conn.execute(q):
                    out.setdefault(str(job_id), []).append((int(ev_id), str(typ), str(cluster), int(attempt)))
        return out

    # ---- leadership -------------------------------------------------------------------------
    def acquire_leadership(self, holder: str, ttl_s: float) -> int | None:
        """Take or renew the leader lease. A new holder raises the epoch (fencing token).
        Returns the epoch held, or None while another holder's lease is live."""
        with self.tx() as conn:
            t_now = now()
            row = conn.execute(select(t.leader).where(t.leader.c.id == 1).with_for_update()).first()
            expires = t_now + timedelta(seconds=ttl_s)
            if row is None:
                try:
                    conn.execute(insert(t.leader).values(id=1, holder=holder, epoch=1, expires_at=expires))
                except IntegrityError:
                    return None
                return 1
            if row.holder == holder and utc(row.expires_at) > t_now:  # type: ignore[operator]
                conn.execute(update(t.leader).where(t.leader.c.id == 1).values(expires_at=expires))
                return int(row.epoch)
            if utc(row.expires_at) > t_now:  # type: ignore[operator]
                return None
            epoch = int(row.epoch) + 1
            res = conn.execute(
                update(t.leader)
                .where(t.leader.c.id == 1, t.leader.c.epoch == row.epoch)
                .values(holder=holder, epoch=epoch, expires_at=expires)
            )
            return epoch if res.rowcount == 1 else None

    def check_leader(self, conn: Connection, epoch: int) -> None:
        """Fencing: inside a leader's write transaction, refuse the write unless ``epoch`` is still
        the current leader epoch and its lease has not ended (StaleLeader rolls it back). Under
        PostgreSQL the leader row is locked (FOR SHARE), so a successor cannot take the lease
        between this check and the commit; under SQLite the write lock does the same."""
        row = conn.execute(
            select(t.leader.c.epoch, t.leader.c.expires_at)
            .where(t.leader.c.id == 1)
            .with_for_update(read=True)
        ).first()
        if row is None or int(row.epoch) != epoch or epoch <= 0:
            raise StaleLeader(
                f"leader epoch {epoch} is not current (the store has {row.epoch if row else 0})"
            )
        if utc(row.expires_at) <= now():  # type: ignore[operator]
            raise StaleLeader(f"the lease of leader epoch {epoch} has ended")

    def leader_epoch(self) -> int:
        with self.read() as conn:
            row = conn.execute(select(t.leader.c.epoch).where(t.leader.c.id == 1)).first()
            return int(row[0]) if row else 0
