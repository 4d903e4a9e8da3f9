"""Gang: all replicas on one cluster or none; static fit and node shape."""

from __future__ import annotations

import numpy as np
import pytest

from controller.scheduler.framework import CycleState, JobInfo
from controller.scheduler.plugins.gang import REASON_GANG, REASON_NODE, GangFilter
from tests.scheduler.helpers import TOPO, batch, enqueue, index, job, snap


@pytest.mark.parametrize(
    ("cpu", "replicas", "labels", "rejected"),
    [
        (1.0, 4, {}, None),
        (100.0, 1000, {}, REASON_GANG),  # 100,000 cores: no cluster holds the gang
        (32.0, 2, {"node-cpu": "16"}, REASON_NODE),  # a replica is larger than a node
        (8.0, 2, {"node-cpu": "16", "node-memory-gib": "64"}, None),
    ],
)
def test_gang_filter(cpu: float, replicas: int, labels: dict[str, str], rejected: str | None) -> None:
    s = snap()
    i = index("prov-hubei")
    s.labels[i] = {**s.labels[i], **labels}
    spec = job(cpu=cpu, replicas=replicas)
    res = GangFilter().filter(CycleState(), JobInfo(None, spec, [], []), s)
    got = res.messages[res.codes[i] - 1] if res.codes[i] else None
    assert got == rejected


def test_gang_is_all_or_nothing_in_the_batch() -> None:
    """A gang that fits no cluster's free capacity takes nothing; a smaller job behind it runs."""
    s = snap()
    s.allocated[:] = s.capacity * 0.9
    biggest = float((s.capacity[:, 0] * 0.1).max())
    bs = batch()
    res = bs.run(enqueue(bs, [job(cpu=biggest / 4 + 1, replicas=4), job(cpu=1.0)]), s)
    gang, small = res.decisions
    assert gang.chosen < 0 and small.chosen >= 0
    expected = s.capacity * 0.9
    expected[small.chosen] += small.demand
    assert np.allclose(s.allocated, expected)
    assert "capacity (insufficient cpu)" in gang.to_decision().summary
    assert len(TOPO.clusters) == len(gang.to_decision().rejected)
