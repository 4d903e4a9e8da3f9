"""The cycle's order: ``sorted_positions`` (one lexsort over columns, what the batch scheduler
and the replay's baselines sort by) puts jobs in exactly the order of ``sort_key`` below (the
order's definition, a key tuple per job, as the scheduler sorted before), ties included."""

from __future__ import annotations

import numpy as np
import pytest

from controller.scheduler.ordering import (
    ORDER_CONSTRAINED_FIRST,
    ORDER_FIFO,
    ORDER_SJF,
    SORTED_ORDERS,
    age_tier,
    sorted_positions,
)


def sort_key(
    order: str, priority: int, wait_s: float, flexibility: int, share: float, expected_s: float, seq: int
) -> tuple[float, ...]:
    """The sort key of one pending job under ``order`` (smaller goes first)."""
    if order == ORDER_FIFO:
        return (-priority, seq)
    if order == ORDER_SJF:
        return (-priority, expected_s, seq)
    assert order == ORDER_CONSTRAINED_FIRST
    return (-priority, -age_tier(wait_s), flexibility, share, expected_s, seq)


@pytest.mark.parametrize("order", SORTED_ORDERS)
@pytest.mark.parametrize("seed", range(12))
def test_sorted_positions_is_the_order_of_sort_key(order: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    few = seed % 2 == 0  # few distinct values: ties on every field but the sequence
    priority = rng.choice([0, 100, 1000, -1] if few else list(range(-5, 2000)), n).tolist()
    # waits around the age tiers' edges (60 s * (2^k - 1)) and at 0
    edges = [60.0 * (2**k - 1) for k in range(12)]
    wait = [float(rng.choice(edges)) + float(rng.choice([-1e-9, 0.0, 1e-9, 0.5])) for _ in range(n)]
    wait = [max(w, 0.0) if rng.random() < 0.9 else -1.0 for w in wait]
    flexibility = rng.integers(0, 4 if few else 98, n).tolist()
    share = rng.choice([0.0, 0.25, 1 / 3], n).tolist() if few else rng.random(n).tolist()
    expected = rng.choice([60.0, 600.0], n).tolist() if few else rng.exponential(900.0, n).tolist()
    seq = rng.permutation(10 * n)[:n].tolist()
    want = sorted(
        range(n),
        key=lambda i: sort_key(order, priority[i], wait[i], flexibility[i], share[i], expected[i], seq[i]),
    )
    assert sorted_positions(order, priority, wait, flexibility, share, expected, seq) == want


def test_an_unknown_order_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown order"):
        sorted_positions("lifo", [0], [0.0], [1], [0.0], [1.0], [0])
