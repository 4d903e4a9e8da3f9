"""/v1/clusters: list, get, register (PUT), deregister, cordon, uncordon, drain."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Response, status

from controller import overview
from controller.api.deps import (
    DEFAULT_WINDOW,
    AdminP,
    Authenticated,
    ControllerDep,
    OpsP,
    ReaderP,
    SecurityDep,
    WindowS,
)
from controller.errors import InvalidInput
from controller.overview import ClusterOverview
from controller.security import sees_tenant
from controller.topology.model import CLUSTER_NAME, Cluster

router = APIRouter(prefix="/v1/clusters", tags=["clusters"], dependencies=[Authenticated])
Name = Path(pattern=CLUSTER_NAME, max_length=63)


@router.get("")
def list_clusters(ctl: ControllerDep, _: ReaderP) -> dict[str, Any]:
    return {"items": [ctl.monitoring.cluster_view(s) for s in ctl.registry.clusters.values()]}


@router.get("/{name}")
def get_cluster(ctl: ControllerDep, _: ReaderP, name: str = Name) -> dict[str, Any]:
    return ctl.monitoring.cluster_view(ctl.clusters.cluster_state(name))


@router.get("/{name}/overview", response_model=ClusterOverview)
def cluster_overview(
    ctl: ControllerDep, sec: SecurityDep, who: ReaderP, name: str = Name, window_s: WindowS = DEFAULT_WINDOW
) -> ClusterOverview:
    """The cluster's page: its view, its health/cordon/drain changes seen by this controller,
    its jobs and its tenant's queue, the data sets held here (those the caller may read), its
    backup group and who fails over to it, and the failovers and drains from or to it."""
    visible = sec.visible_datasets(who, sorted(ctl.datasets.values(), key=lambda d: d.id))
    return overview.cluster_overview(ctl, name, lambda t: sees_tenant(who, t), visible, float(window_s))


@router.put("/{name}", responses={201: {"description": "registered (created)"}})
def register_cluster(
    spec: Cluster, ctl: ControllerDep, who: AdminP, response: Response, name: str = Name
) -> dict[str, Any]:
    """Create or update a member cluster (idempotent; used by the Pulumi registration provider).
    The tenant, tier and adcode of a cluster holding data sets or active jobs cannot change (422)."""
    if spec.name != name:
        raise InvalidInput(
            "the body's name must match the path", errors=[{"path": "name", "message": f"expected {name!r}"}]
        )
    state, created = ctl.clusters.register_cluster(
        spec, who.audit_row("cluster.registered", f"cluster/{name}")
    )
    if created:
        response.status_code = status.HTTP_201_CREATED
    return ctl.monitoring.cluster_view(state)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def deregister_cluster(ctl: ControllerDep, who: AdminP, name: str = Name) -> Response:
    """Only a cluster that runs no jobs (409: drain it) and holds no catalogued data sets (409)."""
    ctl.clusters.deregister_cluster(name, who.audit_row("cluster.deleted", f"cluster/{name}"))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{name}/cordon")
def cordon(ctl: ControllerDep, who: OpsP, name: str = Name) -> dict[str, Any]:
    state = ctl.clusters.set_cordon(name, True, who.audit_row("cluster.cordoned", f"cluster/{name}"))
    return ctl.monitoring.cluster_view(state)


@router.post("/{name}/uncordon")
def uncordon(ctl: ControllerDep, who: OpsP, name: str = Name) -> dict[str, Any]:
    state = ctl.clusters.set_cordon(name, False, who.audit_row("cluster.uncordoned", f"cluster/{name}"))
    return ctl.monitoring.cluster_view(state)


@router.post("/{name}/drain")
def drain(ctl: ControllerDep, who: OpsP, name: str = Name) -> dict[str, Any]:
    state, moved = ctl.clusters.drain(name, who.audit_row("cluster.drained", f"cluster/{name}"))
    return {**ctl.monitoring.cluster_view(state), "requeued_jobs": moved}
