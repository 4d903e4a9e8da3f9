"""The audit log's SM3 hash chain (GB/T 32905-2016, through OpenSSL's ``hashlib.new("sm3")``).

Each row stores ``prev_hash`` (the hash of the row before it, in id order) and
``hash = SM3(prev_hash || canonical(row))``. Rows are appended under a lock (PostgreSQL: an
advisory transaction lock; SQLite: its single writer), so the chain follows the ids. Changing,
deleting, inserting or reordering a row breaks a link that ``controller.audit.verify`` finds; a
full rewrite of the chain (SM3 needs no key) is caught by the SM2-signed checkpoints.

A transaction appends its audit rows after its other writes: the chain's lock is the last lock
it takes, held to its commit. A writer holding it then never waits for a row another writer
holds while that one waits for the lock (two replicas' transactions each holding what the other
needs: PostgreSQL aborts one, and its client gets a 503).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import Connection, select, text

from controller.store import schema as t
from controller.store.base import insert_many

GENESIS = "0" * 64
SEAL_ACTION = "audit.sealed"  # the one-time seal of the rows before the chain (migration 0005)
ADVISORY_LOCK = 0x1A0D17  # pg_advisory_xact_lock key serialising audit appends
FIELDS = ("at", "actor", "role", "tenant", "action", "target", "detail")


_SM3 = hashlib.new("sm3")  # never updated: each digest starts from a copy of it


def sm3(data: bytes) -> str:
    """SM3 of ``data``, hex. From a copy of an empty hash object: ``hashlib.new("sm3")`` looks
    the algorithm up in OpenSSL on every call, about a fifth of the time of an audit row's digest
    (5.0 against 3.9 µs for 400 bytes)."""
    h = _SM3.copy()
    h.update(data)
    return h.hexdigest()


@lru_cache(maxsize=4096)  # a cycle's or a commit group's rows share their instant
def _instant(at: datetime) -> str:
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(row: dict[str, Any]) -> bytes:
    """The bytes a row's hash covers: its fields as sorted, compact JSON (the instant in UTC
    with microseconds), the same whether built before the insert or from a row read back.

    Defined as ``json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
    in UTF-8. orjson writes those same bytes, 15 times faster, for a document of text keys and
    strings, whole numbers within 64 bits, booleans and nulls (it escapes what the standard
    library escapes, the same way, and sorts text keys in code point order as it does); a
    document with anything else (a float: the two format some differently) takes the standard
    library. tests/security/test_audit_chain.py holds the two to the same bytes."""
    doc = {k: row.get(k) for k in FIELDS}
    doc["at"] = _instant(row["at"])
    if _orjson_exact(doc):
        try:
            return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # an int beyond 64 bits, a lone surrogate: the standard library decides
            pass
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


_EXACT = frozenset({str, int, bool, type(None)})


def _orjson_exact(value: Any) -> bool:
    """Only exact ``str``, ``int``, ``bool``, None, and dicts (text keys) and lists of them.
    A loop over a container's scalars, a call only for a nested container: every audit row's
    document goes through this, and a generator per container cost more than the check."""
    t_ = type(value)
    if t_ in _EXACT:
        return True
    if t_ is dict:
        for k, v in value.items():
            if type(k) is not str or (type(v) not in _EXACT and not _orjson_exact(v)):
                return False
        return True
    if t_ is list:
        return all(type(v) in _EXACT or _orjson_exact(v) for v in value)
    return False


def link(prev_hash: str, row: dict[str, Any]) -> str:
    return link_canonical(prev_hash, canonical(row))


def link_canonical(prev_hash: str, body: bytes) -> str:
    """``link`` of a row whose canonical bytes are already computed."""
    return sm3(prev_hash.encode() + b"\n" + body)


_SCALARS = (str, int, float, bool, type(None))


def normalized(row: dict[str, Any]) -> dict[str, Any]:
    """The row as the database will give it back (its detail through a JSON round trip; a flat
    detail of text keys and finite scalars comes back as it went, so it is copied)."""
    out = {k: row.get(k) for k in FIELDS}
    detail = row.get("detail") or {}
    if all(type(k) is str for k in detail) and all(_plain(v) for v in detail.values()):
        out["detail"] = dict(detail)
    else:
        out["detail"] = json.loads(json.dumps(detail, default=str))
    return out


def _plain(v: Any) -> bool:
    """A value a JSON round trip gives back equal and of the same type (not NaN or infinite)."""
    t_ = type(v)
    return t_ in _SCALARS and (t_ is not float or math.isfinite(v))


def last_hash(conn: Connection) -> str:
    h = conn.execute(select(t.audit_log.c.hash).order_by(t.audit_log.c.id.desc()).limit(1)).scalar()
    return str(h) if h else GENESIS


def prepare(rows: Sequence[dict[str, Any]]) -> list[tuple[dict[str, Any], bytes]]:
    """Each row normalized, with the canonical bytes its hash will cover: everything of the
    chain that does not depend on the row before it, so a writer can compute it before it
    takes the database's write lock (``chain_prepared`` then only links)."""
    out = []
    for r in rows:
        row = normalized(r)
        out.append((row, canonical(row)))
    return out


def chain_prepared(
    conn: Connection, bodies: Sequence[bytes], *, locked: bool = False
) -> list[tuple[str, str]]:
    """(prev_hash, hash) for rows about to be appended in ``conn``'s transaction, in order,
    from their canonical bytes (``prepare``). Takes the chain's lock (PostgreSQL: an advisory
    transaction lock, held to the commit; SQLite: the caller's write transaction is the lock),
    so the caller must insert exactly these rows, in this order, in the same transaction.
    ``locked``: the caller's transaction already holds ``ADVISORY_LOCK`` (taken by an earlier
    statement of it: the last hash is read after it, in a statement of its own)."""
    if not bodies:
        return []
    if conn.dialect.name == "postgresql" and not locked:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_LOCK})
    prev = last_hash(conn)
    out = []
    for body in bodies:
        h = link_canonical(prev, body)
        out.append((prev, h))
        prev = h
    return out


def append(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chain and insert ``rows`` in the caller's transaction; returns them as inserted. This is
    the one way an audit row is written (directly, or as ``prepare`` and ``chain_prepared``
    split in two): in the transaction of the change it records, so the change and its row
    commit together or not at all."""
    if not rows:
        return []
    prepared = prepare(rows)
    out = []
    for (row, _), (prev, h) in zip(prepared, chain_prepared(conn, [b for _, b in prepared]), strict=True):
        row["prev_hash"], row["hash"] = prev, h
        out.append(row)
    insert_many(conn, t.audit_log, out)
    return out


def record(conn: Connection, row: dict[str, Any] | None, **detail: Any) -> None:
    """Append ``row`` (an audit row built by the caller, e.g. ``Principal.audit_row``) with
    ``detail`` added, in ``conn``'s transaction; nothing when ``row`` is None (a change made
    on nobody's behalf: tests, tools, start-up)."""
    if row is not None:
        append(conn, [{**row, "detail": {**(row.get("detail") or {}), **detail}}])


def legacy_digest(rows: Sequence[dict[str, Any]]) -> str:
    """The hash the last of ``rows`` would have if they had been chained from the genesis: the
    digest a seal (migration 0005) records for the rows written before the chain existed."""
    h = GENESIS
    for r in rows:
        h = link(h, r)
    return h


def legacy_rows(conn: Connection) -> list[dict[str, Any]]:
    """The rows written before the chain existed (migration 0003): those without a hash before
    the first chained row, in id order (a hashless row after it is not legacy but unchained)."""
    c = t.audit_log.c
    first = conn.execute(select(c.id).where(c.hash.is_not(None)).order_by(c.id).limit(1)).scalar()
    q = select(c.id, *(getattr(c, f) for f in FIELDS)).where(c.hash.is_(None)).order_by(c.id)
    if first is not None:
        q = q.where(c.id < first)
    return [dict(r) for r in conn.execute(q).mappings()]


def seal_ids(conn: Connection) -> list[int]:
    """Ids of the chained seal rows (there is at most one unless someone forged another)."""
    c = t.audit_log.c
    q = select(c.id).where(c.action == SEAL_ACTION, c.hash.is_not(None)).order_by(c.id)
    return [int(i) for i in conn.execute(q).scalars()]
