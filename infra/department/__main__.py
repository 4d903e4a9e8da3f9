"""Pulumi program of the department tier: see infra/yiwang_infra/programs.py and docs/infra.md."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: infra, controller

from controller.topology.model import Tier
from infra.yiwang_infra.programs import run

run(Tier.department)
