"""/v1/datasets: the data-set catalogue."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from controller.api.deps import Admin, ControllerDep
from controller.datasets import DatasetCreate, DatasetList, DatasetRead

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], dependencies=[Admin])


@router.get("", response_model=DatasetList)
def list_datasets(ctl: ControllerDep) -> DatasetList:
    return DatasetList(items=sorted(ctl.datasets.values(), key=lambda d: d.id))


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DatasetRead)
def create_dataset(ds: DatasetCreate, ctl: ControllerDep, response: Response) -> DatasetRead:
    read, created = ctl.add_dataset(ds)
    if not created:
        response.status_code = status.HTTP_200_OK
    return read


@router.get("/{ds_id}", response_model=DatasetRead)
def get_dataset(ds_id: str, ctl: ControllerDep) -> DatasetRead:
    return ctl.get_dataset(ds_id)
