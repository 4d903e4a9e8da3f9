"""A Decision: the stored, served answer to "where does this job go, and why"."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from pydantic import BaseModel, model_validator

COMPACT_FORMAT = "yiwang.decision.compact/1"


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

    @model_validator(mode="before")
    @classmethod
    def _expand_compact(cls, data: Any) -> Any:
        """The batch loop stores decisions compactly (see scheduler/batch.py); expand them."""
        if isinstance(data, dict) and data.get("format") == COMPACT_FORMAT:
            return expand_compact(data)
        return data


def expand_compact(body: dict[str, Any]) -> dict[str, Any]:
    clusters: list[str] = body.get("clusters", [])
    plugins: list[str] = body.get("plugins", [])
    scores: list[list[float]] = body.get("scores", [])
    totals: list[float] = body.get("total", [])
    moved: list[float] = body.get("transfer_bytes", [0.0] * len(clusters))
    seconds: list[float] = body.get("transfer_seconds", [0.0] * len(clusters))
    feasible: list[dict[str, Any]] = [
        {
            "cluster": c,
            "total": totals[i],
            "scores": {p: scores[k][i] for k, p in enumerate(plugins)},
            "transfer_bytes": moved[i],
            "transfer_seconds": seconds[i],
        }
        for i, c in enumerate(clusters)
    ]
    order = {c: i for i, c in enumerate(clusters)}
    feasible.sort(key=lambda f: (-f["total"], order[f["cluster"]]))
    rejected = [
        {"cluster": name, "plugin": plugin, "reason": reason}
        for plugin, reason, names in body.get("rejected", [])
        for name in names
    ]
    keep = ("job_id", "attempt", "status", "cluster", "summary", "created_at", "epoch")
    return {**{k: body[k] for k in keep if k in body}, "feasible": feasible, "rejected": rejected}


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
