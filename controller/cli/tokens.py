"""`yiwang token create | list | revoke` (admin)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from controller.cli.base import (
    DEFAULT_URL,
    TokenOpt,
    UrlOpt,
    _client,
    console,
    token_app,
)


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="admin | operator | tenant | agent")],
    tenant: Annotated[str | None, typer.Option(help="the tenant of a tenant token")] = None,
    cluster: Annotated[str | None, typer.Option(help="the cluster of an agent token")] = None,
    description: str = "",
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """Issue a token; its secret is printed once (the controller keeps only a hash)."""
    body = {"role": role, "tenant": tenant, "cluster": cluster, "description": description}
    with _client(url, token) as c:
        issued = c.create_token({k: v for k, v in body.items() if v})
    console.print_json(json.dumps(issued))


@token_app.command("list")
def token_list(url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
    with _client(url, token) as c:
        items = c.tokens()
    table = Table("id", "role", "tenant", "cluster", "created", "revoked", "description")
    for tk in items:
        table.add_row(
            tk["id"],
            tk["role"],
            tk["tenant"] or "-",
            tk["cluster"] or "-",
            tk["created_at"][:19],
            (tk["revoked_at"] or "")[:19],
            tk["description"],
        )
    console.print(table)


@token_app.command("revoke")
def token_revoke(token_id: str, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
    with _client(url, token) as c:
        c.revoke_token(token_id)
    console.print(f"{token_id}: revoked")
