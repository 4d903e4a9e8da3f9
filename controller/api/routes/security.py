"""/v1/tokens (admin) and /v1/audit (admin, operator): see docs/security.md."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response, status

from controller.api.deps import AdminP, OpsP, SecurityDep
from controller.errors import InvalidInput
from controller.schemas import INT64_MAX, Instant
from controller.security import AuditList, TokenCreate, TokenIssued, TokenList
from controller.store.store import decode_cursor, encode_cursor

router = APIRouter(prefix="/v1", tags=["security"])
TokenId = Path(pattern=r"^[0-9a-f]{12}$")


@router.post("/tokens", status_code=status.HTTP_201_CREATED, response_model=TokenIssued)
def issue_token(req: TokenCreate, sec: SecurityDep, who: AdminP) -> TokenIssued:
    """Issue a token; the answer holds the secret, which is shown only here (the database keeps
    its SHA-256)."""
    return sec.issue(who, req)


@router.get("/tokens", response_model=TokenList)
def list_tokens(sec: SecurityDep, _: AdminP) -> TokenList:
    return TokenList(items=sec.list_tokens())


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(sec: SecurityDep, who: AdminP, token_id: str = TokenId) -> Response:
    """Revoked at once: every request looks the token up."""
    sec.revoke(who, token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/audit", response_model=AuditList)
def audit(
    sec: SecurityDep,
    _: OpsP,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=48)] = None,
    since: Instant | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    target: Annotated[
        str | None, Query(max_length=200, description="exactly this target, e.g. cluster/prov-hubei")
    ] = None,
    order: Annotated[
        Literal["asc", "desc"], Query(description="asc: oldest first; desc: newest first")
    ] = "asc",
    exclude_action: Annotated[
        str | None, Query(max_length=48, description="leave this action out, e.g. placement.decided")
    ] = None,
) -> AuditList:
    """The append-only audit log, oldest first (``order=desc``: newest first); ``next_cursor``
    continues after the last row, in the same order."""
    after = None
    if cursor:
        raw = decode_cursor(cursor)
        if raw is None or not (raw.isascii() and raw.isdigit()) or int(raw) > INT64_MAX:
            raise InvalidInput(
                "the cursor is not one this API issued",
                errors=[{"path": "cursor", "message": "invalid cursor"}],
            )
        after = int(raw)
    items = sec.audit(
        actor=actor,
        action=action,
        since=since,
        limit=limit + 1,
        after=after,
        target=target,
        newest_first=order == "desc",
        exclude_action=exclude_action,
    )
    more = len(items) > limit
    items = items[:limit]
    return AuditList(items=items, next_cursor=encode_cursor(str(items[-1].id)) if more else None)
