"""Jobs from the Alibaba cluster-trace-v2017 batch_task table.

A job is the group of tasks with one ``job_id``; its submit time is its earliest task's create
time and it ends with its latest task (``task_end_time``). Tasks without cpu/memory requests or
with ``end <= create`` (never ran) are dropped; a job with no task left is dropped.

Machine assumed for the normalised memory: 64 cores and 128 GiB. cluster-trace-v2017 machines
have 64 cores; the trace normalises memory to one machine without giving its size, and 128 GiB
(2 GiB per core) keeps the trace's memory below the platform's 4 GiB per core, so cpu sets the
load as it did in the original cluster. ``cpu 100`` is one core.

Gang model: a job runs as one gang of identical replicas for its whole span. The per-replica
request is that of its largest task (by core-seconds); the replica count is the job's average
parallelism (its tasks' core-seconds over its span, divided by the per-replica cores), so the
job's total work is conserved. Gangs wider than ``max_gang_cores`` (a few giant jobs) are
narrowed to that width and stretched in time, again conserving work, so every job fits in one
cluster of the scaled federation.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

MACHINE_CORES = 64
MACHINE_MEMORY_GIB = 128.0
MAX_GANG_CORES = 1024.0


@dataclass(frozen=True, slots=True)
class TraceJob:
    job_id: str
    submit: float  # seconds from the trace start (shifted so the first job arrives at 0)
    duration: float
    replicas: int
    cpu: float  # cores per replica
    memory_gib: float  # per replica

    @property
    def cores(self) -> float:
        return self.cpu * self.replicas


def load_trace(
    path: Path, limit: int | None = None, max_gang_cores: float = MAX_GANG_CORES
) -> list[TraceJob]:
    tasks: dict[str, list[tuple[float, float, int, float, float]]] = {}
    with path.open(encoding="utf-8") as fh:
        reader = csv.reader(fh)
        next(reader)
        for row in reader:
            if len(row) < 8 or not row[0] or not row[1] or not row[6] or not row[7]:
                continue
            create, end = float(row[0]), float(row[1])
            if end <= create:
                continue
            tasks.setdefault(row[2].strip(), []).append(
                (create, end, max(1, int(row[4])), float(row[6]) / 100.0, float(row[7]) * MACHINE_MEMORY_GIB)
            )
    jobs: list[TraceJob] = []
    for job_id, ts in tasks.items():
        submit = min(t[0] for t in ts)
        span = max(t[1] for t in ts) - submit
        work = sum(t[2] * t[3] * (t[1] - t[0]) for t in ts)
        big = max(ts, key=lambda t: t[2] * t[3] * (t[1] - t[0]))
        cpu = max(big[3], 0.05)
        mem = max(big[4], 0.05)
        width = work / span / cpu
        replicas = max(1, round(width))
        duration = span
        if replicas * cpu > max_gang_cores:
            replicas = max(1, math.floor(max_gang_cores / cpu))
        duration = max(1.0, work / (replicas * cpu))
        jobs.append(TraceJob(job_id, submit, duration, replicas, round(cpu, 3), round(mem, 3)))
    jobs.sort(key=lambda j: (j.submit, j.job_id))
    if limit is not None:
        jobs = jobs[:limit]
    if jobs:
        t0 = jobs[0].submit
        jobs = [TraceJob(j.job_id, j.submit - t0, j.duration, j.replicas, j.cpu, j.memory_gib) for j in jobs]
    return jobs
