"""The configured plugins, in their configured order, that the one pipeline runs (``pipeline.py``,
``batch.py``): snapshot -> filter -> score -> select -> reserve (Karmada generic_scheduler style)."""

from __future__ import annotations

from controller.policies import PlacementPolicy
from controller.scheduler.framework import (
    FilterPlugin,
    ScorePlugin,
)
from controller.scheduler.plugins import FILTER_PLUGINS, SCORE_PLUGINS
from controller.scheduler.plugins.health import HealthFilter
from controller.scheduler.plugins.residency import NAME as RESIDENCY
from controller.scheduler.plugins.residency import ResidencyFilter

HEALTH = HealthFilter.NAME


class Scheduler:
    """The ordered filters and weighted scores of the placement policy; ``pipeline.decide`` and
    ``BatchScheduler`` run them (deterministic for equal inputs)."""

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
        self.locality_wait_max_s = locality_wait_max_s  # the locality wait step (batch.py)

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
