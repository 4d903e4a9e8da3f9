"""A Decision: the stored, served answer to "where does this job go, and why"."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from pydantic import BaseModel


class ClusterScore(BaseModel):
    cluster: str
    total: float
    scores: dict[str, float]
    transfer_bytes: float = 0.0
    transfer_seconds: float = 0.0


class Rejection(BaseModel):
    cluster: str
    plugin: str
    reason: str


class Decision(BaseModel):
    job_id: str | None
    attempt: int
    status: str  # Scheduled | Unschedulable | UnschedulableAndUnresolvable
    cluster: str | None
    summary: str
    feasible: list[ClusterScore]
    rejected: list[Rejection]
    created_at: datetime
    epoch: int = 0


def summarize(total: int, rejected: list[Rejection], chosen: str | None) -> str:
    """kube-scheduler style: ``0/44 clusters are available: 30 residency (...), 14 capacity (...)``."""
    available = total - len(rejected)
    counts = Counter((r.plugin, r.reason) for r in rejected)
    parts = [
        f"{n} {plugin} ({reason})"
        for (plugin, reason), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    head = f"{available}/{total} clusters are available"
    if chosen:
        head += f"; chose {chosen}"
    return head + (": " + ", ".join(parts) if parts else "") + "."
