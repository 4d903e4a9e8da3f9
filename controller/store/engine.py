"""The store's engine: SQLite (WAL, synchronous=FULL) or PostgreSQL, its connection settings,
and which errors mean "the store cannot serve now" (``store_unavailable``).

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

import json
import os
import time
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import NullPool

SQLITE_CACHE_KIB = 16_384


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    # A page cache of 16 MiB a connection (SQLite's default is 2 MiB): a scheduling cycle of
    # 10,000 jobs updates their rows (about 13 MB of pages) and four of their indexes, and with
    # 2 MiB it read most pages again; the rest of the cycle's writes 92.5 -> 72.2 us a decision
    # (docs/benchmarks.md). Pages are allocated as used, up to this bound.
    cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
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


# A pooled PostgreSQL connection idle longer than this is pinged when checked out; one used more
# recently is not (``_ping_if_idle``).
PING_IDLE_S = 1.0


def _idle_from_now(_dbapi_conn: Any, record: Any, *_: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(engine: Engine) -> Any:
    """The pool's checkout check: a connection idle more than ``PING_IDLE_S`` is pinged (the
    dialect's own ping, one round trip) and, if dead, replaced (``DisconnectionError``: the pool
    reconnects, up to three times). SQLAlchemy's ``pool_pre_ping`` pings at every checkout: under
    load that round trip, waiting for a core like every other, was about a tenth of the API's
    group-commit batch (docs/benchmarks.md). A connection that dies within a second of its last
    use fails its next transaction instead: a 503 with nothing acknowledged, and the failure
    invalidates the pool (``_failover_is_disconnect``), as a death during a transaction does."""

    def check(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is not None and time.monotonic() - since < PING_IDLE_S:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # any failure of the ping: the connection is not usable
            raise DisconnectionError(f"the pooled connection failed its ping: {exc}") from exc
        if not alive:
            raise DisconnectionError("the pooled connection failed its ping")

    return check


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
        # pool_timeout: a request waits at most this long for a connection, then gets a 503;
        # a pooled connection to a primary that died is replaced at checkout (``_ping_if_idle``)
        engine = create_engine(
            url,
            pool_size=10,
            max_overflow=10,
            pool_timeout=10,
            connect_args=connect_args,
            **JSON_CODEC,
        )
        event.listen(engine, "connect", _idle_from_now)
        event.listen(engine, "checkin", _idle_from_now)
        event.listen(engine, "checkout", _ping_if_idle(engine))
    event.listen(engine, "handle_error", _failover_is_disconnect)
    return engine
