"""Where the Helm charts of this repository are, as the Pulumi programs should reference them."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CHARTS_DIR = REPO_ROOT / "charts"
POLICIES_DIR = REPO_ROOT / "policies"

AGENT_CHART = "yiwang-agent"
MONITORING_CHART = "yiwang-monitoring"
CONTROLLER_CHART = "yiwang-controller"


def chart_path(chart: str) -> str:
    """The chart's path relative to the working directory (the project directory under Pulumi).

    Relative, so the Helm release inputs are the same on every engineer's machine and in CI
    (``../../charts/yiwang-agent`` from ``infra/province``).
    """
    return os.path.relpath(CHARTS_DIR / chart, Path.cwd())


def policy_files() -> dict[str, str]:
    """The repository's policy files (``policies/*.yaml``), name -> text, for the controller chart's
    ``policies.files``: the controller refuses to start without topology.yaml and failover.yaml."""
    files = {p.name: p.read_text(encoding="utf-8") for p in sorted(POLICIES_DIR.glob("*.yaml"))}
    for required in ("topology.yaml", "failover.yaml"):
        if required not in files:
            raise FileNotFoundError(f"{POLICIES_DIR / required} is missing: run `yiwang policy generate`")
    return files
