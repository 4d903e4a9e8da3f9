"""The policy files (``policies/*.yaml``) read and validated with the scheduler's plugin names.
Above both ``controller.policies`` (the schemas) and ``controller.scheduler`` (the plugins), so
neither imports the other."""

from __future__ import annotations

from pathlib import Path

from controller.policies import PolicySet, read_policy_set
from controller.scheduler.plugins import FILTER_PLUGINS, SCORE_PLUGINS


def load_policy_set(directory: Path) -> PolicySet:
    """Load and validate every policy file; raise InvalidPolicy listing all errors."""
    return read_policy_set(directory, set(FILTER_PLUGINS), set(SCORE_PLUGINS))
