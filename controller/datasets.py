"""Data-set catalogue entries and the Data Security Law classification."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

DATASET_ID = r"^[a-z0-9][a-z0-9._-]{0,127}$"
NAME = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


class Classification(StrEnum):
    general = "general"  # 一般数据
    important = "important"  # 重要数据
    core = "core"  # 核心数据


class DatasetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(pattern=DATASET_ID)]
    owner: Annotated[str, Field(pattern=NAME, description="owning province, ministry or 'national'")]
    size_bytes: Annotated[int, Field(ge=0, le=10**18)]
    classification: Classification
    locations: Annotated[list[Annotated[str, Field(pattern=NAME)]], Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=2000)] = ""


class DatasetRead(DatasetCreate):
    pass


class DatasetList(BaseModel):
    items: list[DatasetRead]
