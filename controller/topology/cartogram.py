"""A tile-grid cartogram: every province on its own cell of a small grid, placed as close to its
capital's coordinates as the grid allows. No boundary data is involved (so no map review), only
the capitals' longitude and latitude from the topology.

The capitals are scaled into a grid of about 2.25 cells per province, then assigned to distinct
cells so that the total squared distance between each capital and its cell is least (the
assignment problem, solved exactly with the Hungarian algorithm; 32 provinces x 72 cells take a
few milliseconds). Names are sorted first, so the layout is the same on every controller."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CELLS_PER_POINT = 2.25


@dataclass(frozen=True)
class GridLayout:
    rows: int
    cols: int
    cells: dict[str, tuple[int, int]]  # name -> (row, col), row 0 at the north


def grid_size(n: int) -> tuple[int, int]:
    """(rows, cols) for n points: 32 -> 8 x 9."""
    rows = max(1, math.ceil(math.sqrt(2 * n)))
    cols = max(1, math.ceil(CELLS_PER_POINT * n / rows))
    return rows, cols


def assign(cost: np.ndarray) -> list[int]:
    """The column assigned to each row minimising the total cost (rows <= columns); the
    Hungarian algorithm with potentials (Kuhn-Munkres, O(rows^2 x columns))."""
    n, m = cost.shape
    if n > m:
        raise ValueError("more points than cells")
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    match = np.zeros(m + 1, dtype=int)  # cell j (1-based) -> point (1-based), 0 when free
    way = np.zeros(m + 1, dtype=int)
    for i in range(1, n + 1):
        match[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = match[j0]
            free = ~used[1:]
            cur = cost[i0 - 1] - u[i0] - v[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            candidates = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(candidates)) + 1
            delta = candidates[j1 - 1]
            u[match[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if match[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            match[j0] = match[j1]
            j0 = j1
    out = [0] * n
    for j in range(1, m + 1):
        if match[j]:
            out[match[j] - 1] = j - 1
    return out


def grid_cartogram(points: dict[str, tuple[float, float]]) -> GridLayout:
    """Cells for named (longitude, latitude) points."""
    names = sorted(points)
    if not names:
        return GridLayout(0, 0, {})
    rows, cols = grid_size(len(names))
    lng = np.array([points[n][0] for n in names], dtype=np.float64)
    lat = np.array([points[n][1] for n in names], dtype=np.float64)
    span_x = max(lng.max() - lng.min(), 1e-9)
    span_y = max(lat.max() - lat.min(), 1e-9)
    gx = (lng - lng.min()) / span_x * (cols - 1)
    gy = (lat.max() - lat) / span_y * (rows - 1)  # north at row 0
    cell_r, cell_c = np.divmod(np.arange(rows * cols), cols)
    cost = (gx[:, None] - cell_c[None, :]) ** 2 + (gy[:, None] - cell_r[None, :]) ** 2
    chosen = assign(cost)
    return GridLayout(
        rows, cols, {n: (int(cell_r[k]), int(cell_c[k])) for n, k in zip(names, chosen, strict=True)}
    )
