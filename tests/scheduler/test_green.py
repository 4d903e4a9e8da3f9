"""Green placement: delay-tolerant work on general data goes west, latency-sensitive work east."""

from __future__ import annotations

import pytest

from controller.scheduler.framework import CycleState, JobInfo
from controller.scheduler.plugins.green import GreenScore
from tests.scheduler.helpers import DATASETS, TOPO, batch, enqueue, job, snap

WEST = {c.name for c in TOPO.clusters if c.hub_side == "west"}
EAST = {c.name for c in TOPO.clusters if c.hub_side == "east"}


@pytest.mark.parametrize(
    ("tolerant", "inputs", "west", "east"),
    [
        (True, [], 100.0, 0.0),
        (True, ["open-weather"], 100.0, 0.0),
        (False, ["open-weather"], 0.0, 100.0),
        (True, ["gd-tax"], 50.0, 50.0),  # important data: residency decides, green is neutral
    ],
)
def test_green_scores(tolerant: bool, inputs: list[str], west: float, east: float) -> None:
    s = snap()
    spec = job(inputs=inputs, delay_tolerant=tolerant)
    scores = GreenScore().score(
        CycleState(), JobInfo(None, spec, [DATASETS[d] for d in inputs], []), s, s.ready
    )
    for i, name in enumerate(s.names):
        if name in WEST:
            assert scores[i] == west
        elif name in EAST:
            assert scores[i] == east
        else:
            assert scores[i] == 50.0


def test_delay_tolerant_job_goes_west_and_stays_within_residency() -> None:
    bs = batch()
    res = bs.run(
        enqueue(
            bs, [job("anhui", delay_tolerant=True), job("anhui", inputs=["gd-tax"], delay_tolerant=True)]
        ),
        snap(),
    )
    by_id = {d.job_id: d for d in res.decisions}
    free_job, bound = by_id["j00000"], by_id["j00001"]
    assert free_job.cluster in WEST
    assert bound.cluster in {"prov-guangdong", "national-primary", "national-backup"}


def test_latency_sensitive_job_stays_east() -> None:
    bs = batch()
    res = bs.run(enqueue(bs, [job("anhui", delay_tolerant=False)]), snap())
    assert res.decisions[0].cluster in EAST
