"""Registry of the built-in plugins, by name. placement.yaml orders and weights them."""

from __future__ import annotations

from controller.scheduler.framework import FilterPlugin, ScorePlugin
from controller.scheduler.plugins.balance import BalanceScore
from controller.scheduler.plugins.capacity import CapacityFilter
from controller.scheduler.plugins.constraints import ConstraintsPlugin
from controller.scheduler.plugins.gang import GangFilter
from controller.scheduler.plugins.green import GreenScore
from controller.scheduler.plugins.health import HealthFilter
from controller.scheduler.plugins.locality import LocalityScore
from controller.scheduler.plugins.quota import QuotaFilter
from controller.scheduler.plugins.residency import ResidencyFilter

FILTER_PLUGINS: dict[str, type[FilterPlugin]] = {
    HealthFilter.NAME: HealthFilter,
    ConstraintsPlugin.NAME: ConstraintsPlugin,
    ResidencyFilter.NAME: ResidencyFilter,
    QuotaFilter.NAME: QuotaFilter,
    GangFilter.NAME: GangFilter,
    CapacityFilter.NAME: CapacityFilter,
}
SCORE_PLUGINS: dict[str, type[ScorePlugin]] = {
    LocalityScore.NAME: LocalityScore,
    ConstraintsPlugin.NAME: ConstraintsPlugin,
    BalanceScore.NAME: BalanceScore,
    GreenScore.NAME: GreenScore,
}
