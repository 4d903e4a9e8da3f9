"""The embedded federation's first heartbeats: start() returns with every cluster Ready, and an
agent whose first heartbeat fails is tried again without holding back the agents already
answered (they renew on their own schedule meanwhile, so none goes past the grace unrenewed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from controller.agent import Agent
from controller.federation import EmbeddedFederation
from controller.registry import Health
from tests.agents.conftest import GRACE_S
from tests.agents.harness import LiveController

SLOW, FINE = "prov-tianjin", "prov-beijing"
FAILURES = 12  # x 0.2 s between tries: 2.4 s, well past the grace of 1 s


def test_a_failing_first_heartbeat_does_not_hold_back_the_others(
    live: LiveController,
    federation: Callable[..., EmbeddedFederation],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = Agent.heartbeat
    tries: list[int] = []
    renewals: list[int] = []  # the answered agent's heartbeats while the other is being retried

    async def heartbeat(self: Agent, *args: Any, **kw: Any) -> bool:
        if self.cluster == SLOW and len(tries) < FAILURES:
            tries.append(1)
            return False
        if self.cluster == FINE and len(tries) < FAILURES:
            renewals.append(1)
        return await real(self, *args, **kw)

    monkeypatch.setattr(Agent, "heartbeat", heartbeat)
    federation([FINE, SLOW])
    assert len(tries) == FAILURES  # retried, and start() waited for the first success
    assert FAILURES * 0.2 > 2 * GRACE_S
    # Its own loop renewed it meanwhile (every grace / 3); held back, it sent only its first.
    assert len(renewals) >= 3, renewals
    clusters = live.controller.registry.clusters
    assert {c: clusters[c].health for c in (FINE, SLOW)} == {FINE: Health.Ready, SLOW: Health.Ready}
