"""One renderer: a decision's summary and its structured reasons come from ``decision.render``,
and the reasons served with a decision are exactly the summary's parts."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from controller.scheduler.decision import Decision, render
from tests.scheduler.helpers import TOPO, batch, enqueue, fill, snap
from tests.scheduler.test_batch import burst


def test_render_orders_reasons_by_count_then_plugin_and_names_failover_and_victims() -> None:
    groups = [(("capacity", "insufficient cpu"), 3), (("residency", "core"), 30), (("health", "down"), 3)]
    text, reasons = render(42, groups, "prov-hainan", failover_of="prov-guangdong", victims=[("j1", 10)])
    assert reasons == [("residency", "core", 30), ("capacity", "insufficient cpu", 3), ("health", "down", 3)]
    assert text == (
        "6/42 clusters are available; chose prov-hainan (failover: designated backup of prov-guangdong) "
        "after preempting 1 job(s): j1 (priority 10): "
        "30 residency (core), 3 capacity (insufficient cpu), 3 health (down)."
    )
    assert render(5, [(("capacity", "x"), 0)], None) == ("5/5 clusters are available.", [])


@pytest.mark.parametrize("seed", range(3))
def test_served_reasons_are_the_summarys_parts(seed: int) -> None:
    rng = np.random.default_rng(seed)
    s = snap()
    for name in ("prov-guangdong", "national-primary", "prov-hubei"):
        fill(s, name, float(rng.uniform(0.5, 1.0)))
    bs = batch()
    res = bs.run(enqueue(bs, burst(rng, 200)), s)
    for d in res.decisions:
        full = Decision.model_validate(d.to_body())
        counted = Counter((r.plugin, r.reason) for r in full.rejected)
        assert {(r.plugin, r.reason): r.clusters for r in full.reasons} == counted
        parts = ", ".join(f"{r.clusters} {r.plugin} ({r.reason})" for r in full.reasons)
        if parts:
            assert full.summary.endswith(": " + parts + ".")
        else:  # no failover or preemption here: nothing in parentheses
            assert "(" not in full.summary
        available = len(TOPO.clusters) - sum(r.clusters for r in full.reasons)
        assert full.summary.startswith(f"{available}/{len(TOPO.clusters)} clusters are available")
        assert available == len(full.feasible)
