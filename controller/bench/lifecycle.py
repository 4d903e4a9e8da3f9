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

import json
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


def _poll_seconds(
    ctl: Any, held: dict[tuple[str, str | None], tuple[str, bytes, int]] | None = None
) -> tuple[float, int]:
    """One round of every agent's poll: each cluster's whole listing, as JSON, 500 a page (the
    next page's cursor cut from the bytes: what the agent spends parsing is not the leader's);
    the seconds and the bytes answered. ``held``: each page an agent holds with its ETag and
    its length, by (cluster, cursor), as the round before left them; the tag is sent back as an
    agent does (``If-None-Match``) and a 304 keeps the page."""
    t0 = time.perf_counter()
    sent = 0
    for cluster in ctl.registry.clusters:
        after = None
        while True:
            mine = held.get((cluster, after)) if held is not None else None
            tag, body = ctl.agents.assignments_page(
                cluster, after=after, limit=REPORT_BATCH, if_none_match=mine[0] if mine else None
            )
            if body is None:  # the page held is current, and the agent knows its length
                assert mine is not None
                body, listed = mine[1], mine[2]
            else:
                sent += len(body)
                listed = body.count(b'"job_id":')
            if held is not None:
                held[(cluster, after)] = (tag, body, listed)
            if listed < REPORT_BATCH:  # the leader's side only: no parsing
                break
            after = body.rsplit(b'"job_id":"', 1)[1].split(b'"', 1)[0].decode()
    return time.perf_counter() - t0, sent


def _agent_parse_seconds(ctl: Any) -> float:
    """What an agent spends on its listing when it reads it afresh: every page's JSON parsed
    and each entry validated into an ``Assignment`` (``Agent.fetch_assignments``)."""
    bodies = [ctl.agents.assignments_json(c, limit=REPORT_BATCH) for c in ctl.registry.clusters]
    t0 = time.perf_counter()
    for body in bodies:
        [Assignment.model_validate(a) for a in json.loads(body)]
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
        polls = [_poll_seconds(ctl)[0] for _ in range(5)]  # every agent's listing, as it polls
        # the same rounds as agents poll since the listing has tags: after the first, 304s
        held: dict[tuple[str, str | None], tuple[str, bytes, int]] = {}
        _poll_seconds(ctl, held)
        idle = [_poll_seconds(ctl, held) for _ in range(5)]
        parse = [_agent_parse_seconds(ctl) for _ in range(3)]
        full_bytes = _poll_seconds(ctl)[1]
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
        # the same rounds with each page's tag sent back (nothing changed between them: 304s)
        "idle_poll_us_per_assignment": round(statistics.median(x[0] for x in idle) / placed * 1e6, 2),
        "idle_poll_bytes_per_round": max(x[1] for x in idle),
        "poll_bytes_per_round": full_bytes,
        # the agents' side of a poll without tags: the JSON parsed, each entry validated
        "agent_parse_us_per_assignment": round(statistics.median(parse) / placed * 1e6, 1),
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


def bench_listing_one_cluster(
    database_url: str | None = None, active: int = 10_000, finished: int = 50_000
) -> dict[str, Any]:
    """One cluster's whole listing (``Store.active_on_cluster``, 500 a page, as an agent's poll
    reads it) with ``active`` running attempts among ``finished`` jobs that ran there before:
    the milliseconds a listing takes (the median of 5). The rows are written as their lives left
    them, not through the scheduler (the listing reads only the jobs table)."""
    from sqlalchemy import bindparam, text

    from controller.domain import phases
    from controller.store import schema as t

    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f"sqlite:///{tmp}/listing.db"
        store = Store(url)
        rows = [
            job_row({"name": "j", "tenant": f"t{k % 9}", "inputs": ["ds-a"], "resources": {"cpu": 2.0}})
            for k in range(active + finished)
        ]
        for k in range(0, len(rows), 5000):
            store.insert_jobs_bulk(rows[k : k + 5000])
        every = (active + finished) // active
        # each job's life as the rule table allows it, written in one statement as it ended
        lives = {"Running": ("Scheduled", "Running"), "Succeeded": ("Scheduled", "Running", "Succeeded")}
        for life in lives.values():
            for before, after in zip(("Pending", *life), life, strict=False):
                phases.transition("bench", before, after)
        with store.engine.begin() as conn:
            conn.execute(
                t.jobs.update()
                .where(t.jobs.c.id == bindparam("b_id"))
                .values(phase=bindparam("b_phase"), cluster="prov-heavy", epoch=1),
                [
                    {"b_id": r["id"], "b_phase": "Running" if i % every == 0 else "Succeeded"}
                    for i, r in enumerate(rows)
                ],
            )
        if store.engine.dialect.name == "postgresql":  # as autovacuum leaves a table
            with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE jobs"))

        def listing() -> tuple[float, int]:
            t0 = time.perf_counter()
            n, after = 0, None
            while True:
                page = store.active_on_cluster("prov-heavy", after=after, limit=REPORT_BATCH, with_spec=False)
                n += len(page)
                if len(page) < REPORT_BATCH:
                    return time.perf_counter() - t0, n
                after = page[-1]["id"]

        runs = [listing() for _ in range(5)]
        store.close()
    return {
        "listing_ms": round(statistics.median(x[0] for x in runs) * 1000, 1),
        "listed": runs[0][1],
        "active": active,
        "finished": finished,
        "store": store.engine.dialect.name,
    }


def bench_listing_one_cluster_postgresql() -> dict[str, Any]:
    why = postgres.unavailable()
    if why is not None:
        return {"skipped": why}
    with postgres.throwaway_postgres() as url:
        return bench_listing_one_cluster(url)
