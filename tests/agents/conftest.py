"""Fixtures: a live controller with short leases and an embedded federation of real agents."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.executors.base import Executor, ResourceAmounts
from controller.executors.local import LocalExecutor
from controller.federation import EmbeddedFederation
from tests.agents.harness import LiveController, live_controller

LEASE_S = 2.0
GRACE_S = 1.0
CLUSTERS = ["prov-beijing", "prov-tianjin"]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveController]:
    lc = live_controller(tmp_path / "yiwang.db").start()
    lc.set_failover(LEASE_S, GRACE_S)
    try:
        yield lc
    finally:
        lc.stop()


def local_executors(root: Path) -> Callable[[str], Executor]:
    def make(name: str) -> Executor:
        return LocalExecutor(root / name, kill_grace_s=1.0, capacity=ResourceAmounts(64, 256, 0))

    return make


@pytest.fixture
def federation(live: LiveController, tmp_path: Path) -> Iterator[Callable[..., EmbeddedFederation]]:
    started: list[EmbeddedFederation] = []

    def start(
        clusters: list[str] | None = None,
        factory: Callable[[str], Executor] | None = None,
        **options: Any,
    ) -> EmbeddedFederation:
        fed = EmbeddedFederation(
            live.url,
            clusters or CLUSTERS,
            factory or local_executors(tmp_path / "work"),
            poll_interval_s=0.1,
            **options,
        )
        fed.start()
        started.append(fed)
        return fed

    yield start
    for fed in started:
        fed.stop()
