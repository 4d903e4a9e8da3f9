"""Bounded, typed numbers and instants: every number that enters from outside (API bodies, query
parameters, agent heartbeats and status reports, policy files) is one of these types, so it is
finite, inside a stated range and of its declared type (strict: no booleans, no numeric
strings; an integer field takes no fractions), or the request is refused with a 422
problem naming the field. Defined here once; the request models import them.

The bounds are far above any real federation (a million cores per cluster, the largest
PostgreSQL integer for fencing epochs) and far below what would overflow a float, an
INTEGER/BIGINT column or a sum over every cluster.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
MAX_CORES = 10_000_000.0  # per cluster (the largest today is 16,000)
MAX_MEMORY_GIB = 1_000_000_000.0
MAX_GPUS = 10_000_000
MAX_SECONDS = 10 * 365 * 86_400.0
MAX_QUOTA = 1e12

# Resources (a cluster's capacity, an agent's report, a quota amount)
Cores = Annotated[float, Field(strict=True, ge=0, le=MAX_CORES, allow_inf_nan=False)]
MemoryGiB = Annotated[float, Field(strict=True, ge=0, le=MAX_MEMORY_GIB, allow_inf_nan=False)]
Gpus = Annotated[int, Field(strict=True, ge=0, le=MAX_GPUS)]
# GPUs held or offered where shared (fractional) GPUs count: an agent's report, a ledger
GpuAmount = Annotated[float, Field(strict=True, ge=0, le=MAX_GPUS, allow_inf_nan=False)]
QuotaAmount = Annotated[float, Field(strict=True, ge=0, le=MAX_QUOTA, allow_inf_nan=False)]

# Counters and identifiers stored in INTEGER / BIGINT columns
Count = Annotated[int, Field(strict=True, ge=0, le=INT32_MAX)]
Attempt = Annotated[int, Field(strict=True, ge=1, le=INT32_MAX)]
Epoch = Annotated[
    int, Field(strict=True, ge=1, le=INT64_MAX, description="the controller leader's fencing epoch")
]
ExitCode = Annotated[int, Field(strict=True, ge=-(2**31), le=INT32_MAX)]
Version = Annotated[int, Field(strict=True, ge=1, le=INT32_MAX)]
Priority = Annotated[int, Field(strict=True, ge=0, le=1_000_000)]

# Durations, rates and weights
Seconds = Annotated[float, Field(strict=True, ge=0, le=MAX_SECONDS, allow_inf_nan=False)]
Gbps = Annotated[float, Field(strict=True, gt=0, le=1_000_000, allow_inf_nan=False)]
Milliseconds = Annotated[float, Field(strict=True, ge=0, le=3_600_000, allow_inf_nan=False)]
Weight = Annotated[float, Field(strict=True, ge=0, le=100, allow_inf_nan=False)]
Fraction = Annotated[float, Field(strict=True, ge=0, le=1, allow_inf_nan=False)]


def _to_utc(value: datetime) -> datetime:
    """Aware UTC; a naive instant is taken as UTC. An offset that pushes the instant outside
    years 1..9999 (``0001-01-01T00:00:00+14:00``) is refused instead of overflowing later."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("the instant is outside years 1..9999 once converted to UTC") from exc


def _rfc3339(value: object) -> object:
    """An RFC 3339 date-time (as documented), not pydantic's lax extras (Unix seconds)."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not RFC3339.match(value):
        raise ValueError("expected an RFC 3339 date-time such as 2026-01-31T08:00:00+08:00")
    return value


RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")
Instant = Annotated[datetime, BeforeValidator(_rfc3339), AfterValidator(_to_utc)]
