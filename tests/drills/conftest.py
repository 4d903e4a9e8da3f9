"""Drill test helpers: a small, fast scenario body that tests tweak."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO

DRILLS = REPO / "policies" / "drills"


def small_scenario(**overrides: Any) -> dict[str, Any]:
    """Three clusters, a handful of short jobs on Hainan, Hainan's agent killed: about 6 s."""
    doc: dict[str, Any] = {
        "name": "small-kill",
        "federation": {
            "clusters": ["national-primary", "national-backup", "prov-hainan"],
            "time_scale": 0.02,
            "poll_interval_s": 0.2,
            "lease_s": 1.5,
            "heartbeat_grace_s": 1.0,
        },
        "load": {
            "datasets": [
                {
                    "id": "hi-open",
                    "owner": "hainan",
                    "classification": "general",
                    "locations": ["prov-hainan"],
                }
            ],
            "jobs": [
                {
                    "name": "hi-general",
                    "tenant": "hainan",
                    "count": 3,
                    "inputs": ["hi-open"],
                    "expected_runtime_s": 150,
                }
            ],
        },
        "timeline": [{"at_s": 0.5, "fault": "kill_agent", "cluster": "prov-hainan"}],
        "budgets": {"detection_s": 5.0, "rto_s": 10.0},
        "settle_timeout_s": 20,
    }
    doc.update(overrides)
    return doc


def write(tmp: Path, doc: dict[str, Any], name: str = "scenario.yaml") -> Path:
    path = tmp / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path
