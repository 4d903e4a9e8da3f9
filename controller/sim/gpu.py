"""GPU demand for the replay's GPU workload, from a public GPU trace's distribution.

The Alibaba v2017 batch trace has no GPUs. The GPU workload gives a seeded fraction of its jobs
(``GPU_JOB_FRACTION`` = 0.25, an assumption: the share of GPU analytics in the government
big-data system is not published) a GPU demand drawn from the GPU tasks of Alibaba's
cluster-trace-gpu-v2023 (``openb_pod_list_default.csv``: 8,152 tasks of a production GPU
cluster, 7,064 of them with GPUs, 3,078 of those on a shared GPU; Weng et al., "Beware of
Fragmentation: Scheduling GPU-Sharing Workloads with Fragmentation Gradient Descent", USENIX ATC
2023). ``controller/data/openb_gpu_task_shapes.csv`` holds that table's GPU tasks as
(cpu_milli, gpu_milli, tasks): a task's cores and its GPUs in thousandths (``num_gpu * 1000`` for
whole GPUs, ``gpu_milli`` for a shared one), with how many tasks had that shape.

A GPU job draws one task shape (weighted by its count) and keeps its GPUs-per-core ratio: each
replica asks for ``round(1000 * ratio * cores per replica)`` thousandths of a GPU (at least 1),
so a wide gang of small replicas shares GPUs as the trace's sharing tasks do, and the gang's
GPUs scale with its cores. Ratios in the table: median 0.088 GPU per core, 90th percentile 0.26.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from controller.data import DATA_DIR

GPU_SHAPES_CSV = DATA_DIR / "openb_gpu_task_shapes.csv"
GPU_JOB_FRACTION = 0.25


@dataclass(frozen=True)
class GpuShapes:
    ratio: np.ndarray  # GPUs per core of each shape
    weight: np.ndarray  # probability of each shape

    @classmethod
    def load(cls, path: Path = GPU_SHAPES_CSV) -> GpuShapes:
        ratios, counts = [], []
        with path.open(encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                ratios.append(int(row["gpu_milli"]) / int(row["cpu_milli"]))
                counts.append(int(row["tasks"]))
        w = np.array(counts, dtype=np.float64)
        return cls(np.array(ratios), w / w.sum())


class GpuAssigner:
    """Draws per-replica milli-GPU demands, job after job, from one seeded stream."""

    def __init__(self, fraction: float = GPU_JOB_FRACTION, seed: int = 13, shapes: GpuShapes | None = None):
        self.fraction = fraction
        self.rng = np.random.default_rng(seed)
        self.shapes = shapes or GpuShapes.load()

    def draw(self, cpu_per_replica: float) -> int:
        """Thousandths of a GPU per replica (0: a cpu-only job)."""
        u = self.rng.random()
        k = int(self.rng.choice(len(self.shapes.ratio), p=self.shapes.weight))
        if u >= self.fraction:
            return 0
        return int(min(64_000, max(1, round(1000.0 * self.shapes.ratio[k] * cpu_per_replica))))
