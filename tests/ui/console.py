"""A live embedded federation for the console's browser tests: a real controller on loopback with
its control loop running, all 42 agents (simulated executors) talking to it over HTTP, a load of
jobs from several tenants and data sets of every classification, a preemption, a drained and a
cordoned cluster, grant requests, Guangdong's agent killed so its jobs fail over (its silence fast-forwarded), and two real
drill runs (one meeting its budgets, one missing its RTO) writing to the drill reports folder
while the first tests run.

Built once per test session (about 25 s); the tests read it and change only what they undo."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from controller.drills.harness import DrillFederation
from controller.drills.runner import run_files
from controller.live import LiveController
from controller.service import Controller
from controller.store.store import now
from tests.drills.conftest import small_scenario, write

FAILED = "prov-guangdong"  # its agent is killed: its jobs fail over
DRAINED = "prov-ningxia"
CORDONED = "prov-xizang"
PREEMPTED_ON = "prov-qinghai"
# 42 agents in one process (beside the browser, a drill and the tests) on a small, busy machine: a
# long lease and grace (heartbeats every 18 s) keep every live cluster Ready however slow the
# machine gets. Guangdong's failover does not
# wait them out: its agent is killed and its silence fast-forwarded (its last heartbeat moved back
# past lease + grace), and the control loop then detects it and fails its jobs over as it would
# after a minute of silence.
LEASE_S, GRACE_S = 90.0, 60.0
LONG = {"expected_runtime_s": 86_400.0, "max_runtime_s": 7 * 86_400}  # runs for the whole session

DATASETS = [
    {
        "id": "gd-open-statistics",
        "owner": "guangdong",
        "classification": "general",
        "locations": [FAILED],
        "size_bytes": 120_000_000_000,
        "description": "Guangdong open statistics",
    },
    {
        "id": "gd-social-insurance",
        "owner": "guangdong",
        "classification": "important",
        "locations": [FAILED, "national-primary"],
        "size_bytes": 800_000_000_000,
    },
    {
        "id": "gd-population-register",
        "owner": "guangdong",
        "classification": "core",
        "locations": [FAILED],
        "size_bytes": 2_000_000_000_000,
    },
    {
        "id": "hb-flood-records",
        "owner": "hubei",
        "classification": "general",
        "locations": ["prov-hubei"],
        "size_bytes": 40_000_000_000,
    },
    {
        "id": "nx-water-usage",
        "owner": "ningxia",
        "classification": "general",
        "locations": [DRAINED],
        "size_bytes": 60_000_000_000,
    },
    {
        "id": "nhc-health-statistics",
        "owner": "nhc",
        "classification": "important",
        "locations": ["dept-nhc", "national-backup"],
        "size_bytes": 300_000_000_000,
    },
]


def job(name: str, tenant: str, cpu: float = 50, **extra: Any) -> dict[str, Any]:
    return {"name": name, "tenant": tenant, "resources": {"cpu": cpu, "memory_gib": cpu}, **LONG, **extra}


def prefer(cluster: str) -> dict[str, Any]:
    return {"constraints": {"prefer_clusters": [cluster]}}


def only(cluster: str) -> dict[str, Any]:
    return {"constraints": {"allow_clusters": [cluster]}}


LOAD = [
    *[
        job(f"gd-open-report-{i}", "guangdong", inputs=["gd-open-statistics"], **prefer(FAILED))
        for i in range(3)
    ],
    job("gd-insurance-audit", "guangdong", inputs=["gd-social-insurance"], **prefer(FAILED)),
    job("gd-census-core", "guangdong", inputs=["gd-population-register"]),
    *[
        job(f"hb-flood-model-{i}", "hubei", 200, inputs=["hb-flood-records"], **prefer("prov-hubei"))
        for i in range(2)
    ],
    *[job(f"sc-batch-{i}", "sichuan", 100, **prefer("prov-sichuan")) for i in range(4)],
    job("national-macro-model", "national", 3000, replicas=2, **only("national-primary")),
    job("nhc-epidemic-watch", "nhc", 300, inputs=["nhc-health-statistics"], **prefer("dept-nhc")),
    job("nx-irrigation", "ningxia", 300, inputs=["nx-water-usage"], **prefer(DRAINED)),
    job("js-traffic-model", "jiangsu", 1300, replicas=2, **prefer("prov-jiangsu")),  # borrows 600 cores
    job(
        "hebei-too-big", "hebei", 3000, replicas=3
    ),  # beyond its quota (2000 nominal + 6000 borrowable): waits
    job("qh-low-priority", "qinghai", 450, replicas=2, priority_class="low", **only(PREEMPTED_ON)),
]
PREEMPTOR = job("gs-urgent", "gansu", 450, replicas=2, priority_class="high", **only(PREEMPTED_ON))


@dataclass
class Console:
    url: str
    controller: Controller
    http: httpx.Client
    fed: DrillFederation
    drills_dir: Path
    tokens: dict[str, str] = field(default_factory=dict)  # tenant -> bearer token
    ids: dict[str, str] = field(default_factory=dict)  # job name -> id
    drills: threading.Thread | None = None

    def drills_done(self, timeout_s: float = 60.0) -> None:
        assert self.drills is not None
        self.drills.join(timeout_s)
        assert not self.drills.is_alive(), "the drills did not finish"

    def get(self, path: str, token: str | None = None, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = self.http.get(path, params=params, headers=headers)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: Any = None, token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = self.http.post(path, json=body, headers=headers)
        assert r.status_code < 300, f"POST {path}: {r.status_code} {r.text[:300]}"
        return r.json()

    def job(self, name: str) -> dict[str, Any]:
        return self.get(f"/v1/jobs/{self.ids[name]}")


def wait(what: str, probe: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def run_drills(folder: Path, work: Path) -> threading.Thread:
    """Two real drills (Hainan's agent killed), in the background: one within its budgets, one
    with an RTO budget no failover can meet."""
    work.mkdir(parents=True, exist_ok=True)
    # Timers and budgets with room for a machine busy with a browser and 42 other agents.
    federation = {**small_scenario()["federation"], "lease_s": 3.0, "heartbeat_grace_s": 2.0}
    # Jobs of 10 s (500 s at the time scale of 0.02), not 3 s: on a busy machine the fault has
    # come 2 s late, and jobs that finish where they are as it strikes move nowhere.
    load = small_scenario()["load"]
    load["jobs"][0]["expected_runtime_s"] = 500
    files = [
        write(
            work,
            small_scenario(
                federation=federation,
                load=load,
                budgets={"detection_s": 10.0, "rto_s": 30.0},
                settle_timeout_s=40,
            ),
            "small-kill.yaml",
        ),
        write(
            work,
            small_scenario(
                name="tight-rto",
                federation=federation,
                load=load,
                budgets={"detection_s": 10.0, "rto_s": 0.001},
                settle_timeout_s=40,
            ),
            "tight-rto.yaml",
        ),
    ]
    thread = threading.Thread(
        target=run_files, args=(files, folder), kwargs={"say": lambda _m: None}, daemon=True
    )
    thread.start()
    return thread


def fast_dir(tmp: Path) -> Path:
    """A folder in memory (tmpfs) when the machine has one: SQLite fsyncs every commit, and 42
    agents heartbeating through a busy disk would time out and look Unreachable."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return Path(tempfile.mkdtemp(prefix="yiwang-console-", dir=shm))
    return tmp


def start(tmp: Path) -> tuple[Console, LiveController]:
    drills_dir = tmp / "drill-reports"
    server = LiveController(
        fast_dir(tmp) / "console.db",
        name="console-controller",
        background=True,
        metrics_sample_s=0.5,
        drill_reports_dir=drills_dir,
        holder="console-test",
    ).start()
    url = server.url
    c = Console(url, server.controller, httpx.Client(base_url=url, timeout=10), None, drills_dir)  # type: ignore[arg-type]
    failover = c.get("/v1/policies")["failover"]
    r = c.http.put(
        "/v1/policies/failover", json={**failover, "lease_s": LEASE_S, "heartbeat_grace_s": GRACE_S}
    )
    assert r.status_code == 200, r.text
    topology = c.controller.policies.topology.clusters
    c.fed = DrillFederation(url, list(topology), nodes_per_cluster=2, time_scale=0.02, poll_interval_s=1.0)
    c.fed.start()
    for ds in DATASETS:
        c.post("/v1/datasets", ds)
    for body in LOAD:
        c.ids[body["name"]] = c.post("/v1/jobs", body)["id"]

    def running(*names: str) -> bool:
        return all(c.job(n)["phase"] == "Running" for n in names)

    placed = [b["name"] for b in LOAD if b["name"] != "hebei-too-big"]
    wait("the load running", lambda: running(*placed))
    c.ids[PREEMPTOR["name"]] = c.post("/v1/jobs", PREEMPTOR)["id"]
    wait(
        "the preemption on Qinghai",
        lambda: running(PREEMPTOR["name"]) and c.job("qh-low-priority")["phase"] == "Pending",
    )
    assert c.job("nx-irrigation")["cluster"] == DRAINED
    c.post(f"/v1/clusters/{DRAINED}/drain")
    c.post(f"/v1/clusters/{CORDONED}/cordon")
    wait("the drained job running elsewhere", lambda: running("nx-irrigation"))

    for tenant in ("guangdong", "hubei", "sichuan"):
        c.tokens[tenant] = c.post(
            "/v1/tokens", {"role": "tenant", "tenant": tenant, "description": f"{tenant} console test"}
        )["token"]
    c.post(
        "/v1/datasets/gd-open-statistics/grants",
        {"reason": "flood model calibration"},
        token=c.tokens["hubei"],
    )
    sc = c.post(
        "/v1/datasets/gd-open-statistics/grants", {"reason": "regional comparison"}, token=c.tokens["sichuan"]
    )
    c.post(f"/v1/datasets/gd-open-statistics/grants/{sc['id']}/approve", token=c.tokens["guangdong"])
    c.post(
        "/v1/datasets/nhc-health-statistics/grants", {"tenant": "guangdong", "reason": "hospital capacity"}
    )

    on_failed = [n for n in c.ids if n.startswith("gd-") and c.job(n)["cluster"] == FAILED]
    assert len(on_failed) >= 4, (
        f"Guangdong's jobs should run there first: {[(n, c.job(n)['cluster']) for n in c.ids]}"
    )
    c.fed.kill(FAILED)
    silent_since = now() - timedelta(seconds=LEASE_S + GRACE_S + 10)
    c.controller.store.update_cluster(FAILED, last_heartbeat=silent_since)
    c.controller.registry.clusters[FAILED].last_heartbeat = silent_since
    c.controller.lead_since = silent_since  # it led throughout (silence counts from its takeover)
    c.controller.wake()
    movable = [n for n in on_failed if n != "gd-census-core"]
    wait(
        "Guangdong's jobs failed over",
        lambda: all(c.job(n)["attempt"] > 1 and c.job(n)["phase"] == "Running" for n in movable),
    )
    if "gd-census-core" in on_failed:
        wait("the core job waiting (residency)", lambda: c.job("gd-census-core")["phase"] == "Pending")
    # The drills run beside the first tests (after this controller's migrations: Alembic's
    # migration context is process-global); the drill tests wait for them.
    c.drills = run_drills(drills_dir, tmp / "drill-scenarios")
    return c, server


def stop(c: Console, server: LiveController) -> None:
    c.fed.stop()
    c.http.close()
    server.stop()
    db = Path(c.controller.settings.database_url.split("///", 1)[1])
    if db.parent.name.startswith("yiwang-console-"):
        shutil.rmtree(db.parent, ignore_errors=True)
