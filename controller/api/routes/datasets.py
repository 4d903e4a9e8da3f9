"""/v1/datasets: the data-set catalogue and its sharing grants (docs/security.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from controller import overview
from controller.api.deps import Authenticated, ControllerDep, PrincipalDep, ReaderP, SecurityDep, SubmitterP
from controller.datasets import DatasetCreate, DatasetList, DatasetRead
from controller.errors import NotFound
from controller.overview import ResidencyRead
from controller.security import (
    GrantCreate,
    GrantDecision,
    GrantList,
    GrantOverviewList,
    GrantRead,
    GrantStatus,
    acts_for_tenant,
)

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], dependencies=[Authenticated])
grants_router = APIRouter(prefix="/v1/grants", tags=["datasets"], dependencies=[Authenticated])


@router.get("", response_model=DatasetList)
def list_datasets(ctl: ControllerDep, sec: SecurityDep, who: ReaderP) -> DatasetList:
    """A tenant sees the data sets it owns or holds an approved grant for."""
    return DatasetList(items=sec.visible_datasets(who, sorted(ctl.datasets.values(), key=lambda d: d.id)))


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DatasetRead)
def create_dataset(ds: DatasetCreate, ctl: ControllerDep, who: SubmitterP, response: Response) -> DatasetRead:
    """Admin for any owner; a tenant registers its own data sets only."""
    acts_for_tenant(who, ds.owner, path="owner")
    read, created = ctl.catalogue.add(
        ds, who.audit_row("dataset.registered", f"dataset/{ds.id}", owner=ds.owner)
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return read


@router.get("/{ds_id}", response_model=DatasetRead)
def get_dataset(ds_id: str, ctl: ControllerDep, sec: SecurityDep, who: ReaderP) -> DatasetRead:
    ds = ctl.catalogue.get(ds_id)
    if not sec.can_read_dataset(who, ds):
        raise NotFound(f"data set {ds_id!r} not found")
    return ds


@router.get("/{ds_id}/residency", response_model=ResidencyRead)
def get_residency(ds_id: str, ctl: ControllerDep, sec: SecurityDep, who: ReaderP) -> ResidencyRead:
    """The residency rule in force for the data set, in words (English and Chinese), and the
    clusters a job reading it may run on."""
    ds = ctl.catalogue.get(ds_id)
    if not sec.can_read_dataset(who, ds):
        raise NotFound(f"data set {ds_id!r} not found")
    return overview.residency(ctl, ds)


@router.post("/{ds_id}/grants", status_code=status.HTTP_201_CREATED, response_model=GrantRead)
def request_grant(
    ds_id: str,
    req: GrantCreate,
    ctl: ControllerDep,
    sec: SecurityDep,
    who: SubmitterP,
    response: Response,
) -> GrantRead:
    """The reading tenant asks the owner for access (201); an existing pending or approved
    request answers 200. Data-set ids are public in the catalogue, so asking needs no grant."""
    grant, created = sec.request_grant(who, ctl.catalogue.get(ds_id), req)
    if not created:
        response.status_code = status.HTTP_200_OK
    return grant


@router.get("/{ds_id}/grants", response_model=GrantList)
def list_grants(ds_id: str, ctl: ControllerDep, sec: SecurityDep, who: ReaderP) -> GrantList:
    """Admin, operator and the owner see every grant of the data set; another tenant its own."""
    return GrantList(items=sec.list_grants(who, ctl.catalogue.get(ds_id)))


@router.post("/{ds_id}/grants/{grant_id}/approve", response_model=GrantDecision)
def approve_grant(
    ds_id: str, grant_id: str, ctl: ControllerDep, sec: SecurityDep, who: PrincipalDep
) -> GrantDecision:
    return sec.decide_grant(who, ctl.catalogue.get(ds_id), grant_id, approve=True)


@router.post("/{ds_id}/grants/{grant_id}/reject", response_model=GrantDecision)
def reject_grant(
    ds_id: str, grant_id: str, ctl: ControllerDep, sec: SecurityDep, who: PrincipalDep
) -> GrantDecision:
    """Rejecting an approved grant withdraws it: new submissions and plans are refused, and the
    grantee's unfinished jobs reading the data set stop at once (``stopped_jobs``: those not
    started fail, running ones are cancelled and their agents stop them), each naming the data
    set."""
    decided = sec.decide_grant(who, ctl.catalogue.get(ds_id), grant_id, approve=False)
    ctl.forget_stopped(decided.stopped_jobs)
    return decided


@grants_router.get("", response_model=GrantOverviewList)
def list_all_grants(
    sec: SecurityDep, who: ReaderP, status: Annotated[GrantStatus | None, Query()] = None
) -> GrantOverviewList:
    """Grants across the catalogue, newest request first (at most 1000): all for admin and
    operator; for a tenant, those it asked for and those on data sets it owns, which it decides
    (``can_decide``)."""
    return GrantOverviewList(items=sec.grants_overview(who, status))
