"""Anti-starvation holds, on by default, on a constructed adversarial queue.

One cluster (prov-hainan) is the only legal one for a large gang (0.8 of the cluster) and for a
flood of small jobs (0.3 each, 100 s each, one arriving every 10 s) that keeps less than 0.8
free at all times. Without holds the gang never starts. With the default holds, the bound stated
in ``controller/scheduler/batch.py`` must hold: the hold is taken once the gang has failed
``hold_after`` times and waited ``hold_after_s``; from then on it starts at the latest when the
work running on the cluster at the time of the hold has finished (plus one cycle); at no time is
more held than the held gangs' demand, at most one hold per cluster and ``max_holds`` in all.
"""

from __future__ import annotations

import numpy as np

from controller.scheduler.batch import MAX_HOLDS, BatchScheduler, PendingQueue
from tests.scheduler.helpers import batch, index, job, overcommitted, snap

CYCLE_S = 10.0
SMALL_RUN_S = 100.0
HORIZON_S = 3000.0


def adversarial(bs: BatchScheduler) -> dict[str, float]:
    s = snap()
    h = index("prov-hainan")
    s.allocated[:] = s.capacity  # every other cluster full: the flood has nowhere else to go
    s.allocated[h] = 0.0
    cap = float(s.capacity[h, 0])
    allow = {"allow_clusters": ["prov-hainan"]}
    gang = job("hainan", cpu=cap * 0.8, constraints=allow)
    small = job("hainan", cpu=cap * 0.3, constraints=allow)
    q = PendingQueue()
    ends: list[tuple[float, str, np.ndarray]] = []
    # The cluster starts with three small jobs, staggered, so it is never empty by itself.
    for k in range(3):
        s.allocated[h] += np.array([cap * 0.3, 1.0, 0.0])
        ends.append(((k + 1) * 30.0, f"pre{k}", np.array([cap * 0.3, 1.0, 0.0])))
    q.push("gang", bs.shapes.intern(gang))
    out: dict[str, float] = {"max_held_cpu": 0.0}
    n_small = 0
    t = 0.0
    while t <= HORIZON_S:
        for e in [e for e in ends if e[0] <= t]:
            s.allocated[h] -= e[2]
            ends.remove(e)
        q.push(f"small{n_small:05d}", bs.shapes.intern(small))
        n_small += 1
        res = bs.run(q, s, now=t)
        assert not overcommitted(s)
        held = [d for (c, d, _) in bs.holds.values()]
        assert len(bs.holds) <= bs.max_holds
        assert len({c for (c, _, _) in bs.holds.values()}) == len(bs.holds)  # one per cluster
        out["max_held_cpu"] = max(out["max_held_cpu"], sum(float(d[0]) for d in held))
        if "gang" in bs.holds and "hold_at" not in out:
            out["hold_at"] = t
            out["drain_by"] = max((e[0] for e in ends), default=t)
        for d in res.decisions:
            if d.chosen >= 0 and d.job_id is not None:
                run = 1e9 if d.job_id == "gang" else SMALL_RUN_S
                ends.append((t + run, d.job_id, d.demand.copy()))
                if d.job_id == "gang":
                    out["gang_start"] = t
        t += CYCLE_S
    out["gang_cpu"] = cap * 0.8
    return out


def test_without_holds_the_gang_starves() -> None:
    bs = batch()
    bs.hold_after = None
    out = adversarial(bs)
    assert "gang_start" not in out and "hold_at" not in out


def test_default_holds_start_the_gang_within_the_stated_bound() -> None:
    bs = batch()
    assert bs.hold_after is not None and bs.max_holds == MAX_HOLDS  # on by default
    out = adversarial(bs)
    assert "hold_at" in out and "gang_start" in out
    # Taken after hold_after failures and hold_after_s of waiting (plus one cycle), not before.
    assert bs.hold_after_s <= out["hold_at"] <= bs.hold_after_s + (bs.hold_after + 1) * CYCLE_S
    # Started when the work running at the hold's time had finished, plus one cycle at most.
    assert out["gang_start"] <= out["drain_by"] + CYCLE_S
    # The cost to the others: never more held than the held gang's demand (one hold here).
    assert out["max_held_cpu"] <= out["gang_cpu"] + 1e-9
    assert not bs.holds or "gang" not in bs.holds  # released when the gang started
