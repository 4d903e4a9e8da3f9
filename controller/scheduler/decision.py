"""A Decision: the stored, served answer to "where does this job go, and why"."""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from pydantic import BaseModel, model_validator

COMPACT_FORMAT = "yiwang.decision.compact/1"
# controller/scheduler/stored.py writes it; read with its parts filled in (``resolve_parts``).
# /2 names its explanation (``why``); /1 (written before) held it in the body: both read the same.
COLUMNS_FORMAT = "yiwang.decision.columns/2"
COLUMNS_FORMATS = frozenset({COLUMNS_FORMAT, "yiwang.decision.columns/1"})


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
        if isinstance(data, dict) and data.get("format") in COLUMNS_FORMATS:
            return expand_columns(data)
        return data


def _ranked(
    clusters: list[str],
    totals: list[float],
    plugins: list[str],
    scores: list[list[float]],
    moved: list[float],
    seconds: list[float],
) -> list[dict[str, Any]]:
    """The feasible clusters of a stored decision, best total first (ties: the order given);
    ``scores[k][i]``: plugin k's score of cluster i."""
    feasible: list[dict[str, Any]] = [
        {
            "cluster": c,
            "total": _number(totals[i]),
            "scores": {p: _number(scores[k][i]) for k, p in enumerate(plugins)},
            "transfer_bytes": _number(moved[i]),
            "transfer_seconds": _number(seconds[i]),
        }
        for i, c in enumerate(clusters)
    ]
    order = {c: i for i, c in enumerate(clusters)}
    # a total that is not a number ranks last
    feasible.sort(key=lambda f: (-f["total"] if f["total"] == f["total"] else np.inf, order[f["cluster"]]))
    return feasible


def _number(x: float | None) -> float:
    """A stored score: JSON has no infinity or NaN, and a packed body (``pack_decision``) stores
    them as null; they read back as NaN (not a number) instead of failing the whole read."""
    return np.nan if x is None else x


def expand_compact(body: dict[str, Any]) -> dict[str, Any]:
    clusters: list[str] = body.get("clusters", [])
    plugins: list[str] = body.get("plugins", [])
    scores: list[list[float]] = body.get("scores", [])
    totals: list[float] = body.get("total", [])
    moved: list[float] = body.get("transfer_bytes", [0.0] * len(clusters))
    seconds: list[float] = body.get("transfer_seconds", [0.0] * len(clusters))
    feasible = _ranked(clusters, totals, plugins, scores, moved, seconds)
    rejected = [
        {"cluster": name, "plugin": plugin, "reason": reason}
        for plugin, reason, names in body.get("rejected", [])
        for name in names
    ]
    keep = ("job_id", "attempt", "status", "cluster", "summary", "created_at", "epoch")
    return {**{k: body[k] for k in keep if k in body}, "feasible": feasible, "rejected": rejected}


_WIDTH = {"b": 1, "i": 4, "d": 8}
_DTYPE = {"b": "u1", "i": "<i4", "d": "<f8"}


def expand_columns(body: dict[str, Any]) -> dict[str, Any]:
    """The full decision of a body in the columns format (``stored.py`` writes it); ``body``
    carries its context (``names``, ``plugins``, ``cols``: the store adds them on read)."""
    names: list[str] = body["names"]
    n = len(names)
    raw = body["bytes"] if "bytes" in body else base64.b64decode(body["b"])
    wide = bool(body.get("wide"))
    width = 2 if wide else 1
    codes = np.frombuffer(raw[: n * width], dtype="<u2" if wide else "u1").astype(np.int64)
    unlisted = 0xFFFF if wide else 255
    shift, low = (8, 0xFF) if wide else (5, 31)
    rej = body.get("rejected", [])
    groups: dict[int, list[str]] = {}
    for i, code in enumerate(codes.tolist()):
        if code and code != unlisted:
            groups.setdefault(code, []).append(names[i])
    ordered = sorted(groups, key=lambda c: (c >> shift, names.index(groups[c][0])))
    rejected: list[dict[str, str]] = []
    for code in ordered:
        plugin, messages = rej[(code >> shift) - 1]
        reason = messages[(code & low) - 1]
        rejected.extend({"cluster": c, "plugin": plugin, "reason": reason} for c in groups[code])
    feasible: list[dict[str, Any]] = []
    if body.get("listed"):
        listed = [names[i] for i in np.flatnonzero(codes == 0).tolist()]
        cols: str = body["cols"]
        rec = np.frombuffer(
            raw[n * width :], dtype=np.dtype([(f"c{i}", _DTYPE[t]) for i, t in enumerate(cols)])
        )
        values: list[list[float]] = []
        for i, t in enumerate(cols):
            col = rec[f"c{i}"]
            values.append((col.astype(np.float64) if t in "bd" else col / 1000.0).tolist())
        plugins: list[str] = body["plugins"]
        P = len(plugins)
        totals = values[P]
        seconds = values[P + 1] if len(cols) > P + 1 else [0.0] * len(listed)
        if len(cols) > P + 2:
            if "sizes" in body:
                sizes = [float(x) for x in body["sizes"]]
                bits = rec[f"c{P + 2}"].tolist()
                moved = []
                for b in bits:
                    v = 0.0
                    for k, size in enumerate(sizes):
                        v += size if (b >> k) & 1 else 0.0
                    moved.append(v)
            else:
                moved = values[P + 2]
        else:
            moved = [0.0] * len(listed)
        feasible = _ranked(listed, totals, plugins, values, moved, seconds)
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
