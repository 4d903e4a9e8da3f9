"""Typed dependencies: the controller, the caller (principal) and role checks (docs/security.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool

from controller.errors import Forbidden
from controller.security import Principal, Role, Security, require
from controller.service import Controller

# Dependencies are `async def` on purpose: FastAPI runs a plain `def` dependency in the thread
# pool, and a hop per dependency per request dominated the submit path (docs/benchmarks.md).


async def get_controller(request: Request) -> Controller:
    ctl: Controller = request.app.state.controller
    return ctl


async def get_security(request: Request) -> Security:
    sec: Security = request.app.state.security
    return sec


ControllerDep = Annotated[Controller, Depends(get_controller)]
SecurityDep = Annotated[Security, Depends(get_security)]


async def get_principal(
    request: Request, sec: SecurityDep, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    """401 without a valid bearer token, except in open dev mode (the anonymous admin).
    Only a token that needs a database lookup leaves the event loop. The caller is kept on the
    request, so a 403 is audited under its token id (api/problems.py, note_denial)."""
    principal = sec.authenticate_without_store(authorization)
    if principal is None:
        principal = await run_in_threadpool(sec.authenticate, authorization)
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def roles(*allowed: Role) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: PrincipalDep) -> Principal:
        require(principal, *allowed)
        return principal

    return check


async def require_agent(request: Request, principal: PrincipalDep) -> Principal:
    """Admin, or an agent token bound to the cluster in the path (the shared dev token: any)."""
    cluster = request.path_params.get("cluster")
    require(principal, Role.admin, Role.agent)
    if principal.role == Role.agent and principal.cluster is not None and principal.cluster != cluster:
        raise Forbidden(f"this agent token acts for cluster {principal.cluster!r} only")
    return principal


AdminP = Annotated[Principal, Depends(roles(Role.admin))]
OpsP = Annotated[Principal, Depends(roles(Role.admin, Role.operator))]
ReaderP = Annotated[Principal, Depends(roles(Role.admin, Role.operator, Role.tenant))]
SubmitterP = Annotated[Principal, Depends(roles(Role.admin, Role.tenant))]

Authenticated = Depends(get_principal)
Admin = Depends(roles(Role.admin))
Agent = Depends(require_agent)

# The look-back of the dashboard's aggregates (failovers, preemptions): a minute to a week.
DEFAULT_WINDOW = 3600
WindowS = Annotated[
    int, Query(ge=60, le=7 * 86400, description="seconds to look back for failovers, drains and preemptions")
]
