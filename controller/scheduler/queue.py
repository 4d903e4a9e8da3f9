"""The pending queue of the batch cycle, and what preemption sees of running work."""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from controller.scheduler.framework import (
    FloatArray,
)
from controller.scheduler.ordering import (
    ORDER_CONSTRAINED_FIRST as ORDER_CONSTRAINED_FIRST,
)
from controller.scheduler.ordering import ORDER_DRF as ORDER_DRF
from controller.scheduler.quota import QuotaBook
from controller.scheduler.shapes import Shape

IntArray = npt.NDArray[np.intp]


@dataclass(slots=True)
class Running:
    """A Scheduled/Running job as preemption sees it."""

    job_id: str
    cluster: int
    priority: int
    demand: FloatArray
    tenant: str
    attempt: int = 1


Item = tuple[str, int, int, "Shape", float]  # job id, sequence, attempt, shape, runtime estimate


@dataclass(slots=True)
class PendingQueue:
    """Pending jobs as (job id, sequence, attempt, shape, runtime estimate), bucketed by
    (priority, tenant), FIFO inside a bucket. Memory per job is one small tuple plus the id:
    jobs of equal keys share their shape."""

    buckets: dict[tuple[int, str], deque[Item]] = field(default_factory=dict)
    count: int = 0
    seq: int = 0

    def push(
        self,
        job_id: str,
        shape: Shape,
        attempt: int = 1,
        seq: int | None = None,
        runtime: float | None = None,
    ) -> None:
        """``runtime``: the job's own estimate (``expected_runtime_s``); without it, the estimate
        of the shape's first job."""
        if seq is None:
            seq = self.seq
        self.seq = max(self.seq, seq) + 1
        prio = shape.priority if shape.priority is not None else -1
        bucket = self.buckets.get((prio, shape.tenant))
        if bucket is None:
            bucket = self.buckets[(prio, shape.tenant)] = deque()
        bucket.append((job_id, seq, attempt, shape, shape.runtime if runtime is None else runtime))
        self.count += 1

    def __len__(self) -> int:
        return self.count

    def drain_ordered(self, book: QuotaBook, limit: int) -> Iterator[tuple[str, int, int, Shape]]:
        """Pop up to ``limit`` jobs: highest priority first, then the tenant with the lowest
        dominant share *at the moment of popping* (the caller admits as it goes), then FIFO."""
        for item in self.drain(book, limit):
            yield item[:4]

    def drain(self, book: QuotaBook, limit: int) -> Iterator[Item]:
        """``drain_ordered`` with the runtime estimates."""
        heap: list[tuple[int, float, int, str]] = []
        for (prio, tenant), bucket in self.buckets.items():
            if bucket:
                heap.append((-prio, book.dominant_share(tenant), bucket[0][1], tenant))
        heapq.heapify(heap)
        popped = 0
        while heap and popped < limit:
            nprio, share, _, tenant = heapq.heappop(heap)
            current = book.dominant_share(tenant)
            bucket = self.buckets[(-nprio, tenant)]
            if current != share:  # the tenant got work since this entry was pushed
                heapq.heappush(heap, (nprio, current, bucket[0][1], tenant))
                continue
            item = bucket.popleft()
            self.count -= 1
            popped += 1
            yield item
            if bucket:
                heapq.heappush(heap, (nprio, book.dominant_share(tenant), bucket[0][1], tenant))

    def take_all(self) -> list[Item]:
        """Pop every queued job (in no particular order)."""
        out: list[Item] = []
        for bucket in self.buckets.values():
            out.extend(bucket)
            bucket.clear()
        self.count = 0
        return out

    def requeue(self, items: Iterable[Item]) -> None:
        """Put back jobs that were popped but not placed, keeping their place in line. They were
        popped from the buckets' fronts, so they usually go back in front as they are (no
        merge over the whole bucket: the cost does not grow with the queue)."""
        by_bucket: dict[tuple[int, str], list[Item]] = {}
        for it in items:
            shape = it[3]
            prio = shape.priority if shape.priority is not None else -1
            by_bucket.setdefault((prio, shape.tenant), []).append(it)
        for key, its in by_bucket.items():
            bucket = self.buckets.setdefault(key, deque())
            its.sort(key=lambda x: x[1])
            if not bucket or its[-1][1] < bucket[0][1]:
                bucket.extendleft(reversed(its))
            else:
                merged = sorted([*its, *bucket], key=lambda x: x[1])
                bucket.clear()
                bucket.extend(merged)
            self.count += len(its)


@dataclass(slots=True)
class Victim:
    job_id: str
    attempt: int
    cluster: str
    priority: int
    tenant: str
    reason: str
    demand: FloatArray
