"""Fixtures for the Helm chart tests (helpers live in chart_helpers.py)."""

from __future__ import annotations

import pytest
from chart_helpers import find_helm, find_promtool, must_be_present


@pytest.fixture(scope="session")
def helm() -> str:
    path = find_helm()
    if path is None:
        must_be_present("helm", "run `make tools` (extracts helm into .tools/bin)")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    path = find_promtool()
    if path is None:
        must_be_present(
            "promtool", "run `make system` or `apt-get install -y --no-install-recommends prometheus`"
        )
    assert path is not None
    return path
