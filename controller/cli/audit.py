"""``yiwang audit ...``: verify the tamper-evident audit log, sign and export checkpoints.
Works on the database directly (no API), so it runs where the controller is down too."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from controller import audit
from controller.settings import Settings
from controller.store import Store
from controller.store.migrate import current_revision

audit_app = typer.Typer(help="Tamper-evident audit log: verify, checkpoint, keygen.", no_args_is_help=True)
DbOpt = Annotated[str | None, typer.Option("--database-url", help="default: YIWANG_DATABASE_URL")]


def _store(database_url: str | None) -> Store:
    return Store(database_url or Settings().database_url)


@audit_app.command("verify")
def verify(
    database_url: DbOpt = None,
    checkpoints: Annotated[
        Path | None,
        typer.Option("--checkpoints", help="exported checkpoints (JSON lines), kept outside the database"),
    ] = None,
    public_key: Annotated[
        str | None, typer.Option("--public-key", help="the trusted SM2 public key (128 hex digits)")
    ] = None,
) -> None:
    """Exit 0 when the chain, the seal of the rows before it and every checkpoint verify, 1 with
    each finding otherwise. Reads the database as it is (never migrates it: an upgrade would
    seal whatever rows it found)."""
    store = Store(database_url or Settings().database_url, migrate=False)
    try:
        revision = current_revision(store.engine)
        if revision is None or revision < "0003":
            typer.echo(
                f"the database is at revision {revision or 'none'}, before the audit chain (0003): "
                "nothing to verify; yiwang db-upgrade chains new rows and seals the old ones"
            )
            raise typer.Exit(1)
        exported = audit.read_export(checkpoints) if checkpoints else None
        rep = audit.verify(store, exported=exported, public_key=public_key)
    finally:
        store.close()
    typer.echo(
        f"{rep.rows} audit rows ({rep.chained} chained, {rep.legacy} before the chain), "
        f"{rep.checkpoints} checkpoints"
    )
    if rep.legacy_ids and rep.seal:
        first, last = rep.legacy_ids
        typer.echo(
            f"rows {first}..{last} were written before the chain (migration 0003); they are checked "
            f"against the seal in row {rep.seal['id']}, written at the upgrade to 0005 ({rep.seal['at']}), "
            "which vouches for them as they were then, not before"
        )
    for f in rep.findings:
        typer.echo(f"TAMPERED {f.kind}: {f.message}")
    if public_key is None and rep.checkpoints:
        typer.echo("note: no --public-key given; signatures were checked against the keys they name")
    raise typer.Exit(0 if rep.ok else 1)


@audit_app.command("checkpoint")
def checkpoint(
    database_url: DbOpt = None,
    export: Annotated[
        Path | None, typer.Option("--export", help="append the checkpoint here (JSON lines)")
    ] = None,
) -> None:
    """Sign the newest audit row with the SM2 key in YIWANG_AUDIT_SM2_KEY."""
    key = os.environ.get("YIWANG_AUDIT_SM2_KEY", "")
    if not key:
        typer.echo("set YIWANG_AUDIT_SM2_KEY (yiwang audit keygen makes one)", err=True)
        raise typer.Exit(2)
    store = _store(database_url)
    try:
        cp = audit.checkpoint(store, key, export)
    finally:
        store.close()
    typer.echo(json.dumps(cp) if cp else "nothing new since the last checkpoint")


@audit_app.command("keygen")
def keygen() -> None:
    """Print a new SM2 key pair (keep the private key in a secret store)."""
    d = audit.new_private_key()
    typer.echo(json.dumps({"private_key": d, "public_key": audit.public_key_of(d)}))
