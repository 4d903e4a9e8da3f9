"""The pipeline: snapshot -> filter -> score -> select -> reserve (Karmada generic_scheduler style)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from controller.policies import PlacementPolicy
from controller.scheduler.decision import ClusterScore, Decision, Rejection, summarize
from controller.scheduler.framework import (
    Code,
    CycleState,
    FilterPlugin,
    JobInfo,
    ScorePlugin,
    Snapshot,
)
from controller.scheduler.plugins import FILTER_PLUGINS, SCORE_PLUGINS
from controller.scheduler.plugins.health import HealthFilter
from controller.scheduler.plugins.locality import NAME as LOCALITY
from controller.scheduler.plugins.residency import NAME as RESIDENCY
from controller.scheduler.plugins.residency import ResidencyFilter

HEALTH = HealthFilter.NAME


class Scheduler:
    """Runs the configured plugins in their configured order; deterministic for equal inputs."""

    def __init__(
        self,
        filters: list[FilterPlugin],
        scores: list[tuple[ScorePlugin, float]],
        locality_wait_max_s: float = 0.0,
    ) -> None:
        if not any(f.NAME == RESIDENCY for f in filters):
            # The legal floor does not depend on configuration: a plugin list without the
            # residency filter (refused by the policy's validation; a test or a hand-made
            # scheduler) still gets it, right after the health filter.
            at = 1 if filters and filters[0].NAME == HEALTH else 0
            filters = [*filters[:at], ResidencyFilter(), *filters[at:]]
        self.filters = filters
        self.scores = scores
        self.locality_wait_max_s = locality_wait_max_s  # batch scheduling only (batch.py)

    @classmethod
    def from_policy(cls, policy: PlacementPolicy) -> Scheduler:
        instances: dict[str, object] = {}

        def get(name: str, registry: dict[str, type]) -> object:
            cls_ = registry[name]
            # One instance per plugin class, so a plugin that both filters and scores shares state.
            key = cls_.__qualname__
            if key not in instances:
                instances[key] = cls_()
            return instances[key]

        filters = [get(n, FILTER_PLUGINS) for n in policy.filters]
        scores = [(get(s.name, SCORE_PLUGINS), s.weight) for s in policy.scores]
        return cls(filters, scores, policy.locality_wait_max_s)  # type: ignore[arg-type]

    def decide(self, job: JobInfo, snap: Snapshot, attempt: int = 1, reserve: bool = False) -> Decision:
        """Filter, score and select a cluster for ``job``; with ``reserve`` the snapshot's
        allocation takes the job's demand, so later decisions of the cycle see it."""
        state = CycleState()
        n = snap.size
        feasible = np.ones(n, dtype=bool)
        rejected: list[Rejection] = []
        unresolvable = True
        for plugin in self.filters:
            result = plugin.filter(state, job, snap)
            newly = (result.codes > 0) & feasible
            if newly.any():
                for i in np.flatnonzero(newly):
                    rejected.append(
                        Rejection(
                            cluster=snap.names[i],
                            plugin=plugin.NAME,
                            reason=result.messages[result.codes[i] - 1],
                        )
                    )
                if not result.unresolvable:
                    unresolvable = False
                feasible &= ~newly
        now = datetime.now(UTC)
        if not feasible.any():
            status = Code.UnschedulableAndUnresolvable if unresolvable else Code.Unschedulable
            return Decision(
                job_id=job.id,
                attempt=attempt,
                status=status.value,
                cluster=None,
                summary=summarize(n, rejected, None),
                feasible=[],
                rejected=rejected,
                created_at=now,
            )
        total = np.zeros(n)
        per_plugin: list[tuple[str, np.ndarray]] = []
        for scorer, weight in self.scores:
            s = scorer.score(state, job, snap, feasible)
            per_plugin.append((scorer.NAME, s))
            total += weight * s
        total = np.where(feasible, total, -np.inf)
        chosen = int(np.argmax(total))  # ties go to the first cluster in topology order
        seconds, moved = state.get(LOCALITY, (np.zeros(n), np.zeros(n)))
        feasible_scores = [
            ClusterScore(
                cluster=snap.names[i],
                total=round(float(total[i]), 3),
                scores={name: round(float(s[i]), 3) for name, s in per_plugin},
                transfer_bytes=float(moved[i]),
                transfer_seconds=round(float(seconds[i]), 3),
            )
            for i in np.flatnonzero(feasible)
        ]
        feasible_scores.sort(key=lambda c: (-c.total, snap.index[c.cluster]))
        if reserve:
            snap.allocated[chosen] += job.demand
        return Decision(
            job_id=job.id,
            attempt=attempt,
            status="Scheduled",
            cluster=snap.names[chosen],
            summary=summarize(n, rejected, snap.names[chosen]),
            feasible=feasible_scores,
            rejected=rejected,
            created_at=now,
        )
