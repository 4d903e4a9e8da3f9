"""create_app(settings): the FastAPI application of the controller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from controller import __version__
from controller.api import problems
from controller.api.fastpath import FastSubmit
from controller.api.limits import BodySizeLimit
from controller.api.routes import agents, clusters, console, datasets, jobs, policies, security, system, ui
from controller.denials import DenialAudit
from controller.metrics import make_registry
from controller.security import Security
from controller.service import Controller
from controller.settings import Settings


class YiwangAPI(FastAPI):
    """FastAPI, with POST /v1/jobs offered first to the raw-ASGI fast path (api/fastpath.py),
    which hands back to the full stack every case it does not handle."""

    fast_submit: FastSubmit | None = None

    async def full_stack(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.fast_submit is not None
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] == "/v1/jobs"
        ):
            await self.fast_submit(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, controller: Controller | None = None) -> FastAPI:
    settings = settings or Settings()
    ctl = controller or Controller(settings)
    ctl.metrics_registry = make_registry(ctl)

    denials = DenialAudit(
        ctl.store, interval_s=settings.audit_denied_interval_s, max_keys=settings.audit_denied_max_keys
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if settings.background:
            ctl.start()
            denials.start()
        try:
            yield
        finally:
            denials.stop()  # writes the counts of the last interval
            ctl.stop()

    app = YiwangAPI(
        title="Yiwang controller",
        version=__version__,
        lifespan=lifespan,
        description="Places analytics jobs across the 1+32+N federation. Errors are RFC 9457 "
        "problem details.",
    )
    app.state.settings = settings
    app.state.controller = ctl
    app.state.security = Security(ctl.store, settings)
    follower = ctl.follower
    if follower is not None:  # token and grant changes made elsewhere drop what is cached
        follower.security_hooks.append(app.state.security.cache.invalidate)
        if settings.background:  # the follower runs: the cache is trusted while it keeps up
            app.state.security.follow(lambda: follower.last_sync_began)
    app.state.denials = denials  # 401/403, counted and audited per interval (controller/denials.py)
    problems.install(app)
    for module in (jobs, clusters, datasets, policies, agents, security, console, system, ui):
        app.include_router(module.router)
    app.include_router(datasets.grants_router)
    problems.install_openapi(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.fast_submit = FastSubmit(app.full_stack, ctl, app.state.security, settings.max_body_bytes)
    return app
