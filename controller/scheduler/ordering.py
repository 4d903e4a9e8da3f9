"""Queue order inside a scheduling cycle, and ageing: shared by the batch scheduler and by the
trace replay's baselines, so that a comparison can hold the order fixed and vary the placement.

Orders (``sorted_positions``), each after priority:

- ``fifo``: submission order.
- ``sjf``: shortest expected runtime first (the submitter's ``expected_runtime_s``), then FIFO.
- ``constrained-first`` (the default): the age tier (longest-waiting first, see below), then the
  least flexible job (fewest clusters its static filters allow: residency-bound work before work
  that can run anywhere, Tetrium's least-flexible-first), then the tenant's dominant share (DRF),
  then the shortest expected runtime, then FIFO.
- ``drf`` is not a sort: the batch scheduler pops tenants by live dominant share (FIFO inside).

Ageing grows with the wait without bound but slowly: ``age_tier(w) = floor(log2(1 + w / 60 s))``
(0 under a minute, 1 under 3 min, 2 under 7 min, ... 6 at about an hour, 14 at about 11 days).
A job that has waited twice as long (plus a minute) as another goes first whatever its shape,
so a residency-bound job that keeps losing its few clusters to newer work climbs the order; the
logarithm keeps jobs of similar age in the shape/SJF order that makes mean completion time low.
The wait is counted from the first cycle that saw the job (``Ageing``; a new scheduling leader
starts the clocks again, which can only delay a job's climb by its wait so far).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

ORDER_FIFO = "fifo"
ORDER_SJF = "sjf"
ORDER_DRF = "drf"
ORDER_CONSTRAINED_FIRST = "constrained-first"
SORTED_ORDERS = (ORDER_FIFO, ORDER_SJF, ORDER_CONSTRAINED_FIRST)
ORDERS = (*SORTED_ORDERS, ORDER_DRF)
AGE_UNIT_S = 60.0


def age_tier(wait_s: float) -> int:
    """Grows with the wait, one step each time the wait (plus a minute) doubles."""
    if wait_s <= 0:
        return 0
    return int(math.log2(1.0 + wait_s / AGE_UNIT_S))


def sorted_positions(
    order: str,
    priority: Sequence[int],
    wait_s: Sequence[float],
    flexibility: Sequence[int],
    share: Sequence[float],
    expected_s: Sequence[float],
    seq: Sequence[int],
) -> list[int]:
    """The jobs' positions in the cycle's order: under ``order``, the key (smaller first)
    ``fifo``: (-priority, seq); ``sjf``: (-priority, expected_s, seq); ``constrained-first``:
    (-priority, -age_tier(wait_s), flexibility, share, expected_s, seq). The sequence numbers are
    distinct, so the order is total. One ``np.lexsort`` over the columns, not a key tuple built
    and compared per job (tests/scheduler/test_ordering.py holds it to those tuples)."""
    if order not in SORTED_ORDERS:
        raise ValueError(f"unknown order {order!r}; one of {', '.join(SORTED_ORDERS)}")
    keys: list[np.ndarray] = [np.asarray(seq, dtype=np.int64)]  # np.lexsort: the last key is the primary
    if order != ORDER_FIFO:
        keys.append(np.asarray(expected_s, dtype=np.float64))
    if order == ORDER_CONSTRAINED_FIRST:
        tiers = np.negative(np.array([age_tier(w) for w in wait_s], dtype=np.int64))
        keys += [np.asarray(share, dtype=np.float64), np.asarray(flexibility, dtype=np.int64), tiers]
    keys.append(np.negative(np.asarray(priority, dtype=np.int64)))
    out: list[int] = np.lexsort(keys).tolist()
    return out


class Ageing:
    """When each pending job was first seen by a cycle; its wait is ``now`` minus that."""

    def __init__(self) -> None:
        self.since: dict[str, float] = {}

    def wait(self, job_id: str | None, now: float) -> float:
        if job_id is None:
            return 0.0
        return now - self.since.setdefault(job_id, now)

    def forget(self, job_id: str | None) -> None:
        if job_id is not None:
            self.since.pop(job_id, None)

    def trim(self, keep: int) -> None:
        """Forget everything once the table holds far more than the queue (jobs that left the
        queue another way, e.g. cancelled): their clocks restart, which only delays ageing."""
        if len(self.since) > keep:
            self.since.clear()
