"""The provinces' tile-grid cartogram: every province on its own cell, as near its capital as the
grid allows (an exact assignment), so the grid reads as the country."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from controller.services.policy_files import load_policy_set
from controller.settings import REPO_POLICIES
from controller.topology.cartogram import assign, grid_cartogram, grid_size
from controller.topology.model import Tier


def provinces() -> dict[str, tuple[float, float]]:
    topo = load_policy_set(REPO_POLICIES).topology
    return {c.name: (c.location.lng, c.location.lat) for c in topo.clusters if c.tier is Tier.province}


def test_the_32_provinces_take_32_cells_of_an_8_by_9_grid() -> None:
    layout = grid_cartogram(provinces())
    assert (layout.rows, layout.cols) == grid_size(32) == (8, 9)
    assert len(layout.cells) == 32 and len(set(layout.cells.values())) == 32
    assert all(0 <= r < 8 and 0 <= c < 9 for r, c in layout.cells.values())


@pytest.mark.parametrize(
    ("a", "relation", "b"),
    [
        ("prov-heilongjiang", "north of", "prov-hainan"),
        ("prov-beijing", "north of", "prov-guangdong"),
        ("prov-guangdong", "north of", "prov-hainan"),
        ("prov-inner-mongolia", "north of", "prov-shaanxi"),
        ("prov-shanghai", "east of", "prov-sichuan"),
        ("prov-zhejiang", "east of", "prov-hunan"),
        ("prov-sichuan", "east of", "prov-xizang"),
        ("prov-heilongjiang", "east of", "prov-xinjiang"),
    ],
)
def test_the_grid_keeps_the_country_s_shape(a: str, relation: str, b: str) -> None:
    cells = grid_cartogram(provinces()).cells
    if relation == "north of":
        assert cells[a][0] < cells[b][0]
    else:
        assert cells[a][1] > cells[b][1]


def test_neighbours_stay_near_and_the_layout_is_the_same_every_time() -> None:
    pts = provinces()
    cells = grid_cartogram(pts).cells
    for a, b in (
        ("prov-beijing", "prov-tianjin"),
        ("prov-shanghai", "prov-zhejiang"),
        ("prov-xinjiang", "prov-xpcc"),
    ):
        (r1, c1), (r2, c2) = cells[a], cells[b]
        assert max(abs(r1 - r2), abs(c1 - c2)) == 1, (a, b)
    reversed_input = dict(reversed(list(pts.items())))
    assert grid_cartogram(reversed_input).cells == cells


def test_the_assignment_is_optimal() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        n = int(rng.integers(1, 6))
        m = int(rng.integers(n, 7))
        cost = rng.random((n, m))
        got = assign(cost)
        assert len(set(got)) == n
        best = min(sum(cost[i][p[i]] for i in range(n)) for p in itertools.permutations(range(m), n))
        assert sum(cost[i][got[i]] for i in range(n)) == pytest.approx(best)
    with pytest.raises(ValueError):
        assign(np.zeros((3, 2)))


def test_small_and_empty_inputs() -> None:
    assert grid_cartogram({}).cells == {}
    one = grid_cartogram({"only": (100.0, 30.0)})
    assert one.cells == {"only": (0, 0)}
