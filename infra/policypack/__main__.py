"""Builds the policy pack; `pulumi up --policy-pack infra/policypack` runs it. Rules: rules.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

from pulumi_policy import PolicyPack

from infra.policypack.rules import ALL_POLICIES

PolicyPack(name="yiwang-compliance", policies=ALL_POLICIES)
