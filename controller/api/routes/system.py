"""/healthz, /readyz, /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from controller.api.deps import ControllerDep, SecurityDep
from controller.api.problems import problem

router = APIRouter(tags=["system"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
def readyz(ctl: ControllerDep, sec: SecurityDep) -> Response | dict[str, object]:
    try:
        ctl.store.leader_epoch()
        writable = ctl.store.writable()
    except Exception as exc:  # the database is unreachable: not ready, say why
        return problem(503, "Not ready", f"database unreachable: {type(exc).__name__}")
    if not writable:  # a standby (a load balancer sends writes elsewhere)
        return problem(503, "Not ready", "the database this controller reaches is read-only")
    return {
        "status": "ready",
        "leader": ctl.is_leader,
        "epoch": ctl.current_epoch,
        "mode": ctl.settings.mode,
        "role": ctl.settings.role,
        # "open": dev without tokens, every request acts as admin (docs/security.md)
        "auth": "open" if sec.open else "tokens",
    }


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
def metrics(ctl: ControllerDep) -> Response:
    assert ctl.metrics_registry is not None, "create_app installs the metrics registry"
    return Response(generate_latest(ctl.metrics_registry), media_type=CONTENT_TYPE_LATEST)
