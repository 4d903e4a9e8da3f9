"""Typed records the store's readers return: one per table row they hand out, so a reader knows
its keys and their types (mypy checks them) without parsing loose dicts. Each is a ``TypedDict``
over the columns of ``schema.py``, so a row is still a plain dict on the wire and in the views."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict


class JobRow(TypedDict):
    """A row of ``jobs``."""

    id: str
    tenant: str
    name: str
    phase: str
    cluster: str | None
    attempt: int
    epoch: int
    priority: int
    spec: dict[str, Any]
    message: str
    created_at: datetime
    updated_at: datetime
    lease_expires_at: datetime | None
    idempotency_key: str | None
    request_hash: str | None


class JobEventRow(TypedDict):
    """A row of ``job_events``: one phase change (or note) of a job."""

    id: int
    job_id: str
    at: datetime
    type: str
    from_phase: str | None
    to_phase: str | None
    cluster: str | None
    attempt: int
    reason: str


class ClusterRow(TypedDict):
    """A row of ``clusters``: a member cluster's registration and its last known state."""

    name: str
    spec: dict[str, Any]
    cordoned: bool
    draining: bool
    health: str
    last_heartbeat: datetime | None
    reported: dict[str, Any] | None
    registered_at: datetime
