"""A Decision: the stored, served answer to "where does this job go, and why"."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
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


class Reason(BaseModel):
    """How many clusters one plugin rejected for one reason (a part of the summary, structured:
    read these rather than the summary's text)."""

    plugin: str
    reason: str
    clusters: int


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
    # The summary's parts, in its order (derived from ``rejected`` by ``reason_counts``).
    reasons: list[Reason] = []

    @model_validator(mode="after")
    def _reasons(self) -> Decision:
        if not self.reasons and self.rejected:
            counts = Counter((r.plugin, r.reason) for r in self.rejected)
            self.reasons = [
                Reason(plugin=p, reason=r, clusters=n) for p, r, n in reason_counts(counts.items())
            ]
        return self

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


# (plugin, reason, how many clusters it rejected for that reason): one line of a diagnosis.
ReasonCount = tuple[str, str, int]


def reason_counts(groups: Iterable[tuple[tuple[str, str], int]]) -> list[ReasonCount]:
    """The diagnosis in the order the summary reads: most clusters first, then by plugin and
    reason; groups that rejected nothing are left out."""
    counts = [(plugin, reason, n) for (plugin, reason), n in groups if n]
    if len(counts) > 1:
        counts.sort(key=_reason_order)
    return counts


def _reason_order(c: ReasonCount) -> tuple[int, str, str]:
    return -c[2], c[0], c[1]


def render(
    total: int,
    groups: Iterable[tuple[tuple[str, str], int]],
    chosen: str | None,
    *,
    failover_of: str | None = None,
    victims: Sequence[tuple[str, int]] = (),
) -> tuple[str, list[ReasonCount]]:
    """The one renderer of a decision: its summary, kube-scheduler style (``0/44 clusters are
    available: 30 residency (...), 14 capacity (...)``), and the structured reasons it is made
    of. ``groups``: ((plugin, reason), clusters rejected); ``victims``: (job id, priority)."""
    reasons = reason_counts(groups)
    head = f"{total - sum([n for _, _, n in reasons])}/{total} clusters are available"
    if chosen:
        head += f"; chose {chosen}"
        if failover_of is not None:
            head += f" (failover: designated backup of {failover_of})"
    if victims:
        head += f" after preempting {len(victims)} job(s): " + ", ".join(
            f"{job_id} (priority {priority})" for job_id, priority in victims
        )
    parts = ", ".join(f"{n} {plugin} ({reason})" for plugin, reason, n in reasons)
    return head + (": " + parts if parts else "") + ".", reasons
