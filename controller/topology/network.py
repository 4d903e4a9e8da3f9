"""Network model: path latency and bottleneck bandwidth between every pair of clusters.

Traffic follows the lowest-latency path over the declared links, so two provinces talk through the
national backbone, as the cascaded 1+32+N network does. Transfer time of a data set is the path
latency plus its size over the bottleneck bandwidth (the Iridium/Tetrium-style estimate).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from controller.topology.model import Topology

EARTH_RADIUS_KM = 6371.0
FIBRE_KM_PER_MS = 200.0  # light in fibre covers about 200 km per millisecond
ROUTE_FACTOR = 1.5  # fibre routes are longer than the great circle
BASE_RTT_MS = 1.0  # switching and serialisation on a short link


def great_circle_km(lng1: float, lat1: float, lng2: float, lat2: float) -> float:
    """Haversine distance between two points in kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def rtt_ms_for_distance(km: float) -> float:
    """Round-trip time over a fibre route of the given great-circle distance."""
    return round(BASE_RTT_MS + 2 * ROUTE_FACTOR * km / FIBRE_KM_PER_MS, 2)


class NetworkModel:
    """All-pairs path latency (ms) and bottleneck bandwidth (bytes/s), indexed like topology.clusters."""

    def __init__(self, topology: Topology) -> None:
        self.names = [c.name for c in topology.clusters]
        self.index = {n: i for i, n in enumerate(self.names)}
        n = len(self.names)
        lat = np.full((n, n), np.inf)
        bw = np.zeros((n, n))
        np.fill_diagonal(lat, 0.0)
        np.fill_diagonal(bw, np.inf)
        for link in topology.links:
            i, j = self.index[link.a], self.index[link.b]
            bps = link.bandwidth_gbps * 1e9 / 8
            if link.latency_ms < lat[i, j]:
                lat[i, j] = lat[j, i] = link.latency_ms
                bw[i, j] = bw[j, i] = bps
        # Floyd-Warshall on latency, carrying the bottleneck bandwidth of the chosen path.
        for k in range(n):
            via = lat[:, k : k + 1] + lat[k : k + 1, :]
            better = via < lat
            if better.any():
                lat = np.where(better, via, lat)
                bw = np.where(better, np.minimum(bw[:, k : k + 1], bw[k : k + 1, :]), bw)
        self.latency_ms: npt.NDArray[np.float64] = lat
        self.bandwidth_bps: npt.NDArray[np.float64] = bw

    def transfer_seconds(self, src: int, dst: int, size_bytes: float) -> float:
        if src == dst:
            return 0.0
        return float(self.latency_ms[src, dst] / 1000.0 + size_bytes / self.bandwidth_bps[src, dst])

    def transfer_seconds_to_all(self, sources: list[int], size_bytes: float) -> npt.NDArray[np.float64]:
        """For each destination cluster, the time to fetch the data from its nearest copy."""
        if not sources:
            return np.full(len(self.names), np.inf)
        rows = self.latency_ms[sources] / 1000.0 + size_bytes / self.bandwidth_bps[sources]
        best: npt.NDArray[np.float64] = rows.min(axis=0)
        best[sources] = 0.0
        return best
