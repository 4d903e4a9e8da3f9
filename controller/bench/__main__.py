"""``make bench``: scheduler throughput, API throughput, pending-queue memory, trace replay.

Writes reports/bench.json and reports/bench.md. See docs/benchmarks.md for the method.

Why one module of this length: the parts of ``make bench`` and the report they make together; the
mixed-queue benchmarks are in ``bench/mixed.py``, PostgreSQL's set-up in ``bench/postgres.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from controller.bench import lifecycle, mixed, postgres
from controller.jobs import JobCreate, Resources
from controller.live import LiveController, free_port
from controller.policies import QuotaPolicy, ResidencyPolicy
from controller.scheduler.batch import BatchScheduler
from controller.scheduler.ordering import SORTED_ORDERS
from controller.scheduler.queue import PendingQueue
from controller.scheduler.scheduler import Scheduler
from controller.sim.federation import ALL_PLUGINS, DEFAULT_DATA_DIR, federation, snapshot_of
from controller.sim.workload import InputAssigner, make_catalogue
from controller.store import Store
from controller.topology.network import NetworkModel


def templates(n: int, seed: int, data_dir: Path) -> tuple[Any, Any, list[JobCreate]]:
    topo = federation(data_dir, ministries=64)
    cat = make_catalogue(topo)
    assign = InputAssigner(cat, seed)
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        tenant, inputs, tolerant = assign.draw()
        out.append(
            JobCreate(
                name=f"t{k}",
                tenant=tenant,
                inputs=inputs,
                delay_tolerant=tolerant,
                resources=Resources(cpu=float(rng.integers(1, 9)), memory_gib=float(rng.integers(2, 33))),
                replicas=int(rng.integers(1, 5)),
            )
        )
    return topo, cat, out


def bench_scheduler_templated(
    data_dir: Path, runs: int = 7, batch: int = 10_000, n_templates: int = 500
) -> dict[str, Any]:
    """The first benchmark, kept for history: decisions per second of the batch loop with jobs
    drawn from ``n_templates`` recurring templates, the shape cache kept across batches (so the
    timed batches reuse the static results) and no stored decision in the timed section."""
    topo, cat, tpl = templates(n_templates, 1, data_dir)
    net = NetworkModel(topo)
    residency = ResidencyPolicy()
    quota = QuotaPolicy()  # no tenant limits: every job is admitted, the quota check still runs
    bs = BatchScheduler(Scheduler.from_policy(ALL_PLUGINS), quota)
    rng = np.random.default_rng(2)
    rates, cold, scheduled = [], 0.0, []
    for run in range(runs + 1):
        snap = snapshot_of(topo, net, datasets=cat.datasets, residency=residency)
        queue = PendingQueue()
        for i in range(batch):
            queue.push(f"r{run}-{i}", bs.shapes.intern(tpl[int(rng.integers(len(tpl)))]))
        t0 = time.perf_counter()
        result = bs.run(queue, snap, limit=batch, running={})
        dt = time.perf_counter() - t0
        over = (snap.allocated > snap.capacity + 1e-6).any()
        if over:
            raise SystemExit("overcommitted a cluster: the batch loop is broken")
        if run == 0:
            cold = batch / dt
        else:
            rates.append(batch / dt)
        scheduled.append(result.scheduled)
    # The full explained Decision, built on demand for a sample.
    sample = result.decisions[:500]
    t0 = time.perf_counter()
    for d in sample:
        d.to_body()
    body_us = (time.perf_counter() - t0) / len(sample) * 1e6
    return {
        "decisions_per_s": round(statistics.median(rates)),
        "runs": [round(r) for r in rates],
        "cold_first_batch_decisions_per_s": round(cold),
        "batch": batch,
        "clusters": len(topo.clusters),
        "job_templates": n_templates,
        "scheduled_per_batch": scheduled,
        "compact_to_full_body_us": round(body_us, 1),
        "plugins": {"filters": ALL_PLUGINS.filters, "scores": [s.name for s in ALL_PLUGINS.scores]},
    }


MEMORY_CHILD = """
import resource, sys, json
import numpy as np
from controller.bench.__main__ import templates
from controller.scheduler.queue import PendingQueue
from controller.scheduler.shapes import ShapeTable
from pathlib import Path
topo, cat, tpl = templates(2000, 3, Path(sys.argv[2]))
shapes = ShapeTable()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
q = PendingQueue()
rng = np.random.default_rng(4)
picks = rng.integers(len(tpl), size=int(sys.argv[1]))
for i, k in enumerate(picks):
    q.push(f"{i:014x}{i:08x}", shapes.intern(tpl[int(k)]))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"pending": len(q), "rss_before_kib": before, "peak_rss_kib": after}))
"""


def bench_memory_templated(data_dir: Path, n: int = 1_000_000) -> dict[str, Any]:
    """The first memory benchmark, kept for history: 1,000,000 pending jobs of 2,000 shapes."""
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, str(n), str(data_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        "pending_jobs": r["pending"],
        "peak_rss_mib": round(r["peak_rss_kib"] / 1024, 1),
        "queue_only_mib": round((r["peak_rss_kib"] - r["rss_before_kib"]) / 1024, 1),
        "structure": "PendingQueue: (job id, seq, attempt, shared Shape) per job, 2,000 shapes",
    }


async def _client(
    port: int, items: list[tuple[bytes, bytes]], deadline: float, counts: list[int], errors: list[bytes]
) -> None:
    """POST each (body, extra header lines) on one keep-alive connection until ``deadline``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for body, extra in items:
            if time.perf_counter() > deadline:
                return
            writer.write(
                b"POST /v1/jobs HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                + extra
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            status, answer = await _read_response(reader)
            ok = status in (200, 201)
            counts[0 if ok else 1] += 1
            if not ok and len(errors) < 5:
                errors.append(answer[:300])
    finally:
        writer.close()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 response on a keep-alive connection: (status, body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return int(head.split(b" ", 2)[1]), await reader.readexactly(length)


async def _request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str, path: str, extra: bytes = b""
) -> bytes:
    writer.write(
        f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: 0\r\n".encode() + extra + b"\r\n"
    )
    await writer.drain()
    return (await _read_response(reader))[1]


async def _heartbeats(port: int, stop: asyncio.Event, extra: bytes = b"") -> None:
    """Keep every cluster Ready, as the agents would (every 3 s; the grace period is 15 s)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        names = [
            c["name"]
            for c in json.loads(await _request(reader, writer, "GET", "/v1/clusters", extra))["items"]
        ]
        while not stop.is_set():
            for name in names:
                await _request(reader, writer, "POST", f"/v1/agents/{name}/heartbeat", extra)
            try:
                await asyncio.wait_for(stop.wait(), 3.0)
            except TimeoutError:
                pass
    finally:
        writer.close()


def templated_bodies(n: int, clients: int) -> list[list[tuple[bytes, bytes]]]:
    """The first API benchmark's jobs: identical but for the name (0.01 cpu, one tenant, no
    inputs), no token (open dev mode)."""
    per = n // clients
    return [
        [
            (
                json.dumps(
                    {
                        "name": f"b{c}-{i}",
                        "tenant": "guangdong",
                        "resources": {"cpu": 0.01, "memory_gib": 0.01},
                    }
                ).encode(),
                b"",
            )
            for i in range(per)
        ]
        for c in range(clients)
    ]


async def _drive(
    ports: list[int],
    bodies: list[list[tuple[bytes, bytes]]],
    seconds: float,
    admin: bytes = b"",
    after: Any = None,
) -> tuple[int, int, float, list[bytes]]:
    """One keep-alive connection per list of ``bodies``, spread round-robin over ``ports`` (the
    API replicas, as a Kubernetes Service spreads connections); heartbeats go to the first and
    go on while ``after`` (a blocking callable, run in a thread) waits for the scheduler."""
    counts = [0, 0]
    errors: list[bytes] = []
    stop = asyncio.Event()
    beats = asyncio.create_task(_heartbeats(ports[0], stop, admin))
    await asyncio.sleep(1.0)  # the first round of heartbeats: every cluster Ready
    t0 = time.perf_counter()
    await asyncio.gather(
        *[_client(ports[c % len(ports)], b, t0 + seconds, counts, errors) for c, b in enumerate(bodies)]
    )
    dt = time.perf_counter() - t0
    if after is not None:
        await asyncio.to_thread(after)
    stop.set()
    await beats
    return counts[0], counts[1], dt, errors


ADMIN_TOKEN = "bench-admin-token-0123456789"


def tenant_world(
    url: str, n: int, clients: int, policies: Path, seed: int = 13, keyed: bool = False
) -> list[list[tuple[bytes, bytes]]]:
    """Prepare a tenant-token run before the servers start: the replay's data-set catalogue on
    the shipped topology, a tenant token per tenant, and an approved grant for every (tenant,
    foreign data set) pair the drawn jobs read, in the database; in ``policies``, the shipped
    policies with delay scheduling off (``locality_wait_max_s: 0``: a job waiting up to 300 s
    for the cluster holding its inputs is the policy, not throughput, and "every job scheduled"
    is the measure). Returns each client's (body, header) list: distinct jobs
    (controller/sim/mixed.py, sizes a hundredth so that all fit at once), each sent with its
    tenant's token and, ``keyed``, an Idempotency-Key of its own (as a client that retries
    safely sends it: the keyed write path, each key looked up before its job is created)."""
    from sqlalchemy import insert

    from controller.jobs import JobCreate
    from controller.security import BOOTSTRAP_ADMIN, Security, TokenCreate
    from controller.services.policy_files import load_policy_set
    from controller.settings import REPO_POLICIES, Settings
    from controller.sim.mixed import MixedJobs
    from controller.store import schema as t
    from controller.store.store import new_job_id, now

    shutil.copytree(REPO_POLICIES, policies, ignore=shutil.ignore_patterns("drills"))
    placement = policies / "placement.yaml"
    placement.write_text(placement.read_text().replace("locality_wait_max_s: 300", "locality_wait_max_s: 0"))
    topo = load_policy_set(policies).topology
    cat = make_catalogue(topo)
    store = Store(url)
    at = now()
    sec = Security(store, Settings(database_url=url, admin_token=ADMIN_TOKEN))
    bodies = MixedJobs(topo, cat, seed).bodies(n, tiny=True)
    tokens = {
        tenant: sec.issue(BOOTSTRAP_ADMIN, TokenCreate(role="tenant", tenant=tenant)).token
        for tenant in sorted({b["tenant"] for b in bodies})
    }
    pairs = sorted(
        {(b["tenant"], d) for b in bodies for d in b["inputs"] if cat.datasets[d].owner != b["tenant"]}
    )
    with store.tx() as conn:
        conn.execute(
            insert(t.datasets),
            [{**d.model_dump(mode="json"), "created_at": at} for d in cat.datasets.values()],
        )
        for k in range(0, len(pairs), 5000):
            conn.execute(
                insert(t.dataset_grants),
                [
                    {
                        "id": new_job_id(),
                        "dataset_id": d,
                        "tenant": tenant,
                        "status": "approved",
                        "reason": "bench",
                        "requested_by": "bench",
                        "requested_at": at,
                        "decided_by": "bench",
                        "decided_at": at,
                    }
                    for tenant, d in pairs[k : k + 5000]
                ],
            )
    store.close()
    for b in bodies[:100]:
        JobCreate.model_validate(b)
    per = n // clients
    return [
        [
            (
                json.dumps(b).encode(),
                f"Authorization: Bearer {tokens[b['tenant']]}\r\n".encode()
                + (f"Idempotency-Key: bench-{c}-{i}\r\n".encode() if keyed else b""),
            )
            for i, b in enumerate(bodies[c * per : (c + 1) * per])
        ]
        for c in range(clients)
    ]


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_api(
    n: int = 80_000,
    clients: int = 128,
    seconds: float = 20.0,
    scheduling: bool = True,
    split: bool = True,
    api_replicas: int = 1,
    database_url: str | None = None,
    tenants: bool = False,
    keyed: bool = False,
) -> dict[str, Any]:
    """Durable submissions per second through POST /v1/jobs on real uvicorn processes (SQLite,
    WAL, synchronous=FULL), with every job also scheduled.

    ``split`` (the production layout, docs/design-notes.md): an API process (role=api) takes
    the submissions and the heartbeats, and the scheduling leader (role=all), a second process
    on the same database, places them; ``split=False``: one process does both.
    ``scheduling=False``: one process with its scheduling loop off (ingest alone).
    ``tenants``: distinct jobs with inputs, each sent with its tenant's token (grants checked;
    ``tenant_world``; ``keyed``: each with an Idempotency-Key too); otherwise the first
    benchmark's identical jobs in open dev mode."""
    api_ports = [free_port() for _ in range(api_replicas if split else 1)]
    load_before = os.getloadavg()[0]  # the shared VM: what else ran meanwhile, reported beside the rate
    with tempfile.TemporaryDirectory() as tmp:
        base = {
            **os.environ,
            "YIWANG_DATABASE_URL": database_url or f"sqlite:///{tmp}/bench.db",
            "YIWANG_LOOP_INTERVAL_S": "0.2",
        }
        admin = b""
        if tenants:
            base["YIWANG_ADMIN_TOKEN"] = ADMIN_TOKEN
            admin = f"Authorization: Bearer {ADMIN_TOKEN}\r\n".encode()
            base["YIWANG_POLICIES_DIR"] = f"{tmp}/policies"
            bodies = tenant_world(
                base["YIWANG_DATABASE_URL"], n, clients, Path(tmp) / "policies", keyed=keyed
            )
        else:
            bodies = templated_bodies(n, clients)
        servers: list[LiveController] = []
        try:
            if split:
                servers.append(LiveController(process=True, env=base, holder="leader").start())
                for k, port in enumerate(api_ports):
                    servers.append(
                        LiveController(
                            port=port, process=True, env=base, role="api", holder=f"api-{k}"
                        ).start()
                    )
            else:
                servers.append(
                    LiveController(port=api_ports[0], process=True, env=base, background=scheduling).start()
                )
            cpu0 = [_cpu_seconds(s.pid) for s in servers]
            cpu: list[float] = []
            waited = {"pending": -1, "seconds": 0.0}

            def wait_scheduled() -> None:
                """Wait (bounded) until the scheduler has placed what was submitted (the
                clusters kept Ready meanwhile)."""
                cpu.extend(
                    round((_cpu_seconds(s.pid) - c) / max(time.perf_counter() - t_drive, 1e-9), 2)
                    for s, c in zip(servers, cpu0, strict=True)
                )
                store = Store(base["YIWANG_DATABASE_URL"], migrate=False)
                t_sched = time.perf_counter()
                while scheduling and time.perf_counter() - t_sched < 60:
                    waited["pending"] = store.count_jobs_by_phase().get("Pending", 0)
                    if waited["pending"] == 0:
                        break
                    time.sleep(0.25)
                store.close()
                waited["seconds"] = time.perf_counter() - t_sched

            t_drive = time.perf_counter() + 1.0  # _drive waits a second for the first heartbeats
            ok, bad, dt, errors = asyncio.run(_drive(api_ports, bodies, seconds, admin, wait_scheduled))
            pending, sched_dt = int(waited["pending"]), float(waited["seconds"])
        finally:
            for server in reversed(servers):
                server.stop(timeout_s=30)
    return {
        "jobs_per_s": round(ok / dt, 1),
        "submitted": ok,
        "errors": bad,
        "error_samples": [e.decode(errors="replace") for e in errors],
        "seconds": round(dt, 2),
        "jobs": "distinct, with inputs, tenant tokens, grants checked"
        + (", an Idempotency-Key each" if keyed else "")
        if tenants
        else "identical, open dev mode",
        "clients": clients,
        "database": "postgresql" if database_url and database_url.startswith("postgresql") else "sqlite",
        "layout": ("api + scheduler processes" if split else "one process") if scheduling else "ingest only",
        "api_replicas": len(api_ports),
        "cpu_cores_used": dict(
            zip(
                (["scheduler", *[f"api-{k}" for k in range(len(api_ports))]] if split else ["server"]),
                cpu,
                strict=True,
            )
        ),
        # submissions per CPU-second of the API process(es): what an API core takes, whatever
        # else the shared VM runs meanwhile
        "jobs_per_api_cpu_s": round(ok / dt / max(sum(cpu[1:]) if split else cpu[0], 1e-9), 1)
        if cpu
        else None,
        "pending_after_submit_s": round(sched_dt, 2),
        "pending_left": pending,
        "scheduled_per_s_end_to_end": round(ok / (dt + sched_dt), 1) if pending == 0 else None,
        "scheduling": scheduling,
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # before, after
    }


def bench_api_median(runs: int = 3, **kw: Any) -> dict[str, Any]:
    """``bench_api(**kw)`` ``runs`` times: the run with the median accepted rate, plus every
    run's accepted and end-to-end rates (this VM moves by ±30 %)."""
    results = [bench_api(**kw) for _ in range(runs)]
    ordered = sorted(results, key=lambda r: r["jobs_per_s"])
    median = dict(ordered[len(ordered) // 2])
    median["runs"] = [r["jobs_per_s"] for r in results]
    median["runs_end_to_end"] = [r["scheduled_per_s_end_to_end"] for r in results]
    return median


def bench_api_postgresql(**kw: Any) -> dict[str, Any]:
    """The split layout on a throwaway PostgreSQL 15 (fsync on) instead of SQLite."""
    why = postgres.unavailable()
    if why is not None:
        return {"skipped": why}
    with postgres.throwaway_postgres() as url:
        return bench_api(database_url=url, **kw)


def bench_replay(
    trace: Path | None,
    data_dir: Path,
    limit: int | None,
    workloads: list[str] | None = None,
    loads: list[float] | None = None,
    orders: list[str] | None = None,
    plan: bool = False,
) -> dict[str, Any]:
    """Policy x order x load (x workload) on the trace replay (controller/sim/report.py);
    ``plan``: every pool of clusters bounded by the load too (``replay.setup(plan=True)``)."""
    from controller.sim.replay import LOADS
    from controller.sim.report import run_matrix

    return run_matrix(
        workloads=workloads or ["gpu"],
        loads=loads or list(LOADS),
        orders=orders or list(SORTED_ORDERS),
        trace=trace or data_dir / "alibaba_v2017_batch_task.csv",
        limit=limit,
        progress=lambda line: print("replay", line, flush=True),
        plan=plan,
    )


def _api_line(name: str, a: dict[str, Any]) -> str:
    if "skipped" in a:
        return f"- {name}: skipped ({a['skipped']})"
    runs = f"runs {a['runs']}; " if "runs" in a else ""
    return (
        f"- {name}: **{a['jobs_per_s']}** durable submissions/s ({runs}{a['jobs']}; {a['database']}, "
        f"{a['layout']}, {a['api_replicas']} API replica(s), {a['clients']} clients; errors {a['errors']}; "
        f"end to end {a['scheduled_per_s_end_to_end']}/s)"
    )


def _reports_line(name: str, r: dict[str, Any]) -> str:
    return (
        f"- agents.reports_per_s on {name} (status reports through apply_reports, "
        f"{r['batch']} a call, {r['reports']:,} reports of {r['jobs_placed']:,} mixed jobs): "
        f"**{r['reports_per_s']}** (median call {r['median_call_reports_per_s']}/s); an agent's poll "
        f"{r.get('poll_us_per_assignment')} µs per assignment listed, "
        f"{r.get('idle_poll_us_per_assignment')} with the pages' tags sent back (304s: "
        f"{r.get('idle_poll_bytes_per_round'):,} bytes a round of every agent's poll against "
        f"{r.get('poll_bytes_per_round'):,}); the agent's side of a listing read afresh "
        f"{r.get('agent_parse_us_per_assignment')} µs per assignment"
    )


def _listing_line(name: str, r: dict[str, Any]) -> str:
    return (
        f"- agents.listing_ms on {name} (one cluster's whole listing, {r['active']:,} running "
        f"attempts among {r['finished']:,} finished jobs, 500 a page): **{r['listing_ms']}**"
    )


def summary_md(report: dict[str, Any]) -> str:
    lines = [
        "# Benchmark summary",
        "",
        f"Machine: {report['machine']}",
        f"Python: {report.get('python', '?')}",
        "",
    ]
    if "scheduler" in report:
        s = report["scheduler"]
        lines += [
            f"- scheduler.decisions_per_s (every job distinct, decisions stored): **{s['decisions_per_s']}** "
            f"(median of {len(s['runs'])} batches of {s['batch']}, {s['clusters']} clusters; p99 batch "
            f"{s['decisions_per_s_p99_batch_ms']} ms; cold first batch {s['cold_first_batch_decisions_per_s']}; "
            f"µs per decision {s['us_per_decision']}; with the rest of the cycle's writes "
            f"{s['with_rest_of_cycle_writes_decisions_per_s']}/s)",
        ]
    if "scheduler_shipped" in report:
        s = report["scheduler_shipped"]
        lines.append(
            f"- the same under the shipped policies (tenant quotas, locality wait "
            f"{s['locality_wait_max_s']:g} s): {s['decisions_per_s']} (µs per decision {s['us_per_decision']})"
        )
    if "scheduler_templated" in report:
        s = report["scheduler_templated"]
        lines.append(
            f"- scheduler.decisions_per_s_templated (500 templates, no stored decision): {s['decisions_per_s']}"
        )
    if "scheduler_scaling" in report:
        s = report["scheduler_scaling"]
        per = ", ".join(f"{k}: {v['us_per_decision']} µs" for k, v in s["pending"].items())
        lines.append(
            f"- production cycle, time per decision by jobs pending: {per} (max/min {s['max_over_min']})"
        )
    if "scheduler_saturated" in report:
        s = report["scheduler_saturated"]
        lines.append(
            f"- a cycle of {s['batch']:,} jobs in a saturated federation ({s['placed_jobs']:,} placed, each a "
            f"preemption candidate): {s['cycle_ms']} ms (median; {s['without_candidates_ms_median']} ms "
            f"without candidates); victims per cycle {s['victims_per_cycle']}"
        )
    if "memory" in report:
        m = report["memory"]
        d = m.get("decisions", {})
        if m.get("after_10m_decisions_mib") is None:
            tail = f"not reached within --memory-seconds (points: {d.get('points')})"
        else:
            if m.get("after_10m_measured"):
                how = "measured"
            else:
                lo, hi = d.get("fit_span", [0, 0])
                how = (
                    f"not measured: the bound stopped the run at {d.get('decisions', 0):,} decisions; a line"
                    f" through {d.get('fit_points')} points from {lo:,} to {hi:,} decisions,"
                    f" {d.get('after_10m_band_mib')} MiB at two standard errors; the runs measured to 10M"
                    " grew less and less as the bounded caches filled, so a line overstates the growth"
                )
            band = m.get("ratio_10m_to_1m_band")
            tail = (
                f"memory.after_1m_decisions_mib {m.get('after_1m_decisions_mib')}, "
                f"memory.after_10m_decisions_mib **{m.get('after_10m_decisions_mib')}** ({how}; "
                f"ratio {m.get('ratio_10m_to_1m')}{f', {band[0]}–{band[1]}' if band else ''})"
            )
        lines.append(f"- memory.pending_1m_distinct_mib: **{m.get('pending_1m_distinct_mib')}**; {tail}")
    if "memory_templated" in report:
        lines.append(
            f"- 1,000,000 pending jobs of 2,000 templates: peak RSS {report['memory_templated']['peak_rss_mib']} MiB"
        )
    for key, name in (
        ("api", "api.jobs_per_s (tenant tokens, distinct jobs with inputs, grants checked; SQLite)"),
        ("api_postgresql", "api.jobs_per_s on PostgreSQL (same jobs)"),
        ("api_keyed", "api.jobs_per_s_keyed (the same, each with an Idempotency-Key; SQLite)"),
        ("api_open", "api.jobs_per_s_open (open dev mode, identical jobs; SQLite)"),
        ("api_one_process", "api, one process doing both (open mode)"),
        ("api_ingest_only", "api ingest alone (open mode, scheduling loop off)"),
    ):
        if key in report:
            lines.append(_api_line(name, report[key]))
    agents_parts = (
        ("reports", "SQLite", "reports_per_s", _reports_line),
        ("reports_postgresql", "PostgreSQL", "reports_per_s", _reports_line),
        ("listing", "SQLite", "listing_ms", _listing_line),
        ("listing_postgresql", "PostgreSQL", "listing_ms", _listing_line),
    )
    for key, name, figure, line in agents_parts:
        r = report.get(key)
        if r and figure in r:
            lines.append(line(name, r))
        elif r:
            lines.append(f"- agents.{figure} on {name}: skipped ({r.get('skipped')})")
    from controller.sim.report import markdown

    if "replay" in report:
        lines += ["", markdown(report["replay"])]
    if "replay_plan" in report:
        lines += [
            "",
            "Trace replay, every pool of clusters bounded by the load (the national nodes grown as a "
            "capacity plan would: `replay.setup(plan=True)`):",
            "",
            markdown(report["replay_plan"]),
        ]
    lines.append("")
    lines.append(f"`make bench` took {report.get('bench_seconds')} s.")
    return "\n".join(lines) + "\n"


PARTS = [
    "scheduler",
    "scheduler-shipped",
    "templated",
    "scaling",
    "saturated",
    "memory",
    "api",
    "api-postgresql",
    "api-keyed",
    "reports",
    "api-extra",
    "replay",
    "replay-plan",
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m controller.bench")
    ap.add_argument("--out", type=Path, default=Path("reports/bench.json"))
    ap.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("YIWANG_DATA_DIR", DEFAULT_DATA_DIR))
    )
    ap.add_argument(
        "--trace", type=Path, default=None, help="Alibaba batch_task CSV (default: <data-dir>/...)"
    )
    ap.add_argument("--trace-limit", type=int, default=None)
    ap.add_argument("--skip", action="append", default=[], choices=PARTS)
    ap.add_argument("--only", action="append", default=[], choices=PARTS, help="run only these parts")
    ap.add_argument(
        "--memory-seconds",
        type=float,
        default=2400.0,
        help="bound on the 10M-decision memory run (about 25 minutes here; a run the bound stops "
        "first reports a 10M figure extrapolated by a line, with its band, and says so)",
    )
    ap.add_argument("--api-seconds", type=float, default=15.0)
    ap.add_argument(
        "--api-replicas",
        type=int,
        default=1,
        help="API processes in front of the scheduling leader in the tenant runs (SQLite and PostgreSQL)",
    )
    ap.add_argument("--replay-workload", action="append", choices=["gpu", "cpu"], help="default: gpu")
    ap.add_argument("--replay-load", action="append", type=float, help="default: 0.5, 0.7, 0.9")
    ap.add_argument("--replay-order", action="append", choices=list(SORTED_ORDERS), help="default: all")
    args = ap.parse_args(argv)
    if args.only:
        skip = set(PARTS) - set(args.only)
    else:  # --skip api skips every API run, as it did; api-extra runs only when asked for
        skip = (
            set(args.skip)
            | {"api-extra"}
            | ({"api-postgresql", "api-keyed"} if "api" in args.skip else set())
        )
    t0 = time.perf_counter()
    report: dict[str, Any] = {
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}, {platform.platform()}",
        # the interpreter behind the venv: its build moves every figure (docs/benchmarks.md, Machine)
        "python": os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
    }

    def part(key: str, fn: Any, *a: Any, **kw: Any) -> None:
        t = time.perf_counter()
        report[key] = fn(*a, **kw)
        report.setdefault("part_seconds", {})[key] = round(time.perf_counter() - t, 1)
        print(key, json.dumps(report[key])[:400], flush=True)

    if "scheduler" not in skip:
        part("scheduler", mixed.bench_scheduler, args.data_dir)
    if "scheduler-shipped" not in skip:  # the same queue under the repository's own policies
        part("scheduler_shipped", mixed.bench_scheduler, args.data_dir, policies="shipped")
    if "templated" not in skip:
        part("scheduler_templated", bench_scheduler_templated, args.data_dir)
    if "scaling" not in skip:
        part("scheduler_scaling", mixed.bench_cycle_scaling, args.data_dir)
    if "saturated" not in skip:
        part("scheduler_saturated", mixed.bench_saturated, args.data_dir)
    if "memory" not in skip:
        t = time.perf_counter()
        distinct = mixed.bench_memory_distinct(args.data_dir)
        decisions = mixed.bench_memory_decisions(args.data_dir, seconds=args.memory_seconds)
        report["memory"] = {
            "pending_1m_distinct_mib": distinct["rss_mib"],
            "after_1m_decisions_mib": decisions.get("after_1m_mib"),
            "after_10m_decisions_mib": decisions.get("after_10m_mib"),
            "after_10m_measured": decisions.get("after_10m_measured"),
            "ratio_10m_to_1m": decisions.get("ratio_10m_to_1m"),
            "ratio_10m_to_1m_band": decisions.get("ratio_10m_to_1m_band"),
            "pending_1m_distinct": distinct,
            "decisions": decisions,
        }
        report.setdefault("part_seconds", {})["memory"] = round(time.perf_counter() - t, 1)
        print("memory", json.dumps(report["memory"])[:400], flush=True)
        if "templated" not in skip:
            part("memory_templated", bench_memory_templated, args.data_dir)
    secs = args.api_seconds
    if "api" not in skip:
        part("api", bench_api_median, tenants=True, seconds=secs, api_replicas=args.api_replicas)
        part("api_open", bench_api, seconds=secs)
    if "api-postgresql" not in skip:
        part(
            "api_postgresql", bench_api_postgresql, tenants=True, seconds=secs, api_replicas=args.api_replicas
        )
    if "api-keyed" not in skip:
        part(
            "api_keyed",
            bench_api_median,
            tenants=True,
            keyed=True,
            seconds=secs,
            api_replicas=args.api_replicas,
        )
    if "reports" not in skip:
        part("reports", lifecycle.bench_reports, args.data_dir)
        part("reports_postgresql", lifecycle.bench_reports_postgresql, args.data_dir)
        part("listing", lifecycle.bench_listing_one_cluster)
        part("listing_postgresql", lifecycle.bench_listing_one_cluster_postgresql)
    if "api-extra" not in skip:
        part("api_open_postgresql", bench_api_postgresql, seconds=secs)
        part("api_one_process", bench_api, split=False, seconds=secs)
        part("api_ingest_only", bench_api, scheduling=False, split=False, seconds=secs)
    # The replay's matrix on the uniform settings, then with every pool bounded by the load.
    for name, key, plan in (("replay", "replay", False), ("replay-plan", "replay_plan", True)):
        if name not in skip:
            part(
                key,
                bench_replay,
                args.trace,
                args.data_dir,
                args.trace_limit,
                args.replay_workload,
                args.replay_load,
                args.replay_order,
                plan=plan,
            )
    report["bench_seconds"] = round(time.perf_counter() - t0, 1)
    report["self_peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.exists() and (args.only or args.skip):
        # A partial run updates the parts it ran and keeps the others of the last report.
        old = json.loads(args.out.read_text())
        old_parts = old.get("part_seconds", {})
        report = {**old, **report, "part_seconds": {**old_parts, **report.get("part_seconds", {})}}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(summary_md(report))
    print(summary_md(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
