"""The benchmarks on a realistic queue: every job distinct (controller/sim/mixed.py).

- ``bench_scheduler``: decisions per second of the batch loop on 10,000-job batches of distinct
  jobs, 1+32+64 clusters, all plugins, with the decisions stored as in production inside the
  timed section (built by ``cycle_rows`` as ``schedule_pending`` builds them, and written to the
  decisions table of a SQLite store in one transaction);
- ``bench_cycle_scaling``: the production cycle (``Controller.schedule_pending`` on SQLite, the
  shipped placement and quota policies) with 1,000 to 100,000 distinct jobs pending: time per
  decision, everything included (the pending head read, specs parsed, the cycle's writes);
- ``bench_memory_distinct``: a process holding 1,000,000 distinct pending jobs;
- ``bench_memory_decisions``: a leader's memory after 1,000,000 and 10,000,000 decisions on
  distinct jobs.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from sqlalchemy import insert

from controller.datasets import DatasetRead
from controller.jobs import JobCreate
from controller.policies import QuotaPolicy, ResidencyPolicy
from controller.scheduler.batch import BatchScheduler
from controller.scheduler.collector import COLLECTOR, tune_gc
from controller.scheduler.queue import PendingQueue
from controller.scheduler.scheduler import Scheduler
from controller.scheduler.stored import cycle_rows
from controller.services.policy_files import load_policy_set
from controller.settings import REPO_POLICIES, Settings
from controller.sim.federation import ALL_PLUGINS, federation, snapshot_of
from controller.sim.mixed import MixedJobs
from controller.sim.workload import Catalogue, make_catalogue
from controller.store import schema as t
from controller.store.store import Store, new_job_id, now
from controller.topology.model import Topology
from controller.topology.network import NetworkModel


def world(data_dir: Path) -> tuple[Topology, Catalogue, NetworkModel]:
    topo = federation(data_dir, ministries=64)
    return topo, make_catalogue(topo), NetworkModel(topo)


def job_row(body: dict[str, Any]) -> dict[str, Any]:
    """A Pending job row as a submission writes it (the spec as the client sent it)."""
    at = now()
    return {
        "id": new_job_id(),
        "tenant": body["tenant"],
        "name": body["name"],
        "phase": "Pending",
        "cluster": None,
        "attempt": 1,
        "epoch": 0,
        "priority": body.get("priority", 100),
        "spec": body,
        "message": "waiting to be scheduled",
        "created_at": at,
        "updated_at": at,
        "lease_expires_at": None,
        "idempotency_key": None,
        "request_hash": None,
    }


def bench_scheduler(
    data_dir: Path, runs: int = 10, batch: int = 10_000, policies: str = "all-plugins"
) -> dict[str, Any]:
    """Fully mixed queue, decisions stored as in production, one thread. One ``BatchScheduler``
    across batches (as the service keeps it), a fresh empty federation and ``batch`` new
    distinct jobs per batch; the first batch is reported apart (cold caches). As on a leader,
    the policies' objects are kept between cycles, and each batch's snapshot is a new generation
    (one cluster's allocatable differs, as an agent's heartbeat reports).

    ``policies``: ``all-plugins`` (the floor's figure since issue 15: every filter and score,
    no tenant quota, no locality wait, the default residency policy) or ``shipped`` (the
    repository's ``policies/``: placement with its locality wait, tenant quotas with borrowing
    limits and reclaim, residency), which a deployed leader runs."""
    topo, cat, net = world(data_dir)
    gen = MixedJobs(topo, cat, seed=5)
    if policies == "shipped":
        files = load_policy_set(REPO_POLICIES)
        placement, quota, residency = files.placement, files.quota, files.residency
    elif policies == "all-plugins":
        # the leader keeps its policies' objects between cycles
        placement, quota, residency = ALL_PLUGINS, QuotaPolicy(), ResidencyPolicy()
    else:
        raise ValueError(f"policies: all-plugins or shipped, not {policies!r}")
    bs = BatchScheduler(Scheduler.from_policy(placement), quota)
    tune_gc()  # as the service does when its loops start
    stages: dict[str, list[float]] = {"intern": [], "schedule": [], "build": [], "write": [], "rest": []}
    totals: list[float] = []
    cpu: list[float] = []  # CPU seconds of this process in the timed section
    scheduled: list[int] = []
    stored_bytes: list[float] = []
    part_bytes: list[float] = []
    distinct: list[int] = []
    cold = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/bench.db")
        for run in range(runs + 1):
            bodies = gen.bodies(batch)
            rows = [job_row(b) for b in bodies]
            store.insert_jobs_bulk(rows)  # the submissions: not timed
            specs = [JobCreate.model_validate(b) for b in bodies]
            distinct.append(len({json.dumps({**b, "name": ""}, sort_keys=True) for b in bodies}))
            snap = snapshot_of(topo, net, datasets=dict(cat.datasets), residency=residency)
            # an agent's heartbeat reports another allocatable each batch (a node drained or
            # added): a new snapshot generation, as a live federation makes them
            snap.capacity[run % len(snap.capacity), 0] -= 1.0 + run % 3
            lease_until = now() + timedelta(seconds=30)
            c0 = time.process_time()
            t0 = time.perf_counter()
            # as ``schedule_pending`` runs a cycle (collector.py): its end, a freeze and at
            # times a full collection, inside the timed section
            with COLLECTOR.cycle():
                queue = PendingQueue()
                for row, spec in zip(rows, specs, strict=True):
                    queue.push(row["id"], bs.shapes.intern(spec), runtime=spec.expected_runtime_s)
                t1 = time.perf_counter()
                result = bs.run(queue, snap, limit=batch, running={})
                t2 = time.perf_counter()
                out = cycle_rows(result.decisions, epoch=1, lease_until=lease_until, previous={})
                t3 = time.perf_counter()
                with store.tx() as conn:
                    store.put_decision_parts(conn, out.parts)
                    store.insert_decisions(conn, out.decisions)
            t4 = time.perf_counter()
            c4 = time.process_time()
            # The rest of the cycle's writes (job rows, events, audit), reported apart.
            with store.tx() as conn:
                changed = store.apply_cycle(
                    conn, scheduled=out.scheduled, requeued=[], decisions=[], messages=out.messages
                )
                store.audit_placements(conn, out.decisions, changed, out.summaries)
            t5 = time.perf_counter()
            if (snap.allocated > snap.capacity + 1e-6).any():
                raise SystemExit("overcommitted a cluster: the batch loop is broken")
            stored_bytes.append(
                statistics.mean(
                    len(json.dumps(r["body"], separators=(",", ":"))) for r in out.decisions[:500]
                )
            )
            # the parts the bodies name (packed columns, explanations, contexts), per decision
            part_bytes.append(
                sum(len(p.get("data") or b"") + len(json.dumps(p.get("body") or "")) for p in out.parts)
                / max(1, len(out.decisions))
            )
            if run == 0:
                cold = batch / (t4 - t0)
                continue
            for k, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
                stages[k].append(dt / batch * 1e6)
            totals.append(t4 - t0)
            cpu.append(c4 - c0)
            scheduled.append(result.scheduled)
        store.close()
    rates = [batch / x for x in totals]
    ms = sorted(x * 1000 for x in totals)
    p99 = float(np.percentile(ms, 99))
    med = {k: round(statistics.median(v), 1) for k, v in stages.items()}
    per = med["intern"] + med["schedule"] + med["build"] + med["write"]
    return {
        "decisions_per_s": round(statistics.median(rates)),
        "runs": [round(r) for r in rates],
        # The same per CPU second of this process (the VM is shared: wall time includes waiting
        # for a core; the CPU time does not, and is what the code costs)
        "decisions_per_cpu_s": round(statistics.median(batch / x for x in cpu)),
        "decisions_per_s_p99_batch_ms": round(p99, 1),
        "batch_ms": [round(x, 1) for x in ms],
        "cold_first_batch_decisions_per_s": round(cold),
        "us_per_decision": med,
        "with_rest_of_cycle_writes_decisions_per_s": round(1e6 / (per + med["rest"])),
        "stored_body_bytes": round(statistics.mean(stored_bytes)),
        # all a decision stores: its body and its share of the cycle's parts (mostly the packed
        # scores of every feasible cluster)
        "stored_bytes_per_decision": round(statistics.mean(stored_bytes) + statistics.mean(part_bytes)),
        "batch": batch,
        "distinct_jobs_per_batch": distinct,
        "scheduled_per_batch": scheduled,
        "clusters": len(topo.clusters),
        "caches": bs.cache_stats() if hasattr(bs, "cache_stats") else None,
        "collector": COLLECTOR.stats(),
        "plugins": {"filters": placement.filters, "scores": [s.name for s in placement.scores]},
        "policies": policies,
        "locality_wait_max_s": placement.locality_wait_max_s,
        "queue": "every job distinct: controller/sim/mixed.py",
    }


# ---- a saturated federation --------------------------------------------------------------------
def bench_saturated(
    data_dir: Path, fill_batches: int = 6, batch: int = 2_000, cycles: int = 3
) -> dict[str, Any]:
    """Cycles of a full federation: the shipped policies (tenant quotas with reclaim of borrowed
    quota), the 1+32+64 federation filled by ``fill_batches`` batches of 10,000 mixed jobs through
    the batch loop (preemption on, as a leader runs it), then ``cycles`` cycles of ``batch`` new
    mixed jobs with every placed job a preemption candidate, each beside the same cycle with no
    candidates (``running`` None). Each timed cycle starts from the filled state (the lists
    copied, the allocation put back)."""
    topo, cat, net = world(data_dir)
    files = load_policy_set(REPO_POLICIES)
    bs = BatchScheduler(Scheduler.from_policy(files.placement), files.quota)
    tune_gc()
    gen = MixedJobs(topo, cat, seed=7)
    snap = snapshot_of(topo, net, datasets=dict(cat.datasets), residency=files.residency)
    running: dict[int, list[Any]] = {}
    count = 0

    def queue_of(n: int) -> PendingQueue:
        nonlocal count
        q = PendingQueue()
        for body in gen.bodies(n):
            spec = JobCreate.model_validate(body)
            q.push(f"{count:014x}{0:08x}", bs.shapes.intern(spec), runtime=spec.expected_runtime_s)
            count += 1
        return q

    for b in range(fill_batches):
        bs.run(queue_of(10_000), snap, limit=10_000, running=running, now=1_000.0 + b)
    if (snap.allocated > snap.capacity + 1e-6).any():
        raise SystemExit("overcommitted a cluster: the batch loop is broken")
    timed: dict[str, list[float]] = {"with_candidates_ms": [], "without_candidates_ms": []}
    placed: list[int] = []
    victims: list[int] = []
    for k in range(cycles):
        for key in timed:
            candidates = {c: list(v) for c, v in running.items()} if key == "with_candidates_ms" else None
            allocated = snap.allocated.copy()
            q = queue_of(batch)
            t0 = time.perf_counter()
            res = bs.run(q, snap, limit=batch, running=candidates, now=2_000.0 + k)
            timed[key].append(round((time.perf_counter() - t0) * 1000, 1))
            snap.allocated[:] = allocated
            if key == "with_candidates_ms":
                placed.append(res.scheduled)
                victims.append(len(res.victims))
    return {
        "cycle_ms": statistics.median(timed["with_candidates_ms"]),
        **timed,
        "without_candidates_ms_median": statistics.median(timed["without_candidates_ms"]),
        "placed_jobs": sum(len(v) for v in running.values()),
        "placed_per_cycle": placed,
        "victims_per_cycle": victims,
        "batch": batch,
        "layout": "BatchScheduler, shipped policies (quota with reclaim), 1+32+64, filled federation",
    }


# ---- the production cycle with N pending ------------------------------------------------------
def bench_policies(tmp: Path, topo: Topology) -> Path:
    """The shipped policies (placement, quota, residency, failover) on the 1+32+64 federation."""
    pol = tmp / "policies"
    shutil.copytree(REPO_POLICIES, pol, ignore=shutil.ignore_patterns("drills"))
    doc = topo.model_dump(mode="json", exclude_none=True)
    (pol / "topology.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    return pol


def _seed_store(store: Store, cat: Catalogue) -> None:
    at = now()
    with store.tx() as conn:
        conn.execute(
            insert(t.datasets),
            [
                {**DatasetRead.model_validate(d).model_dump(mode="json"), "created_at": at}
                for d in cat.datasets.values()
            ],
        )


def bench_cycle_scaling(
    data_dir: Path, sizes: tuple[int, ...] = (1_000, 10_000, 30_000, 100_000), reps: int = 9
) -> dict[str, Any]:
    """``Controller.schedule_pending`` (the production cycle: pending head read, specs parsed,
    snapshot, batch loop, stored decisions, job rows, events and audit rows written in one
    transaction) with ``n`` distinct jobs pending, for each ``n`` of ``sizes``; SQLite
    (WAL, synchronous=FULL), the shipped placement and quota policies, every cluster Ready.
    Each repetition times one cycle (``schedule_batch`` = 2,000 jobs, or all when fewer are
    pending), then tops the queue up to ``n`` again."""
    from controller.service import Controller

    tune_gc()  # as the service does when its loops start (and with it, collector.py)
    topo, cat, _ = world(data_dir)
    gen = MixedJobs(topo, cat, seed=9)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        pol = bench_policies(tmp, topo)
        for n in sizes:
            url = f"sqlite:///{tmp}/cycle-{n}.db"
            store = Store(url)
            _seed_store(store, cat)
            for k in range(0, n, 20_000):
                store.insert_jobs_bulk([job_row(b) for b in gen.bodies(min(20_000, n - k))])
            ctl = Controller(
                Settings(database_url=url, policies_dir=pol, background=False, holder="bench"), store
            )
            for name in list(ctl.registry.clusters):
                ctl.heartbeat(name, None)
            per_us: list[float] = []
            cpu_us: list[float] = []
            for _ in range(reps):
                pending = store.count_jobs_by_phase().get("Pending", 0)
                handled = min(pending, ctl.settings.schedule_batch)
                c0 = time.process_time()
                t0 = time.perf_counter()
                ctl.schedule_pending()
                per_us.append((time.perf_counter() - t0) / handled * 1e6)
                cpu_us.append((time.process_time() - c0) / handled * 1e6)
                left = store.count_jobs_by_phase().get("Pending", 0)
                if n - left > 0:
                    store.insert_jobs_bulk([job_row(b) for b in gen.bodies(n - left)])
            ctl.stop()
            store.close()
            out[str(n)] = {
                "us_per_decision": round(statistics.median(per_us), 1),
                "runs": [round(x, 1) for x in per_us],
                "cpu_us_per_decision": round(statistics.median(cpu_us), 1),
            }
    meds = [v["us_per_decision"] for v in out.values()]
    cpus = [v["cpu_us_per_decision"] for v in out.values()]
    return {
        "pending": out,
        "max_over_min": round(max(meds) / min(meds), 2),
        "cpu_max_over_min": round(max(cpus) / min(cpus), 2),
        "decisions_per_s_at_10000_pending": round(1e6 / out["10000"]["us_per_decision"])
        if "10000" in out
        else None,
        "layout": "Controller.schedule_pending, SQLite, shipped placement/quota policies, 1+32+64",
    }


# ---- memory ----------------------------------------------------------------------------------
MEMORY_DISTINCT_CHILD = """
import json, resource, sys
from pathlib import Path
from controller.bench.mixed import world, rss_mib
from controller.policies import QuotaPolicy
from controller.scheduler.batch import BatchScheduler
from controller.scheduler.queue import PendingQueue
from controller.scheduler.collector import tune_gc
from controller.scheduler.scheduler import Scheduler
from controller.sim.federation import ALL_PLUGINS
from controller.sim.mixed import MixedJobs
n = int(sys.argv[1])
topo, cat, net = world(Path(sys.argv[2]))
gen = MixedJobs(topo, cat, seed=21)
bs = BatchScheduler(Scheduler.from_policy(ALL_PLUGINS), QuotaPolicy())
tune_gc()
before = rss_mib()
q = PendingQueue()
i = 0
while i < n:
    for spec in gen.construct(min(10_000, n - i)):
        q.push(f"{i:014x}{i:08x}", bs.shapes.intern(spec), runtime=spec.expected_runtime_s)
        i += 1
import gc; gc.collect()
print(json.dumps({"pending": len(q), "rss_before_mib": before, "rss_mib": rss_mib(),
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def rss_mib() -> float:
    """The process's resident set now (not the peak), MiB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import os

    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def bench_memory_distinct(data_dir: Path, n: int = 1_000_000) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_DISTINCT_CHILD, str(n), str(data_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        "pending_jobs": r["pending"],
        "rss_mib": r["rss_mib"],
        "peak_rss_mib": round(r["peak_rss_mib"], 1),
        "queue_only_mib": round(r["rss_mib"] - r["rss_before_mib"], 1),
        "structure": "PendingQueue of distinct jobs (controller/sim/mixed.py), interned by the "
        "BatchScheduler's ShapeTable; each spec dropped after it is queued",
    }


MEMORY_DECISIONS_CHILD = """
import gc, json, sys, time
from datetime import timedelta
from pathlib import Path
from controller.bench.mixed import world, rss_mib
from controller.policies import QuotaPolicy, ResidencyPolicy
from controller.scheduler.batch import BatchScheduler
from controller.scheduler.collector import COLLECTOR, tune_gc
from controller.scheduler.queue import PendingQueue
from controller.scheduler.scheduler import Scheduler
from controller.scheduler.stored import cycle_rows
from controller.sim.federation import ALL_PLUGINS, snapshot_of
from controller.sim.mixed import MixedJobs
from controller.store.store import now
total, seconds = int(sys.argv[1]), float(sys.argv[3])
topo, cat, net = world(Path(sys.argv[2]))
gen = MixedJobs(topo, cat, seed=31)
bs = BatchScheduler(Scheduler.from_policy(ALL_PLUGINS), QuotaPolicy())
tune_gc()
done, points, t0 = 0, [], time.perf_counter()
marks = {250_000 * k for k in range(1, 401)}
while done < total and time.perf_counter() - t0 < seconds:
    q = PendingQueue()
    for i, spec in enumerate(gen.construct(10_000)):
        q.push(f"{done + i:022x}", bs.shapes.intern(spec), runtime=spec.expected_runtime_s)
    snap = snapshot_of(topo, net, datasets=cat.datasets, residency=ResidencyPolicy())
    with COLLECTOR.cycle():  # as schedule_pending runs a cycle
        res = bs.run(q, snap, limit=10_000, running={})
        cycle_rows(res.decisions, epoch=1, lease_until=now() + timedelta(seconds=30), previous={})
    done += 10_000
    if done in marks:
        del q, res, snap
        gc.collect()
        points.append([done, rss_mib(), round(time.perf_counter() - t0, 1)])
        print(json.dumps(points[-1]), file=sys.stderr, flush=True)
print(json.dumps({"points": points, "decisions": done}))
"""


def extrapolate_10m(points: Sequence[Sequence[float]]) -> dict[str, Any]:
    """The resident set after 10,000,000 decisions from a run that stopped earlier: a least-squares
    line through the points at or past 500,000 decisions (the first batches fill the caches;
    all points when fewer than three are that far), with the band of two standard errors of the
    line at 10M, the points and the span it rests on. Two points an RSS step apart (the allocator takes
    memory in arenas) gave a slope several times too steep; a fit over the whole span, with its
    band, says how far the figure can be trusted."""
    used = [p for p in points if p[0] >= 500_000]
    if len(used) < 3:
        used = list(points)
    x = np.array([p[0] for p in used], dtype=float) / 1e6
    y = np.array([p[1] for p in used], dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    at10 = float(intercept + slope * 10.0)
    se_slope = se_at10 = 0.0
    if len(used) > 2:  # the residuals' spread; the line's standard error at 10M
        resid = y - (slope * x + intercept)
        s2 = float(resid @ resid) / (len(used) - 2)
        sxx = float((x - x.mean()) @ (x - x.mean()))
        se_slope = math.sqrt(s2 / sxx)
        se_at10 = math.sqrt(s2 / len(used) + s2 * (10.0 - float(x.mean())) ** 2 / sxx)
    return {
        "slope_mib_per_million": round(float(slope), 2),
        "slope_stderr_mib_per_million": round(se_slope, 2),
        "after_10m_mib": round(at10, 1),
        "after_10m_band_mib": [round(at10 - 2 * se_at10, 1), round(at10 + 2 * se_at10, 1)],
        "fit_points": len(used),
        "fit_span": [int(used[0][0]), int(used[-1][0])],
    }


def bench_memory_decisions(data_dir: Path, total: int = 10_000_000, seconds: float = 240.0) -> dict[str, Any]:
    """A leader's memory as it places ``total`` distinct jobs (batches of 10,000 on a fresh
    federation, decisions built as stored, then dropped), bounded by ``seconds``: the RSS after
    every 250,000. When the bound stops it first, the 10M figure is extrapolated
    (``extrapolate_10m``) and marked so."""
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_DECISIONS_CHILD, str(total), str(data_dir), str(seconds)],
        capture_output=True,
        text=True,
        check=True,
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    points = r["points"]
    after = {p[0]: p[1] for p in points}
    res: dict[str, Any] = {"points": points, "decisions": r["decisions"]}
    res["after_1m_mib"] = after.get(1_000_000)
    if 10_000_000 in after:
        res["after_10m_mib"] = after[10_000_000]
        res["after_10m_measured"] = True
    elif len(points) >= 2:
        res.update(extrapolate_10m(points))
        res["after_10m_measured"] = False
    if res.get("after_1m_mib") and res.get("after_10m_mib"):
        res["ratio_10m_to_1m"] = round(res["after_10m_mib"] / res["after_1m_mib"], 3)
        if "after_10m_band_mib" in res:
            res["ratio_10m_to_1m_band"] = [
                round(b / res["after_1m_mib"], 3) for b in res["after_10m_band_mib"]
            ]
    return res
