"""The agents' side of a job's life at scale: status reports per second, and what each agent's
assignment poll costs the leader.

Every placed job comes back to the leader at least twice (Running, then Succeeded or Failed),
so the rate at which the leader takes agents' reports bounds how many jobs a federation finishes,
whatever the scheduler decides per second.

``bench_reports``: a ``Controller`` (no background loops) on SQLite or PostgreSQL with the
embedded federation (1+32+64 clusters), ``jobs`` distinct jobs of the mixed queue
(``controller/sim/mixed.py``, every size a hundredth so that all are placed) submitted, scheduled
and listed per cluster as agents pull them; then, cluster by cluster, the reports an agent sends
(``REPORT_BATCH`` a call, as ``controller/agent.py`` sends them): every job Running, then every
job Succeeded. Timed: each ``apply_reports`` call (one transaction, committed before it
returns); before them, five rounds of every agent listing its assignments
(``assignments_json``: the JSON the route answers an agent's poll with; the leader's side only).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from controller.agent import REPORT_BATCH
from controller.assignments import Assignment, StatusReport
from controller.bench import postgres
from controller.bench.mixed import _seed_store, bench_policies, job_row, world
from controller.sim.mixed import MixedJobs
from controller.store.store import Store


def _listed(ctl: Any, cluster: str) -> list[Assignment]:
    out: list[Assignment] = []
    after = None
    while True:
        page = ctl.assignments(cluster, after=after, limit=1000)
        out += page
        if len(page) < 1000:
            return out
        after = page[-1].job_id


def _poll_seconds(ctl: Any) -> float:
    """One round of every agent's poll: each cluster's whole listing, as JSON, 500 a page (the
    next page's cursor cut from the bytes: what the agent spends parsing is not the leader's)."""
    t0 = time.perf_counter()
    for cluster in ctl.registry.clusters:
        after = None
        while True:
            body = ctl.agents.assignments_json(cluster, after=after, limit=REPORT_BATCH)
            if body.count(b'"job_id":') < REPORT_BATCH:  # the leader's side only: no parsing
                break
            after = body.rsplit(b'"job_id":"', 1)[1].split(b'"', 1)[0].decode()
    return time.perf_counter() - t0


def bench_reports(data_dir: Path, database_url: str | None = None, jobs: int = 20_000) -> dict[str, Any]:
    """Reports per second through ``Controller.apply_reports`` (see the module's docstring)."""
    from controller.service import Controller
    from controller.settings import Settings

    topo, cat, _ = world(data_dir)
    gen = MixedJobs(topo, cat, seed=11)
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f"sqlite:///{tmp}/reports.db"
        store = Store(url)
        _seed_store(store, cat)
        settings = Settings(
            database_url=url,
            policies_dir=bench_policies(Path(tmp), topo),
            background=False,
            holder="bench",
            leader_ttl_s=600.0,
        )
        ctl = Controller(settings, store)
        for name in list(ctl.registry.clusters):
            ctl.heartbeat(name, None)
        for k in range(0, jobs, 5000):
            store.insert_jobs_bulk([job_row(b) for b in gen.bodies(min(5000, jobs - k), tiny=True)])
        while ctl.schedule_pending():
            pass
        by_cluster = {c: _listed(ctl, c) for c in ctl.registry.clusters}
        placed = sum(map(len, by_cluster.values()))
        polls = [_poll_seconds(ctl) for _ in range(5)]  # every agent's listing, as it polls
        per_call: list[float] = []  # seconds per report, per call
        taken = 0
        t_all = 0.0
        for phase in ("Running", "Succeeded"):
            for cluster, listed in by_cluster.items():
                reports = [
                    StatusReport(job_id=a.job_id, attempt=a.attempt, epoch=a.epoch, phase=phase)
                    for a in listed
                ]
                for k in range(0, len(reports), REPORT_BATCH):
                    chunk = reports[k : k + REPORT_BATCH]
                    t0 = time.perf_counter()
                    got = ctl.apply_reports(cluster, chunk)
                    dt = time.perf_counter() - t0
                    t_all += dt
                    if len(chunk) >= 20:  # a rate of a call of a few reports is its overhead
                        per_call.append(dt / len(chunk))
                    taken += sum(1 for x in got if x is None)
        counts = store.count_jobs_by_phase()
        ctl.stop()
        store.close()
    if taken != 2 * placed or counts.get("Succeeded", 0) != placed:
        raise SystemExit(f"reports lost: {taken} of {2 * placed} taken, phases {counts}")
    return {
        "reports_per_s": round(2 * placed / t_all),
        # every cluster's agent listing its assignments once (as each does every 0.5 s), µs per
        # assignment listed: the median of 5 rounds (the entries serialised by the first)
        "poll_us_per_assignment": round(statistics.median(polls) / placed * 1e6, 1),
        "median_call_reports_per_s": round(1 / statistics.median(per_call)),
        "reports": 2 * placed,
        "jobs_placed": placed,
        "batch": REPORT_BATCH,
        "store": "postgresql" if database_url else "sqlite",
    }


def bench_reports_postgresql(data_dir: Path, jobs: int = 20_000) -> dict[str, Any]:
    why = postgres.unavailable()
    if why is not None:
        return {"skipped": why}
    with postgres.throwaway_postgres() as url:
        return bench_reports(data_dir, url, jobs)
