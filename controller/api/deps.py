"""Typed dependencies: the controller and authorization."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request

from controller.errors import Unauthorized
from controller.service import Controller


def get_controller(request: Request) -> Controller:
    ctl: Controller = request.app.state.controller
    return ctl


ControllerDep = Annotated[Controller, Depends(get_controller)]


def _check(token: str | None, authorization: str | None, who: str) -> None:
    if token is None:  # dev mode without tokens: open, as the settings allow only in dev
        return
    if not authorization or not authorization.startswith("Bearer "):
        raise Unauthorized(f"{who} endpoints need 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(authorization[7:].encode(), token.encode()):
        raise Unauthorized("the bearer token is not valid here")


def require_admin(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    _check(request.app.state.settings.admin_token, authorization, "operator")


def require_agent(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    s = request.app.state.settings
    if s.agent_token is None:
        return
    if (
        authorization
        and s.admin_token
        and hmac.compare_digest(authorization.removeprefix("Bearer ").encode(), s.admin_token.encode())
    ):
        return
    _check(s.agent_token, authorization, "agent")


Admin = Depends(require_admin)
Agent = Depends(require_agent)
