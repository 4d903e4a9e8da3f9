"""A decision kept compact as the cycle makes it (shape, free rows seen, chosen cluster,
victims), and the full explained ``Decision`` built from it on demand; a cycle's result."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from controller.scheduler.decision import COMPACT_FORMAT, ClusterScore, Decision, Rejection, render
from controller.scheduler.framework import (
    FilterPlugin,
    FloatArray,
    ScorePlugin,
)
from controller.scheduler.ordering import (
    ORDER_CONSTRAINED_FIRST as ORDER_CONSTRAINED_FIRST,
)
from controller.scheduler.ordering import ORDER_DRF as ORDER_DRF
from controller.scheduler.queue import Item, Victim
from controller.scheduler.shapes import Shape, _static_body, _static_groups

IntArray = npt.NDArray[np.intp]


class CycleContext(Protocol):
    """What a compact decision reads of the ``BatchScheduler`` that made it."""

    names: list[str]
    index: dict[str, int]
    backups: dict[str, list[str]]
    score_order: dict[str, int]
    dynamic_filters: list[FilterPlugin]
    dynamic_scores: list[tuple[ScorePlugin, float]]
    static_filters: list[FilterPlugin]
    static_scores: list[tuple[ScorePlugin, float]]
    fused: bool


class CompactDecision:
    """What a decision used, kept small; ``to_decision`` builds the full explained Decision."""

    __slots__ = (
        "attempt",
        "chosen",
        "ctx",
        "epoch",
        "free_rows",
        "job_id",
        "job_reason",
        "shape",
        "status",
        "t",
        "victims",
    )

    def __init__(
        self,
        ctx: CycleContext,
        job_id: str | None,
        attempt: int,
        shape: Shape,
        status: str,
        chosen: int = -1,
        free_rows: FloatArray | None = None,
        job_reason: tuple[str, str] | None = None,
        victims: list[Victim] | None = None,
        t: float = 0.0,
        epoch: int = 0,
    ) -> None:
        self.ctx = ctx
        self.job_id = job_id
        self.attempt = attempt
        self.shape = shape
        self.status = status
        self.chosen = chosen  # cluster index, -1 when none
        self.free_rows = free_rows  # free capacity of shape.idx when decided
        self.job_reason = job_reason  # (plugin, reason) rejecting every cluster (quota)
        self.victims: Sequence[Victim] = victims if victims else ()
        self.t = t or time.time()
        self.epoch = epoch

    @property
    def cluster(self) -> str | None:
        return self.ctx.names[self.chosen] if self.chosen >= 0 else None

    @property
    def demand(self) -> FloatArray:
        return self.shape.demand

    def moved_bytes(self) -> float:
        """The input bytes the placement moves over the WAN to the chosen cluster (0.0 when
        unplaced or when locality does not score). ``shape.transfer`` is over ``shape.idx``."""
        transfer = self.shape.transfer
        if self.chosen < 0 or transfer is None:
            return 0.0
        idx = self.shape.idx
        pos = int(np.searchsorted(idx, self.chosen))
        return float(transfer[1][pos]) if pos < len(idx) and idx[pos] == self.chosen else 0.0

    def rejection_groups(self) -> dict[tuple[str, str], list[str]]:
        """(plugin, reason) -> rejected cluster names, in recording order: the static filters'
        reasons (computed once per shape), then the dynamic filter's on what passed them, then a
        job-level reason (quota, unknown priority class) on the clusters that would fit. Plain
        tuples and lists: this runs for every decision of a cycle."""
        ctx, shape = self.ctx, self.shape
        groups: dict[tuple[str, str], list[str]] = {k: list(v) for k, v in _static_groups(ctx, shape).items()}
        passing = shape.idx
        if self.free_rows is not None and len(shape.idx):
            for dyn in ctx.dynamic_filters:
                codes, messages, _ = dyn.classify(self.free_rows, shape.cap_rows, shape.demand)  # type: ignore[attr-defined]
                for j in np.flatnonzero(codes):
                    c = int(shape.idx[j])
                    if c == self.chosen:
                        continue
                    groups.setdefault((dyn.NAME, messages[codes[j] - 1]), []).append(ctx.names[c])
                passing = shape.idx[codes == 0]
                break  # the first dynamic filter records; later ones only see what it passed
        if self.job_reason is not None:
            groups.setdefault(self.job_reason, []).extend(ctx.names[int(c)] for c in passing)
        return groups

    def rejections(self) -> list[Rejection]:
        return [
            Rejection(cluster=name, plugin=plugin, reason=reason)
            for (plugin, reason), names in self.rejection_groups().items()
            for name in names
        ]

    def feasible_mask(self) -> npt.NDArray[np.bool_]:
        shape = self.shape
        if self.free_rows is None or not len(shape.idx):
            return np.zeros(len(shape.idx), dtype=bool)
        ok = np.ones(len(shape.idx), dtype=bool)
        for plugin in self.ctx.dynamic_filters:
            ok &= plugin.fits(self.free_rows, shape.cap_rows, shape.demand)  # type: ignore[attr-defined]
        if self.chosen >= 0:
            ok |= shape.idx == self.chosen  # room was made by preemption
        return ok

    def summary(self, groups: dict[tuple[str, str], list[str]] | None = None) -> str:
        ctx = self.ctx
        groups = self.rejection_groups() if groups is None else groups
        chosen = ctx.names[self.chosen] if self.chosen >= 0 else None
        origin = self.shape.origin
        failover_of = (
            origin if chosen and origin is not None and chosen in ctx.backups.get(origin, ()) else None
        )
        victims = [(v.job_id, v.priority) for v in self.victims] if self.victims else ()
        counts = [(k, len(v)) for k, v in groups.items()]
        return render(len(ctx.names), counts, chosen, failover_of=failover_of, victims=victims)[0]

    def to_body(self) -> dict[str, Any]:
        """The stored form: a compact JSON body that ``Decision.model_validate`` expands into the
        full decision (every feasible cluster's per-plugin scores, every rejection reason)."""
        ctx, shape = self.ctx, self.shape
        groups = self.rejection_groups()
        body: dict[str, Any] = {
            "format": COMPACT_FORMAT,
            "job_id": self.job_id,
            "attempt": self.attempt,
            "status": self.status,
            "cluster": self.cluster,
            "summary": self.summary(groups),
            "created_at": datetime.fromtimestamp(self.t, UTC).isoformat(),
            "epoch": self.epoch,
        }
        body["rejected"] = [[p, reason, names] for (p, reason), names in groups.items() if names]
        if self.job_reason is None and self.free_rows is not None and len(shape.idx):
            static = _static_body(ctx, shape)
            mask = self.feasible_mask()
            every = bool(mask.all())  # the common case: the static parts are reused as they are
            rows = np.flatnonzero(mask)
            # (name, weight, raw scores, JSON-ready list of the feasible rows' rounded scores)
            per_plugin: list[tuple[str, float, FloatArray, list[float]]] = [
                (name, w, raw, lst if every else rounded[rows].tolist())
                for name, w, raw, rounded, lst in static.scores
            ]
            for plugin, w in ctx.dynamic_scores:
                kernel = plugin.score_free  # type: ignore[attr-defined]
                sc = kernel(self.free_rows, shape.cap_rows, shape.demand)
                per_plugin.append((plugin.NAME, w, sc, np.round(sc[rows], 3).tolist()))
            per_plugin.sort(key=lambda x: ctx.score_order.get(x[0], 99))
            total = np.zeros(len(shape.idx))
            for _, w, sc, _ in per_plugin:
                total += w * sc
            body["clusters"] = static.names if every else [static.names[r] for r in rows]
            body["plugins"] = [p[0] for p in per_plugin]
            body["scores"] = [p[3] for p in per_plugin]
            body["total"] = np.round(total[rows], 3).tolist()
            if static.transfer_lists is not None:
                if every:
                    body["transfer_bytes"], body["transfer_seconds"] = static.transfer_lists
                else:
                    assert static.transfer_bytes is not None and static.transfer_seconds is not None
                    body["transfer_bytes"] = static.transfer_bytes[rows].tolist()
                    body["transfer_seconds"] = static.transfer_seconds[rows].tolist()
        return body

    def to_decision(self) -> Decision:
        ctx, shape = self.ctx, self.shape
        feasible: list[ClusterScore] = []
        if self.job_reason is None and self.free_rows is not None and len(shape.idx):
            mask = self.feasible_mask()
            rows = np.flatnonzero(mask)
            per_plugin: list[tuple[str, float, FloatArray]] = list(shape.static_scores)
            for plugin, w in ctx.dynamic_scores:
                kernel = plugin.score_free  # type: ignore[attr-defined]
                per_plugin.append((plugin.NAME, w, kernel(self.free_rows, shape.cap_rows, shape.demand)))
            order = ctx.score_order
            per_plugin.sort(key=lambda x: order.get(x[0], 99))
            total = np.zeros(len(shape.idx))
            for _, w, s in per_plugin:
                total += w * s
            seconds, moved = shape.transfer if shape.transfer is not None else (None, None)
            for j in rows:
                c = int(shape.idx[j])
                feasible.append(
                    ClusterScore(
                        cluster=ctx.names[c],
                        # rounded as the stored form rounds (``stored.py``), so a plan and the
                        # stored decision of the same choice read the same
                        total=float(np.round(total[j], 3)),
                        scores={name: float(np.round(s[j], 3)) for name, _, s in per_plugin},
                        transfer_bytes=float(moved[j]) if moved is not None else 0.0,
                        transfer_seconds=float(np.round(seconds[j], 3)) if seconds is not None else 0.0,
                    )
                )
            feasible.sort(key=lambda cs: (-cs.total, ctx.index[cs.cluster]))
        return Decision(
            job_id=self.job_id,
            attempt=self.attempt,
            status=self.status,
            cluster=self.cluster,
            summary=self.summary(),
            feasible=feasible,
            rejected=self.rejections(),
            created_at=datetime.fromtimestamp(self.t, UTC),
            epoch=self.epoch,
        )


@dataclass
class BatchResult:
    decisions: list[CompactDecision]
    scheduled: int
    victims: list[Victim]
    unplaced: list[Item]
