"""Tamper-evident audit log: SM2-signed checkpoints of the SM3 chain, their export, and the
verification behind ``yiwang audit verify``.

A checkpoint signs (SM2 with SM3, GB/T 32918 / GB/T 35276, via the ``gmssl`` package) the id and
hash of the newest audit row. It is stored in ``audit_checkpoints`` and may be exported as JSON
lines (``YIWANG_AUDIT_CHECKPOINT_FILE``, or ``yiwang audit checkpoint --export``) to somewhere the
database administrator cannot write. ``verify`` walks every row in id order and reports:

- ``changed``: a row whose content no longer matches its hash;
- ``broken-link``: a row whose ``prev_hash`` is not the previous row's hash (a row before it was
  deleted, inserted or moved);
- ``unchained``: a row without a hash after the chain began (inserted around the controller);
- ``checkpoint``: a checkpoint whose row is gone or different (truncation, a rewritten chain), or
  whose signature does not verify with the trusted public key;
- ``sealed``: the rows before the chain (written before migration 0003) no longer match the seal
  migration 0005 appended for them, or there is more than one seal;
- ``unsealed``: rows without a hash before the chain that no seal covers (a database not yet
  upgraded to 0005, or rows inserted there around the controller).
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gmssl import sm2
from sqlalchemy import insert, select

from controller.store import audit_chain
from controller.store import schema as t
from controller.store.store import Store, utc

log = logging.getLogger("yiwang.audit")
CHECKPOINT_FORMAT = "yiwang-audit-checkpoint/1"


# ---- SM2 --------------------------------------------------------------------------------------
def _sm2(private_key: str, public_key: str) -> sm2.CryptSM2:
    """gmssl's SM2 context with ``public_key`` (x||y, 128 hex digits) set as given.

    gmssl 3.2.2's constructor does ``public_key.lstrip("04")`` when a key starts with "04", which
    strips the leading digits of any key whose x coordinate begins with hex 04 (1 key in 256):
    every signature made or checked with it then fails. So the key is set after construction; an
    uncompressed point's "04" prefix (130 digits) is removed here, exactly once."""
    if len(public_key) == 130 and public_key.startswith("04"):
        public_key = public_key[2:]
    c = sm2.CryptSM2(private_key=private_key, public_key="")
    c.public_key = public_key
    return c


def public_key_of(private_key: str) -> str:
    """The uncompressed public key (128 hex digits) of an SM2 private key (64 hex digits)."""
    key: str = _sm2(private_key, "")._kg(int(private_key, 16), sm2.default_ecc_table["g"])
    return key


def new_private_key() -> str:
    while True:
        d = secrets.token_hex(32)
        if 0 < int(d, 16) < int(sm2.default_ecc_table["n"], 16) - 1:
            return d


def sign(private_key: str, message: bytes) -> str:
    signature: str = _sm2(private_key, public_key_of(private_key)).sign_with_sm3(message)
    return signature


def verify_signature(public_key: str, message: bytes, signature: str) -> bool:
    try:
        return bool(_sm2("", public_key).verify_with_sm3(signature, message))
    except (ValueError, TypeError, IndexError):
        return False


# ---- checkpoints ------------------------------------------------------------------------------
def checkpoint_message(last_id: int, last_hash: str, at: str) -> bytes:
    return f"{CHECKPOINT_FORMAT}|{last_id}|{last_hash}|{at}".encode()


def checkpoint(store: Store, private_key: str, export: Path | None = None) -> dict[str, Any] | None:
    """Sign the newest chained row; store the checkpoint (and append it to ``export``). None when
    there is nothing new since the last checkpoint."""
    with store.tx() as conn:
        row = conn.execute(
            select(t.audit_log.c.id, t.audit_log.c.hash)
            .where(t.audit_log.c.hash.is_not(None))
            .order_by(t.audit_log.c.id.desc())
            .limit(1)
        ).first()
        if row is None:
            return None
        last = conn.execute(
            select(t.audit_checkpoints.c.last_id).order_by(t.audit_checkpoints.c.id.desc()).limit(1)
        ).scalar()
        if last is not None and int(last) >= int(row.id):
            return None
        at = datetime.now(UTC)
        at_s = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        cp = {
            "format": CHECKPOINT_FORMAT,
            "at": at_s,
            "last_id": int(row.id),
            "last_hash": str(row.hash),
            "public_key": public_key_of(private_key),
            "signature": sign(private_key, checkpoint_message(int(row.id), str(row.hash), at_s)),
        }
        conn.execute(
            insert(t.audit_checkpoints).values(
                at=at,
                last_id=cp["last_id"],
                last_hash=cp["last_hash"],
                public_key=cp["public_key"],
                signature=cp["signature"],
            )
        )
    if export is not None:
        with export.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(cp, sort_keys=True) + "\n")
    return cp


def stored_checkpoints(store: Store) -> list[dict[str, Any]]:
    with store.read() as conn:
        rows = conn.execute(select(t.audit_checkpoints).order_by(t.audit_checkpoints.c.id)).mappings().all()
    out = []
    for r in rows:
        at = utc(r["at"])
        assert at is not None
        out.append(
            {
                "format": CHECKPOINT_FORMAT,
                "at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "last_id": int(r["last_id"]),
                "last_hash": r["last_hash"],
                "public_key": r["public_key"],
                "signature": r["signature"],
            }
        )
    return out


def read_export(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ---- verification -----------------------------------------------------------------------------
@dataclass
class Finding:
    kind: str  # changed | broken-link | unchained | checkpoint
    row_id: int | None
    message: str


@dataclass
class Report:
    rows: int = 0
    chained: int = 0
    legacy: int = 0  # rows written before the chain existed (migration 0003)
    checkpoints: int = 0
    findings: list[Finding] = field(default_factory=list)
    seal: dict[str, Any] | None = None  # the seal row of the legacy rows: id, at, and its detail
    legacy_ids: tuple[int, int] | None = None  # first and last id of the legacy rows

    @property
    def ok(self) -> bool:
        return not self.findings


def verify(
    store: Store, *, exported: list[dict[str, Any]] | None = None, public_key: str | None = None
) -> Report:
    """Walk the chain and check every checkpoint (stored and exported). With ``public_key`` a
    checkpoint must be signed by it; without, by the key it names (which shows it was not
    edited, but not who signed it)."""
    rep = Report()
    hashes: dict[int, str] = {}
    c = t.audit_log.c
    cols = (c.id, c.at, c.actor, c.role, c.tenant, c.action, c.target, c.detail, c.prev_hash, c.hash)
    expected_prev = audit_chain.GENESIS
    started = False
    legacy: list[dict[str, Any]] = []
    seals: list[dict[str, Any]] = []
    with store.read() as conn:
        for r in conn.execute(select(*cols).order_by(c.id)).mappings():
            rep.rows += 1
            rid = int(r["id"])
            if r["hash"] is None:
                if started:
                    rep.findings.append(
                        Finding("unchained", rid, f"row {rid} has no hash after the chain began")
                    )
                else:
                    rep.legacy += 1
                    legacy.append(dict(r))
                continue
            started = True
            rep.chained += 1
            hashes[rid] = r["hash"]
            if r["action"] == audit_chain.SEAL_ACTION:
                seals.append(dict(r))
            if audit_chain.link(r["prev_hash"] or "", dict(r)) != r["hash"]:
                rep.findings.append(Finding("changed", rid, f"row {rid} does not match its hash (changed)"))
            if r["prev_hash"] != expected_prev:
                rep.findings.append(
                    Finding(
                        "broken-link",
                        rid,
                        f"row {rid} does not follow the row before it (a row was deleted, inserted or moved)",
                    )
                )
            expected_prev = r["hash"]
    _check_seal(rep, legacy, seals)
    stored = stored_checkpoints(store)
    seen = {(cp["last_id"], cp["last_hash"], cp["signature"]) for cp in stored}
    everything = stored + [
        cp for cp in exported or [] if (cp["last_id"], cp["last_hash"], cp["signature"]) not in seen
    ]
    if exported:
        for cp in exported:
            if (cp["last_id"], cp["last_hash"], cp["signature"]) not in seen:
                rep.findings.append(
                    Finding(
                        "checkpoint",
                        int(cp["last_id"]),
                        f"exported checkpoint of row {cp['last_id']} is missing from the database",
                    )
                )
    for cp in everything:
        rep.checkpoints += 1
        rid, h = int(cp["last_id"]), str(cp["last_hash"])
        key = public_key or cp["public_key"]
        if public_key and cp["public_key"] != public_key:
            rep.findings.append(
                Finding("checkpoint", rid, f"checkpoint of row {rid} names another public key")
            )
        if not verify_signature(key, checkpoint_message(rid, h, cp["at"]), cp["signature"]):
            rep.findings.append(
                Finding("checkpoint", rid, f"checkpoint of row {rid}: the SM2 signature does not verify")
            )
        if rid not in hashes:
            rep.findings.append(
                Finding("checkpoint", rid, f"row {rid} of a signed checkpoint is gone (deleted)")
            )
        elif hashes[rid] != h:
            rep.findings.append(
                Finding(
                    "checkpoint",
                    rid,
                    f"row {rid} differs from its signed checkpoint (the chain was rewritten)",
                )
            )
    return rep


def _check_seal(rep: Report, legacy: list[dict[str, Any]], seals: list[dict[str, Any]]) -> None:
    """The rows before the chain against their seal (migration 0005): same count, ids and digest.
    The first seal counts (it is the one the chain and the checkpoints after it protect); any
    other is a forgery."""
    if legacy:
        rep.legacy_ids = (int(legacy[0]["id"]), int(legacy[-1]["id"]))
    for extra in seals[1:]:
        rep.findings.append(
            Finding(
                "sealed",
                int(extra["id"]),
                f"row {extra['id']} is a second seal: the rows before the chain are sealed once, "
                f"at the upgrade (row {seals[0]['id']})",
            )
        )
    if not seals:
        if rep.legacy_ids:
            first, last = rep.legacy_ids
            rep.findings.append(
                Finding(
                    "unsealed",
                    first,
                    f"rows {first}..{last} ({len(legacy)}) have no hash and come before the chain, and no "
                    "seal covers them: written before migration 0003 on a database not yet upgraded "
                    "(yiwang db-upgrade seals them), or inserted there around the controller",
                )
            )
        return
    seal = seals[0]
    detail = seal["detail"] or {}
    at = utc(seal["at"])
    rep.seal = {"id": int(seal["id"]), "at": at.isoformat() if at else None, **detail}
    want = (detail.get("rows"), detail.get("first_id"), detail.get("last_id"), detail.get("digest"))
    got = (
        len(legacy),
        rep.legacy_ids[0] if rep.legacy_ids else None,
        rep.legacy_ids[1] if rep.legacy_ids else None,
        audit_chain.legacy_digest(legacy),
    )
    if want != got:
        rep.findings.append(
            Finding(
                "sealed",
                int(seal["id"]),
                f"the {len(legacy)} rows before the chain do not match their seal (row {seal['id']}: "
                f"{detail.get('rows')} rows, ids {detail.get('first_id')}..{detail.get('last_id')}): one "
                "was changed, deleted or inserted",
            )
        )
