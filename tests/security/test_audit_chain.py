"""Tamper-evident audit (issue 14): the SM3 chain and SM2-signed checkpoints catch a changed,
deleted, inserted or reordered row, a truncated tail and a rewritten chain, made by a database
superuser with the append-only triggers dropped. On SQLite and PostgreSQL, through
``yiwang audit verify``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, delete, insert, select, text, update
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from controller import audit
from controller.api.app import create_app
from controller.cli import app as cli
from controller.security import BOOTSTRAP_ADMIN
from controller.settings import Settings
from controller.store import Store, audit_chain
from controller.store import schema as t
from controller.store.migrate import current_revision, downgrade, upgrade

KEY = audit.new_private_key()
PUBLIC = audit.public_key_of(KEY)


def reference_canonical(row: dict[str, Any]) -> bytes:
    """The canonical bytes as defined: the standard library's sorted, compact JSON in UTF-8."""
    doc = {k: row.get(k) for k in audit_chain.FIELDS}
    doc["at"] = row["at"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# every code point but the surrogates: control characters, quotes, backslashes, U+2028, non-BMP
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(
    detail=st.dictionaries(TEXT, VALUES, max_size=5),
    text=TEXT,
    tenant=st.none() | TEXT,
    micros=st.integers(min_value=0, max_value=10**15),
)
def test_canonical_bytes_are_the_standard_librarys(
    detail: dict[str, Any], text: str, tenant: str | None, micros: int
) -> None:
    """``canonical`` takes orjson for documents it writes byte for byte as the standard library
    does and the standard library for the rest: on any row (any text but lone surrogates,
    whole numbers beyond 64 bits, floats, nested lists and objects) the bytes are the
    definition's, so a chain written either way verifies."""
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    row = {"at": at, "actor": text, "role": "system", "tenant": tenant, "action": "a." + text, "target": text}
    row["detail"] = detail
    assert audit_chain.canonical(row) == reference_canonical(row)


def test_sm3_is_the_standard_one() -> None:
    # GB/T 32905-2016, appendix A.1: SM3("abc")
    assert hashlib.new("sm3", b"abc").hexdigest() == (
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    )
    sig = audit.sign(KEY, b"m")
    assert audit.verify_signature(PUBLIC, b"m", sig) and not audit.verify_signature(PUBLIC, b"n", sig)


# A private key whose public key's x coordinate begins with hex 04 (1 key in 256): gmssl's
# constructor strips those digits, so every checkpoint signed with it failed to verify (a CI run
# drew such a key at random).
KEY_X_04 = "62682489c9a814a7bdf94979b713ef1ffb4c512e096c8dae63acee96698a7a72"


def test_a_public_key_starting_with_04_signs_and_verifies() -> None:
    public = audit.public_key_of(KEY_X_04)
    assert public.startswith("04") and len(public) == 128
    sig = audit.sign(KEY_X_04, b"m")
    assert audit.verify_signature(public, b"m", sig)
    assert audit.verify_signature("04" + public, b"m", sig)  # the uncompressed-point form
    assert not audit.verify_signature(public, b"n", sig)
    assert not audit.verify_signature(PUBLIC, b"m", sig)  # another key


def drop_triggers(conn: Connection) -> None:
    """What a database superuser can do: drop the append-only triggers of both audit tables."""
    for table in ("audit_log", "audit_checkpoints"):
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"DROP TRIGGER {table}_no_update_delete ON {table}"))
            conn.execute(text(f"DROP TRIGGER {table}_no_truncate ON {table}"))
        else:
            conn.execute(text(f"DROP TRIGGER {table}_no_update"))
            conn.execute(text(f"DROP TRIGGER {table}_no_delete"))


A = t.audit_log


def rows(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(A).order_by(A.c.id)).mappings()]


def change(conn: Connection) -> None:
    conn.execute(update(A).where(A.c.id == 3).values(actor="someone-else"))


def delete_row(conn: Connection) -> None:
    conn.execute(delete(A).where(A.c.id == 3))


def insert_between(conn: Connection) -> None:
    """Make room after row 3 and put a forged row there, properly linked to row 3."""
    conn.execute(update(A).where(A.c.id > 3).values(id=A.c.id + 1000))
    r3 = rows(conn)[2]
    forged = {
        **r3,
        "id": 4,
        "actor": "ghost",
        "action": "token.issued",
        "target": "token/forged",
        "detail": {},
    }
    forged["prev_hash"] = r3["hash"]
    forged["hash"] = audit_chain.link(r3["hash"], forged)
    conn.execute(insert(A).values(**forged))


def reorder(conn: Connection) -> None:
    a, b = rows(conn)[1:3]
    for target, source in ((a["id"], b), (b["id"], a)):
        conn.execute(
            update(A).where(A.c.id == target).values(**{k: v for k, v in source.items() if k != "id"})
        )


def truncate_tail(conn: Connection) -> None:
    last = rows(conn)[-1]["id"]
    conn.execute(delete(A).where(A.c.id >= last - 1))


def rewrite_chain(conn: Connection) -> None:
    """Delete row 3, recompute every later hash (SM3 needs no key), drop the stored
    checkpoints and sign new ones with the attacker's own key."""
    conn.execute(delete(A).where(A.c.id == 3))
    prev = audit_chain.GENESIS
    for r in rows(conn):
        h = audit_chain.link(prev, r)
        conn.execute(update(A).where(A.c.id == r["id"]).values(prev_hash=prev, hash=h))
        prev = h
    conn.execute(delete(t.audit_checkpoints))


TAMPERING: dict[str, tuple[Callable[[Connection], None], str]] = {
    "changed": (change, "changed"),
    "deleted": (delete_row, "broken-link"),
    "inserted": (insert_between, "broken-link"),
    "reordered": (reorder, "broken-link"),
    "truncated": (truncate_tail, "checkpoint"),
    "rewritten": (rewrite_chain, "checkpoint"),
}


def make_history(db_url: str, export: Path) -> None:
    app = create_app(Settings(database_url=db_url, background=False))
    with TestClient(app, raise_server_exceptions=False) as c:
        for name in ("prov-hubei", "prov-hunan", "prov-henan"):
            assert c.post(f"/v1/clusters/{name}/cordon").status_code == 200
            assert c.post(f"/v1/clusters/{name}/uncordon").status_code == 200
        assert c.post("/v1/tokens", json={"role": "operator"}).status_code == 201
    store: Store = app.state.controller.store
    assert audit.checkpoint(store, KEY, export) is not None
    store.close()


def run_verify(db_url: str, export: Path) -> tuple[int, str]:
    r = CliRunner().invoke(
        cli,
        ["audit", "verify", "--database-url", db_url, "--checkpoints", str(export), "--public-key", PUBLIC],
    )
    return r.exit_code, r.output


@pytest.mark.parametrize("kind", sorted(TAMPERING))
def test_verify_detects_tampering_with_the_triggers_dropped(db_url: str, tmp_path: Path, kind: str) -> None:
    export = tmp_path / "checkpoints.jsonl"
    make_history(db_url, export)
    code, out = run_verify(db_url, export)
    assert code == 0, out
    assert "7 audit rows (7 chained" in out
    tamper, finding = TAMPERING[kind]
    store = Store(db_url)
    with store.tx() as conn:
        drop_triggers(conn)
        tamper(conn)
    if kind == "rewritten":  # the forger's own checkpoint, signed with a key of their own
        forged = audit.new_private_key()
        assert audit.checkpoint(store, forged) is not None
    store.close()
    code, out = run_verify(db_url, export)
    assert code == 1, out
    assert f"TAMPERED {finding}" in out, out


def test_untouched_chain_with_concurrent_writers_verifies(db_url: str) -> None:
    """Rows appended from several threads at once stay one chain in id order."""
    import threading

    store = Store(db_url)

    def write(n: int) -> None:
        for k in range(15):
            with store.tx() as conn:
                audit_chain.append(
                    conn,
                    [
                        {
                            "at": audit_chain_now(),
                            "actor": f"w{n}",
                            "role": "admin",
                            "tenant": None,
                            "action": "x",
                            "target": f"t/{k}",
                            "detail": {"k": k},
                        }
                    ],
                )

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    rep = audit.verify(store)
    store.close()
    assert rep.ok, rep.findings[:3]
    assert rep.chained == 60


def audit_chain_now() -> Any:
    from controller.store.store import now

    return now()


def test_the_leader_signs_and_exports_checkpoints(tmp_path: Path) -> None:
    export = tmp_path / "exported.jsonl"
    s = Settings(
        database_url=f"sqlite:///{tmp_path / 'y.db'}",
        background=False,
        audit_sm2_key=KEY,
        audit_checkpoint_file=export,
    )
    app = create_app(s)
    ctl = app.state.controller
    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.post("/v1/clusters/prov-hubei/cordon").status_code == 200
        ctl.maybe_checkpoint_audit()
        ctl.maybe_checkpoint_audit()  # not due again yet: one checkpoint
    (cp,) = audit.read_export(export)
    assert cp["public_key"] == PUBLIC and cp["last_id"] == 1
    rep = audit.verify(ctl.store, exported=[cp], public_key=PUBLIC)
    ctl.store.close()
    assert rep.ok and rep.checkpoints == 1, rep.findings


def test_checkpoints_are_append_only_in_the_database(db_url: str) -> None:
    """Migration 0005: UPDATE and DELETE (and TRUNCATE on PostgreSQL) of a stored checkpoint are
    refused, as for the audit log."""
    store = Store(db_url)
    with store.tx() as conn:
        audit_chain.record(conn, BOOTSTRAP_ADMIN.audit_row("x", "t/1"))
    assert audit.checkpoint(store, KEY) is not None
    for statement in (
        "UPDATE audit_checkpoints SET last_hash = 'x'",
        "DELETE FROM audit_checkpoints",
        *(["TRUNCATE audit_checkpoints"] if not store.is_sqlite else []),
    ):
        with pytest.raises(DBAPIError, match="audit_checkpoints is append-only"), store.tx() as conn:
            conn.execute(text(statement))
    assert len(audit.stored_checkpoints(store)) == 1
    assert audit.verify(store, public_key=PUBLIC).ok
    store.close()


LEGACY_INSERT = (
    "INSERT INTO audit_log (at, actor, role, tenant, action, target, detail) "
    "VALUES (CURRENT_TIMESTAMP, :actor, 'admin', NULL, 'cluster.cordoned', :target, '{}')"
)


def legacy_database(db_url: str) -> Store:
    """A database that ran 0002 (three audit rows without hashes), then 0003 for a while (one
    chained row), and is not yet at 0005."""
    store = Store(db_url, migrate=False)
    upgrade(store.engine, "0002")
    with store.tx() as conn:
        for k in range(3):
            conn.execute(text(LEGACY_INSERT), {"actor": f"old-{k}", "target": f"cluster/c{k}"})
    upgrade(store.engine, "0003")
    with store.tx() as conn:
        audit_chain.record(conn, BOOTSTRAP_ADMIN.audit_row("cluster.uncordoned", "cluster/c0"))
    return store


def verify_cli(db_url: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, ["audit", "verify", "--database-url", db_url])
    return r.exit_code, r.output


def change_legacy(conn: Connection) -> None:
    conn.execute(update(A).where(A.c.id == 2).values(actor="someone-else"))


def delete_legacy(conn: Connection) -> None:
    conn.execute(delete(A).where(A.c.id == 1))


def insert_before_everything(conn: Connection) -> None:
    """A hashless row slipped in before the chain, where rows are not chained."""
    conn.execute(
        text(LEGACY_INSERT.replace("(at,", "(id, at,").replace("VALUES (", "VALUES (0, ")),
        {
            "actor": "ghost",
            "target": "cluster/c9",
        },
    )


def second_seal(conn: Connection) -> None:
    """Change a legacy row, then append a fresh seal of the changed rows, properly chained."""
    change_legacy(conn)
    legacy = audit_chain.legacy_rows(conn)
    audit_chain.append(
        conn,
        [
            {
                **BOOTSTRAP_ADMIN.audit_row(audit_chain.SEAL_ACTION, "audit_log"),
                "detail": {
                    "rows": len(legacy),
                    "first_id": legacy[0]["id"],
                    "last_id": legacy[-1]["id"],
                    "digest": audit_chain.legacy_digest(legacy),
                },
            }
        ],
    )


LEGACY_TAMPERING: dict[str, Callable[[Connection], None]] = {
    "changed": change_legacy,
    "deleted": delete_legacy,
    "inserted": insert_before_everything,
    "second-seal": second_seal,
}


def test_rows_before_the_chain_are_reported_then_sealed_at_the_upgrade(db_url: str) -> None:
    store = Store(db_url, migrate=False)
    upgrade(store.engine, "0002")
    code, out = verify_cli(db_url)
    assert code == 1 and "before the audit chain (0003)" in out, out
    store.close()


@pytest.mark.parametrize("kind", sorted(LEGACY_TAMPERING))
def test_the_seal_catches_tampering_with_the_rows_before_the_chain(db_url: str, kind: str) -> None:
    store = legacy_database(db_url)
    # not upgraded yet: verify reports the uncovered rows (and does not seal them itself)
    code, out = verify_cli(db_url)
    assert code == 1, out
    assert "4 audit rows (1 chained, 3 before the chain)" in out
    assert "TAMPERED unsealed: rows 1..3 (3) have no hash" in out and "db-upgrade" in out
    assert current_revision(store.engine) == "0003"
    # the upgrade seals them: one chained row recording their count, ids and digest
    upgrade(store.engine)
    with store.read() as conn:
        (seal,) = [r for r in rows(conn) if r["action"] == audit_chain.SEAL_ACTION]
    assert seal["id"] == 5 and seal["actor"] == "yiwang-upgrade" and seal["prev_hash"] == rows_hash(store, 4)
    assert seal["detail"]["rows"] == 3 and (seal["detail"]["first_id"], seal["detail"]["last_id"]) == (1, 3)
    code, out = verify_cli(db_url)
    assert code == 0, out
    assert "rows 1..3 were written before the chain (migration 0003)" in out and "seal in row 5" in out
    # sealing is once: down to 0003 and up again writes no second seal
    downgrade(store.engine, "0003")
    upgrade(store.engine)
    assert verify_cli(db_url)[0] == 0
    # a superuser with the triggers dropped changes what came before the chain
    with store.tx() as conn:
        drop_triggers(conn)
        LEGACY_TAMPERING[kind](conn)
    code, out = verify_cli(db_url)
    assert code == 1 and "TAMPERED sealed" in out, out
    store.close()


def rows_hash(store: Store, row_id: int) -> str:
    with store.read() as conn:
        return str(conn.execute(select(A.c.hash).where(A.c.id == row_id)).scalar())


@pytest.mark.parametrize(
    "detail",
    [
        {"attempt": 2, "cluster": "bj-1", "status": "Scheduled", "summary": '中文 \u2028 "q"'},
        {"ok": True, "none": None, "f": 0.1, "big": 2**70, "neg": -1.5e-300},
        {"nan": float("nan")},
        {"inf": float("inf")},
        {"nested": {"a": [1, 2]}, "t": (1, "x")},
        {1: "int key"},
        {"at": datetime(2026, 1, 1, tzinfo=UTC)},
    ],
)
def test_normalized_detail_is_what_a_json_round_trip_gives(detail: dict[Any, Any]) -> None:
    """``normalized`` copies a flat detail of text keys and finite scalars instead of sending it
    through JSON: the hash covers what the database gives back, so both must agree, value and
    type, and everything else still takes the round trip."""
    import json

    row = {"at": datetime(2026, 1, 1, tzinfo=UTC), "actor": "a", "role": "r", "tenant": None}
    got = audit_chain.normalized({**row, "action": "x", "target": "t", "detail": detail})["detail"]
    want = json.loads(json.dumps(detail, default=str))
    assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)
    assert [type(v) for v in got.values()] == [type(v) for v in want.values()]
    assert audit_chain.canonical(
        {**row, "action": "x", "target": "t", "detail": got}
    ) == audit_chain.canonical({**row, "action": "x", "target": "t", "detail": want})
