"""Tamper-evident audit (issue 14): the SM3 chain and SM2-signed checkpoints catch a changed,
deleted, inserted or reordered row, a truncated tail and a rewritten chain, made by a database
superuser with the append-only triggers dropped. On SQLite and PostgreSQL, through
``yiwang audit verify``."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, delete, insert, select, text, update
from typer.testing import CliRunner

from controller import audit
from controller.api.app import create_app
from controller.cli import app as cli
from controller.settings import Settings
from controller.store import Store, audit_chain
from controller.store import schema as t

KEY = audit.new_private_key()
PUBLIC = audit.public_key_of(KEY)


def test_sm3_is_the_standard_one() -> None:
    # GB/T 32905-2016, appendix A.1: SM3("abc")
    assert hashlib.new("sm3", b"abc").hexdigest() == (
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    )
    sig = audit.sign(KEY, b"m")
    assert audit.verify_signature(PUBLIC, b"m", sig) and not audit.verify_signature(PUBLIC, b"n", sig)


def drop_triggers(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("DROP TRIGGER audit_log_no_update_delete ON audit_log"))
    else:
        conn.execute(text("DROP TRIGGER audit_log_no_update"))
        conn.execute(text("DROP TRIGGER audit_log_no_delete"))


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
