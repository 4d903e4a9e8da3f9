"""Run a drill: start the controller and the embedded federation, load it, inject the timeline's
faults on a monotonic clock, watch through the REST API, measure, and judge the budgets.

Measured (times from the fault's injection, on ``time.monotonic``):
- detection_s: until the API shows the faulted cluster ``Unreachable``;
- rto_s: until every affected job (Scheduled/Running on the cluster at the fault; every active
  job for ``kill_controller``) runs again as a new attempt or elsewhere, or has finished (for a
  cluster fault, when its executor started it, from the executors' records, as the process
  drills measure it; ``rto_seen_s`` is when the API showed it, for every fault); a job
  that legally cannot move (residency) and waits with that reason is counted apart, not in RTO,
  and so is a job of a cluster fault that finished where it was without running again (its
  success reached the controller as the fault struck: nothing was recovered);
- jobs_lost: acknowledged jobs (201 from POST /v1/jobs) that are gone or do not end Succeeded,
  except those Pending with a residency reason;
- jobs_run_twice: jobs of which two executions overlapped in time, from the executors' records.
Invariants, each must be 0: residency_violations (an execution on a cluster its inputs may not
reach), stale_reports_accepted (a revoked attempt's report taken after the agent came back),
stale_attempts_running (an executor still runs an attempt that is no longer current),
late_self_stops (a partitioned agent still ran an attempt after its lease ended) and
early_replacements (a job re-placed by lease expiry before lease + grace).

Why one module of this length: the in-process drill is one procedure (federation, load, faults,
observation, measures), and the entry points that dispatch every kind of scenario file
(``run_files``) sit beside it.
"""

from __future__ import annotations

import json
import logging
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from controller.datasets import Classification
from controller.drills.harness import DrillFederation
from controller.drills.nationalscenario import NationalScenario, is_national_doc, parse_national_scenario
from controller.drills.procscenario import ProcScenario, is_process_doc, parse_proc_scenario
from controller.drills.records import ExecutionRecord, by_job, find_double_runs
from controller.drills.report import BudgetResult, DrillReport, evaluate, write_json, write_junit
from controller.drills.scenario import (
    CLUSTER_FAULTS,
    FillCluster,
    Scenario,
    ScenarioError,
    parse_scenario,
)
from controller.live import LiveController
from controller.policies import Movement, ResidencyPolicy
from controller.settings import REPO_POLICIES
from controller.topology.model import Cluster, Tier, Topology

ACTIVE = ("Scheduled", "Running")
POLL_S = 0.05
Say = Callable[[str], None]


DECISION_CACHE = 100_000
# The drill's client: how long it waits for one answer, and for how long it repeats a write that
# may be repeated (``DrillRunner.api``). It was 5 s and no repeat: on a CI machine at load 5 a
# submission's answer once came later, and the drill failed on its own client.
HTTP_TIMEOUT_S = 10.0
RETRY_FOR_S = 30.0


def residency_wait(decision: dict[str, Any] | None) -> bool:
    """The job's latest decision placed it nowhere (no cluster available) and residency is among
    the reasons: no reachable cluster may legally hold its data. Read from the decision's
    structured fields, never from its summary's text."""
    return (
        decision is not None
        and decision["cluster"] is None
        and not decision["feasible"]
        and any(r["plugin"] == "residency" for r in decision.get("reasons", ()))
    )


@dataclass
class FaultRun:
    index: int
    fault: str
    at_s: float
    cluster: str | None = None
    injected_s: float | None = None  # seconds after steady state
    injected_mono: float | None = None
    skipped: str | None = None
    detected_s: float | None = None  # after injection
    affected: dict[str, dict[str, Any]] = field(default_factory=dict)  # job id -> state at fault
    recovered: dict[str, float] = field(default_factory=dict)  # job id -> seconds after injection
    residency_waits: set[str] = field(default_factory=set)
    moved_to: dict[str, str] = field(default_factory=dict)  # job id -> cluster it went to
    finished_in_place: set[str] = field(default_factory=set)  # Succeeded there, never ran again
    last_heartbeat_wall: float | None = None  # the cluster's last heartbeat the controller took
    filler_ids: list[str] = field(default_factory=list)
    # job id -> seconds after injection at which an executor started its new execution (the
    # executors' records): beside ``recovered`` (when the API showed it), it tells a slow recovery
    # from a slow view of one
    started_again: dict[str, float] = field(default_factory=dict)

    def outstanding(self) -> list[str]:
        """Affected jobs neither recovered, nor waiting for residency, nor finished in place."""
        apart = self.residency_waits | self.finished_in_place
        return [j for j in self.affected if j not in self.recovered and j not in apart]

    def timed(self) -> dict[str, float]:
        """The recovered jobs the RTO times (not those waiting for residency): job id -> seconds
        after injection at which the API showed it back."""
        return {j: t for j, t in self.recovered.items() if j not in self.residency_waits}

    def ran_again_s(self, job_id: str, seen_s: float) -> float:
        """When the job ran again: its executor's start where the records were read
        (``DrillRunner.note_restarts``), else when the API showed it back."""
        return self.started_again.get(job_id, seen_s)

    @property
    def rto_s(self) -> float | None:
        """When the last affected job ran again (``ran_again_s``)."""
        if self.outstanding() or self.injected_mono is None:
            return None
        counted = [self.ran_again_s(j, t) for j, t in self.timed().items()]
        if not counted and self.finished_in_place:
            return None  # nothing ran again: there is no recovery to time
        return max(counted, default=0.0)

    @property
    def rto_seen_s(self) -> float | None:
        """The same, as the API showed it (the drill polls every ``POLL_S``)."""
        if self.rto_s is None:
            return None
        return max(self.timed().values(), default=0.0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "fault": self.fault,
            "at_s": self.at_s,
            "cluster": self.cluster,
            "injected_s": _r(self.injected_s),
            "skipped": self.skipped,
            "detection_s": _r(self.detected_s),
            "rto_s": _r(self.rto_s) if self.fault in (*CLUSTER_FAULTS, "kill_controller") else None,
            "rto_seen_s": _r(self.rto_seen_s) if self.fault in (*CLUSTER_FAULTS, "kill_controller") else None,
            "affected_jobs": len(self.affected),
            "recovered_jobs": len(self.timed()),
            "finished_in_place": len(self.finished_in_place),
            "waiting_for_residency": sorted(self.residency_waits),
            "moved_to": dict(sorted(self.moved_to.items())),
            "filler_jobs": self.filler_ids,
            "slowest_recovery": self.slowest_recovery(),
        }

    def slowest_recovery(self) -> dict[str, Any] | None:
        """The job that set the RTO: when the API showed it back and when its executor started it."""
        counted = self.timed()
        if not counted:
            return None
        job_id = max(counted, key=lambda j: (self.ran_again_s(j, counted[j]), counted[j]))
        return {
            "job_id": job_id,
            "name": self.affected[job_id].get("spec", {}).get("name"),
            "cluster": self.moved_to.get(job_id),
            "seen_back_s": _r(counted[job_id]),
            "executor_started_s": _r(self.started_again.get(job_id)),
        }


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def _parse_wall(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso).timestamp() if iso else None


class DrillRunner:
    def __init__(self, scn: Scenario, source: str = "", say: Say | None = None) -> None:
        self.scn = scn
        self.source = source
        self.say: Say = say or (lambda _msg: None)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"yiwang-drill-{scn.name}-"))
        f = scn.federation
        self.live = LiveController(
            self.workdir / "yiwang.db",
            name="drill-controller",
            loop_interval_s=f.loop_interval_s,
            leader_ttl_s=f.leader_ttl_s,
        )
        self.http = httpx.Client(timeout=HTTP_TIMEOUT_S)
        self.fed: DrillFederation | None = None
        self.clusters: dict[str, Cluster] = {}
        self.members: list[str] = []
        self.lease_s = 0.0
        self.grace_s = 0.0
        self.acknowledged: list[str] = []
        self.fillers: set[str] = set()
        self.jobs: dict[str, dict[str, Any]] = {}  # last seen through the API
        # (job id, attempt, message) -> residency_wait of its decision: a pending job's decision
        # is asked for again only when the scheduler wrote it a new message.
        self.decided_waits: dict[tuple[str, int, str], bool] = {}
        self.view_gap_s = 0.0  # the longest the timeline went without a fresh view of the jobs
        self.timeline_t0 = time.monotonic()  # reset when the timeline starts
        self.unanswered_reads: list[str] = []  # when a view of the jobs failed, and how
        self.runs = [
            FaultRun(i, f.fault, f.at_s, getattr(f, "cluster", None)) for i, f in enumerate(scn.timeline)
        ]
        self.residency = ResidencyPolicy()
        self.report = DrillReport(scn.name, source, datetime.now(UTC).isoformat(timespec="seconds"))
        self.margins: dict[str, list[float]] = {
            "self_stop_before_lease_end_s": [],
            "replaced_after_lease_plus_grace_s": [],
        }
        self.stale_probes = 0

    # ---- API --------------------------------------------------------------------------------
    def api(self, method: str, path: str, **kw: Any) -> Any:
        """One call to the controller. A write that may be repeated (a submission under an
        Idempotency-Key, a PUT) is sent again when the connection fails or no answer comes within
        ``HTTP_TIMEOUT_S`` (a loaded CI machine, a controller restarting), for up to
        ``RETRY_FOR_S``: a client that gave up there would not know whether its job was
        acknowledged, and the key makes the repeat return the first answer. Reads are not
        repeated here: the loops that poll them treat a failure as "not answering yet"."""
        repeatable = method == "PUT" or "Idempotency-Key" in (kw.get("headers") or {})
        deadline = time.monotonic() + RETRY_FOR_S
        while True:
            try:
                r = self.http.request(method, f"{self.live.url}{path}", **kw)
                break
            except httpx.TransportError:
                if not repeatable or time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r.json() if r.content else None

    def waits_for_residency(self, job: dict[str, Any]) -> bool:
        """Pending because no reachable cluster may legally hold its data (the scheduler says so,
        in the job's stored decision)."""
        if job.get("phase") != "Pending":
            return False
        key = (job["id"], job["attempt"], job.get("message", ""))
        known = self.decided_waits.get(key)
        if known is None:
            try:
                decision = self.api("GET", f"/v1/jobs/{job['id']}/decision")
            except (httpx.HTTPError, RuntimeError):  # not decided yet, or not answering
                return False
            if len(self.decided_waits) >= DECISION_CACHE:
                self.decided_waits.clear()
            known = self.decided_waits[key] = residency_wait(decision)
        return known

    def refresh_jobs(self) -> bool:
        """All jobs in one call (bounded pages); False while the controller does not answer."""
        seen: dict[str, dict[str, Any]] = {}
        cursor: str | None = None
        try:
            for _ in range(100):
                params: dict[str, Any] = {"limit": 1000}
                if cursor:
                    params["cursor"] = cursor
                page = self.api("GET", "/v1/jobs", params=params)
                seen.update({j["id"]: j for j in page["items"]})
                cursor = page["next_cursor"]
                if not cursor:
                    break
        except (httpx.HTTPError, RuntimeError) as exc:
            self.unanswered_reads.append(
                f"t={time.monotonic() - self.timeline_t0:.2f}s {type(exc).__name__}: {exc}"[:200]
            )
            return False
        self.jobs = seen
        return True

    def wait(self, what: str, probe: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if probe():
                return True
            time.sleep(POLL_S)
        self.say(f"  timed out after {timeout_s:.0f}s waiting for {what}")
        return False

    # ---- set-up -----------------------------------------------------------------------------
    def start(self) -> None:
        f = self.scn.federation
        self.live.start()
        ctl = self.live.controller
        self.residency = ctl.policies.residency
        self.clusters = {c.name: c for c in ctl.policies.topology.clusters}
        self.members = list(self.clusters) if f.clusters == "all" else list(f.clusters)
        failover = self.api("GET", "/v1/policies")["failover"]
        if f.lease_s is not None:
            failover["lease_s"] = f.lease_s
        if f.heartbeat_grace_s is not None:
            failover["heartbeat_grace_s"] = f.heartbeat_grace_s
        self.api("PUT", "/v1/policies/failover", json=failover)
        self.lease_s, self.grace_s = float(failover["lease_s"]), float(failover["heartbeat_grace_s"])
        self.backups: dict[str, list[str]] = failover.get("backups", {})
        self.fed = DrillFederation(
            self.live.url,
            [self.clusters[n] for n in self.members],
            nodes_per_cluster=f.nodes_per_cluster,
            time_scale=f.time_scale,
            poll_interval_s=f.poll_interval_s,
        )
        self.fed.start()
        self.report.federation = {
            "mode": f.mode,
            "executor": f.executor,
            "clusters": len(self.members),
            "members": self.members if len(self.members) < len(self.clusters) else "all",
            "time_scale": f.time_scale,
            "lease_s": self.lease_s,
            "heartbeat_grace_s": self.grace_s,
            "controller": self.live.url,
        }
        self.say(
            f"  controller {self.live.url}, {len(self.members)} agents (simulated, time scale "
            f"{f.time_scale}), lease {self.lease_s:g}s, grace {self.grace_s:g}s"
        )

    def load(self) -> None:
        for ds in self.scn.load.datasets:
            self.api("POST", "/v1/datasets", json=ds.model_dump(mode="json"))
        for g in self.scn.load.jobs:
            for i in range(g.count):
                body = {
                    "name": f"{g.name}-{i}",
                    "tenant": g.tenant,
                    "priority": g.priority,
                    "resources": g.resources.model_dump(),
                    "replicas": g.replicas,
                    "inputs": g.inputs,
                    "constraints": g.constraints.model_dump(),
                    "failover": {"policy": g.failover},
                    "expected_runtime_s": g.expected_runtime_s,
                    "max_runtime_s": int(g.expected_runtime_s * 10) + 60,
                }
                job = self.api(
                    "POST", "/v1/jobs", json=body, headers={"Idempotency-Key": f"drill-{g.name}-{i}"}
                )
                self.acknowledged.append(job["id"])
        self.say(f"  {len(self.scn.load.datasets)} data sets, {len(self.acknowledged)} jobs acknowledged")

        def steady() -> bool:
            if not self.refresh_jobs():
                return False
            return all(
                self.jobs.get(j, {}).get("phase") in ("Running", "Succeeded")
                or self.waits_for_residency(self.jobs.get(j, {}))
                for j in self.acknowledged
                if j in self.jobs
            ) and all(j in self.jobs for j in self.acknowledged)

        if not self.wait("every job Running", steady, self.scn.load.steady_timeout_s):
            raise RuntimeError("the load did not reach steady state (every job Running) in time")

    # ---- faults -----------------------------------------------------------------------------
    def inject(self, run: FaultRun, t0: float) -> None:
        fault = self.scn.timeline[run.index]
        assert self.fed is not None
        if run.fault in (*CLUSTER_FAULTS, "kill_controller") and self.refresh_jobs():
            ctl = self.live.controller
            for j in self.jobs.values():
                if j["phase"] in ACTIVE and (run.fault == "kill_controller" or j["cluster"] == run.cluster):
                    row = ctl.store.get_job(j["id"])
                    run.affected[j["id"]] = {**j, "epoch": row["epoch"] if row else 0}
        run.injected_mono = time.monotonic()
        run.injected_s = run.injected_mono - t0
        if run.fault == "kill_agent" and run.cluster:
            self.fed.kill(run.cluster)
        elif run.fault == "partition" and run.cluster:
            self.fed.partition(run.cluster)
        elif run.fault == "recover" and run.cluster:
            self.fed.recover(run.cluster)
        elif run.fault == "kill_controller":
            self.live.kill()
            time.sleep(getattr(fault, "down_s", 0.0))  # the outage itself, not a wait for a state
            self.live.start()
            self.submit_probe(run)
        elif run.fault == "stop_prometheus":
            url = self.scn.federation.prometheus_url
            run.skipped = (
                f"no Prometheus is configured (federation.prometheus_url unset): skipped at {run.injected_s:.1f}s"
                if not url
                else f"a Prometheus at {url} is not started by this drill, so it cannot stop it: skipped"
            )
            self.say(f"  SKIP stop_prometheus: {run.skipped}")
        elif isinstance(fault, FillCluster):
            self.fill(run, fault)
        self.say(
            f"  t={run.injected_s:5.2f}s {run.fault} {run.cluster or ''} ({len(run.affected)} affected jobs)"
        )

    def submit_probe(self, run: FaultRun) -> None:
        """A new job after the restart: it runs only once the new controller holds the leader
        lease and schedules, so the RTO covers scheduling, not just answering."""
        body = {
            "name": f"drill-probe-{run.index}",
            "tenant": "national",
            "resources": {"cpu": 1, "memory_gib": 1},
            "expected_runtime_s": 60.0,
        }
        job = self.api("POST", "/v1/jobs", json=body, headers={"Idempotency-Key": f"drill-probe-{run.index}"})
        self.acknowledged.append(job["id"])
        run.affected[job["id"]] = {**job, "attempt": 0, "epoch": 0}

    def fill(self, run: FaultRun, fault: FillCluster) -> None:
        spec = self.clusters[fault.cluster]
        n = self.scn.federation.nodes_per_cluster
        c = spec.capacity
        body = {
            "name": f"drill-fill-{fault.cluster}"[:63],
            "tenant": spec.tenant,
            "resources": {"cpu": c.cpu / n * fault.fraction, "memory_gib": c.memory_gib / n * fault.fraction},
            "replicas": n,
            "constraints": {"allow_clusters": [fault.cluster]},
            "expected_runtime_s": 86400.0,
            "max_runtime_s": 10 * 86400,
        }
        job = self.api("POST", "/v1/jobs", json=body, headers={"Idempotency-Key": f"drill-fill-{run.index}"})
        run.filler_ids.append(job["id"])
        self.fillers.add(job["id"])
        self.wait(
            f"filler job on {fault.cluster} Running",
            lambda: self.refresh_jobs() and self.jobs.get(job["id"], {}).get("phase") == "Running",
            10.0,
        )

    def observe(self, clusters: dict[str, dict[str, Any]] | None) -> None:
        """Update detection and recovery of every injected fault from the latest API view."""
        t = time.monotonic()
        for run in self.runs:
            if run.injected_mono is None or run.skipped:
                continue
            since = t - run.injected_mono
            if (
                run.fault in CLUSTER_FAULTS
                and run.detected_s is None
                and clusters
                and run.cluster in clusters
            ):
                cl = clusters[run.cluster]
                if cl["health"] == "Unreachable":
                    run.detected_s = since
                    run.last_heartbeat_wall = _parse_wall(cl.get("last_heartbeat"))
            for job_id, before in run.affected.items():
                if job_id in run.recovered or job_id in run.finished_in_place:
                    continue
                now = self.jobs.get(job_id)
                if now is None:
                    continue
                if run.fault in CLUSTER_FAULTS and self.waits_for_residency(now):
                    run.residency_waits.add(job_id)
                moved = now["attempt"] > before["attempt"] or now["cluster"] != before["cluster"]
                if now["phase"] == "Succeeded" and not moved and run.fault in CLUSTER_FAULTS:
                    run.finished_in_place.add(job_id)
                elif now["phase"] == "Succeeded" or (
                    now["phase"] == "Running" and (moved or run.fault == "kill_controller")
                ):
                    run.recovered[job_id] = since
                    if now["cluster"] != before["cluster"] and now["cluster"]:
                        run.moved_to[job_id] = now["cluster"]

    def timeline(self) -> None:
        t0 = self.timeline_t0 = time.monotonic()
        settle_deadline = t0 + self.scn.timeline[-1].at_s + self.scn.settle_timeout_s
        pending = list(self.runs)
        last_view = time.monotonic()
        while time.monotonic() < settle_deadline:
            while pending and time.monotonic() >= t0 + pending[0].at_s:
                self.inject(pending.pop(0), t0)
            clusters: dict[str, dict[str, Any]] | None = None
            if self.refresh_jobs():
                now = time.monotonic()
                self.view_gap_s = max(self.view_gap_s, now - last_view)
                last_view = now
                try:
                    clusters = {c["name"]: c for c in self.api("GET", "/v1/clusters")["items"]}
                except (httpx.HTTPError, RuntimeError):
                    clusters = None
            self.observe(clusters)
            if not pending and self.settled():
                break
            wake = t0 + pending[0].at_s if pending else time.monotonic() + POLL_S
            time.sleep(max(0.0, min(POLL_S, wake - time.monotonic())))
        else:
            self.say(f"  settle timeout ({self.scn.settle_timeout_s:g}s) reached; measuring what is")

    def settled(self) -> bool:
        """Every fault measured and every job ended (or waits legally); nothing left to watch."""
        for run in self.runs:
            if run.skipped or run.injected_mono is None:
                continue
            if run.fault in CLUSTER_FAULTS and run.detected_s is None:
                return False
            if run.rto_s is None and run.outstanding():
                return False
        for job_id in self.acknowledged:
            j = self.jobs.get(job_id)
            if j is None or not (
                j["phase"] in ("Succeeded", "Failed", "Cancelled") or self.waits_for_residency(j)
            ):
                return False
        return True

    # ---- measurements -----------------------------------------------------------------------
    def residency_violation(self, rec: ExecutionRecord) -> str | None:
        job = self.jobs.get(rec.job_id)
        cluster = self.clusters.get(rec.cluster)
        if job is None or cluster is None:
            return None
        for ds_id in job["spec"]["inputs"]:
            ds = next((d for d in self.scn.load.datasets if d.id == ds_id), None)
            if ds is None:
                continue
            rule = self.residency.rule(Classification(ds.classification))
            if rule is Movement.anywhere or rec.cluster in ds.locations:
                continue
            if rule is Movement.owner_or_national and (
                cluster.tenant == ds.owner or cluster.tier == Tier.national
            ):
                continue
            return f"{ds.classification} data {ds.id} of {ds.owner} ran on {rec.cluster}"
        return None

    def probe_stale_reports(self) -> list[dict[str, Any]]:
        """After an agent came back, its revoked attempts' reports must be refused (409/404)."""
        accepted = []
        ctl = self.live.controller
        for i, run in enumerate(self.runs):
            recovered = any(r.fault == "recover" and r.cluster == run.cluster for r in self.runs[i + 1 :])
            if run.fault not in CLUSTER_FAULTS or not recovered:
                continue
            for job_id, before in run.affected.items():
                row = ctl.store.get_job(job_id)
                if row is not None and (row["cluster"], row["attempt"]) == (run.cluster, before["attempt"]):
                    continue  # still current (released and placed back, or never moved): not stale
                body = {
                    "job_id": job_id,
                    "attempt": before["attempt"],
                    "epoch": before["epoch"] or 1,
                    "phase": "Succeeded",
                    "exit_code": 0,
                    "message": "drill: report of a revoked attempt",
                }
                r = self.http.post(f"{self.live.url}/v1/agents/{run.cluster}/status", json=body)
                self.stale_probes += 1
                if r.status_code < 400:
                    accepted.append({"job_id": job_id, "attempt": before["attempt"], "status": r.status_code})
        return accepted

    def partition_checks(
        self, records: list[ExecutionRecord]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        late, early = [], []
        for run in self.runs:
            if run.fault != "partition" or run.last_heartbeat_wall is None:
                continue
            lease_end = run.last_heartbeat_wall + self.lease_s
            for rec in records:
                if rec.cluster != run.cluster or (rec.job_id, rec.attempt) not in {
                    (j, b["attempt"]) for j, b in run.affected.items()
                }:
                    continue
                if rec.ended_wall is None or rec.ended_wall >= lease_end:
                    late.append(
                        {
                            "job_id": rec.job_id,
                            "attempt": rec.attempt,
                            "ended_wall": rec.ended_wall,
                            "lease_end_wall": lease_end,
                        }
                    )
                else:
                    self.margins["self_stop_before_lease_end_s"].append(lease_end - rec.ended_wall)
        for run in self.runs:
            if run.fault not in CLUSTER_FAULTS or run.last_heartbeat_wall is None:
                continue
            not_before = run.last_heartbeat_wall + self.lease_s + self.grace_s
            for job_id in run.affected:
                events = self.api("GET", f"/v1/jobs/{job_id}")["events"]
                for e in events:
                    at = datetime.fromisoformat(e["at"]).timestamp()
                    if e["type"] != "LeaseExpired" or at < run.last_heartbeat_wall:
                        continue
                    if at < not_before - 0.01:
                        early.append({"job_id": job_id, "at": e["at"], "not_before_wall": not_before})
                    else:
                        self.margins["replaced_after_lease_plus_grace_s"].append(at - not_before)
        return late, early

    def measure(self) -> None:
        assert self.fed is not None
        self.refresh_jobs()
        records = self.fed.sink.snapshot()
        doubles = find_double_runs(records)
        self.note_restarts(records)
        lost: list[dict[str, Any]] = []
        waiting: list[str] = []
        for job_id in self.acknowledged:
            j = self.jobs.get(job_id)
            if j is None:
                lost.append({"job_id": job_id, "why": "missing after the drill"})
            elif self.waits_for_residency(j):
                waiting.append(job_id)
            elif j["phase"] != "Succeeded":
                lost.append(
                    {
                        "job_id": job_id,
                        "name": j["spec"]["name"],
                        "phase": j["phase"],
                        "why": j["message"][:300],
                    }
                )
        violations = [
            {"record": r.as_dict(), "why": why}
            for r in records
            if (why := self.residency_violation(r)) is not None
        ]
        current = {(j["id"], j["attempt"], j["cluster"]) for j in self.jobs.values() if j["phase"] in ACTIVE}
        stale_running = [
            r.as_dict()
            for r in records
            if r.ended is None and (r.job_id, r.attempt, r.cluster) not in current
        ]
        accepted = self.probe_stale_reports()
        late, early = self.partition_checks(records)
        cluster_runs = [r for r in self.runs if r.fault in CLUSTER_FAULTS and not r.skipped]
        rto_runs = [r for r in self.runs if r.fault in (*CLUSTER_FAULTS, "kill_controller") and not r.skipped]
        detections = [r.detected_s for r in cluster_runs]
        rtos = [r.rto_s for r in rto_runs]
        m: dict[str, Any] = {
            "detection_s": _r(max(d for d in detections if d is not None))
            if detections and None not in detections
            else None,
            "rto_s": _r(max(x for x in rtos if x is not None)) if rtos and None not in rtos else None,
            "rto_seen_s": _r(max(x for r in rto_runs if (x := r.rto_seen_s) is not None))
            if rtos and None not in rtos
            else None,
            "jobs_lost": len(lost),
            "jobs_run_twice": len({d.job_id for d in doubles}),
        }
        if detections and None in detections:
            m["detection_note"] = "a faulted cluster was never seen Unreachable"
        if rtos and None in rtos:
            not_back = sum(len(r.outstanding()) for r in rto_runs)
            m["rto_note"] = (
                f"{not_back} affected job(s) never ran again"
                if not_back
                else "every affected job finished where it was as the fault struck: nothing ran again"
            )
        invariants = {
            "residency_violations": len(violations),
            "stale_reports_accepted": len(accepted),
            "stale_attempts_running": len(stale_running),
            "late_self_stops": len(late),
            "early_replacements": len(early),
        }
        self.report.measurements = {**m, **invariants}
        self.report.results = evaluate(self.scn.budgets, m, invariants)
        for run in self.runs:
            if run.skipped:
                self.report.results.append(
                    BudgetResult(
                        f"fault[{run.index}].{run.fault}", None, None, "", True, run.skipped, skipped=True
                    )
                )
        moved = [(j, c) for r in cluster_runs for j, c in r.moved_to.items()]
        to_backup = [
            j
            for r in cluster_runs
            for j, c in r.moved_to.items()
            if c in self.backups.get(r.cluster or "", [])
        ]
        phases: dict[str, int] = {}
        for job_id in self.acknowledged:
            p = self.jobs.get(job_id, {}).get("phase", "missing")
            phases[p] = phases.get(p, 0) + 1
        self.report.jobs = {
            "acknowledged": len(self.acknowledged),
            "phases": phases,
            "waiting_for_residency": len(waiting),
            "filler_jobs": len(self.fillers),
            "executions": len(records),
            "failed_over": len(moved),
            "failed_over_to_designated_backup": len(to_backup),
        }
        self.report.timeline = [r.as_dict() for r in self.runs]
        self.report.details = {
            "lost": lost,
            "double_runs": [d.as_dict() for d in doubles],
            "residency_violations": violations,
            "stale_reports_accepted": accepted,
            "stale_attempts_running": stale_running,
            "late_self_stops": late,
            "early_replacements": early,
            "failover_targets": _count(c for _, c in moved),
            "failover_targets_by_group": self.targets_by_group(cluster_runs),
            "stale_reports_probed": self.stale_probes,
            "reexecuted_jobs": self.reexecutions(records),
            "longest_without_view_s": _r(self.view_gap_s),
            "unanswered_job_reads": self.unanswered_reads[-20:],
            **{f"min_{k}": _r(min(v)) if v else None for k, v in self.margins.items()},
        }

    def stop(self) -> None:
        for job_id in self.fillers:
            try:
                self.api("POST", f"/v1/jobs/{job_id}/cancel")
            except (httpx.HTTPError, RuntimeError):
                pass
        if self.fed is not None:
            self.fed.stop()
        self.live.kill()
        self.http.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def run(self) -> DrillReport:
        t = time.monotonic()
        quiet = logging.getLogger("yiwang")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # the faults make agents and controller warn by design
        try:
            self.start()
            self.load()
            self.timeline()
            self.measure()
        except Exception as exc:  # the report says what broke; the exit code says it failed
            self.report.error = f"{type(exc).__name__}: {exc}"
            self.say(f"  ERROR: {self.report.error}")
        finally:
            self.report.duration_s = round(time.monotonic() - t, 3)
            self.stop()
            quiet.setLevel(level)
        return self.report

    def note_restarts(self, records: list[ExecutionRecord]) -> None:
        """For each recovered job of a cluster fault, when an executor started its new execution
        (another attempt, or another cluster), after the fault; and say which job was slowest."""
        of_job = by_job(records)
        for run in self.runs:
            if run.fault not in CLUSTER_FAULTS or run.injected_mono is None:
                continue
            for job_id in run.recovered:
                before = run.affected[job_id]
                starts = [
                    r.started - run.injected_mono
                    for r in of_job.get(job_id, ())
                    if r.started >= run.injected_mono
                    and (r.attempt > before["attempt"] or r.cluster != before["cluster"])
                ]
                if starts:
                    run.started_again[job_id] = min(starts)
            slow = run.slowest_recovery()
            if slow is not None:
                started = slow["executor_started_s"]
                self.say(
                    f"  slowest recovery after {run.fault} {run.cluster}: {slow['name']} on {slow['cluster']},"
                    f" started by its executor at {'?' if started is None else f'{started:.3f}'} s,"
                    f" seen back through the API at {slow['seen_back_s']:.3f} s"
                    f" (the longest the drill went without a fresh view of the jobs: {self.view_gap_s:.3f} s"
                    + (
                        f"; reads unanswered: {'; '.join(self.unanswered_reads[:3])}"
                        if self.unanswered_reads
                        else ""
                    )
                    + ")"
                )

    def reexecutions(self, records: list[ExecutionRecord]) -> dict[str, list[str]]:
        """Every job executed more than once: where, which attempt, how each execution ended."""
        return {
            self.jobs.get(job_id, {}).get("spec", {}).get("name", job_id): [
                f"attempt {r.attempt} on {r.cluster}: {r.end_reason or 'running'}"
                for r in sorted(recs, key=lambda r: r.started)
            ]
            for job_id, recs in sorted(by_job(records).items())
            if len(recs) > 1
        }

    def targets_by_group(self, runs: list[FaultRun]) -> dict[str, dict[str, int]]:
        """Where each job group's failed-over jobs went ("gd-general": {"prov-guangxi": 5})."""
        out: dict[str, dict[str, int]] = {}
        for run in runs:
            for job_id, cluster in run.moved_to.items():
                group = run.affected[job_id]["spec"]["name"].rsplit("-", 1)[0]
                out.setdefault(group, {})
                out[group][cluster] = out[group].get(cluster, 0) + 1
        return out


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def run_scenario(scn: Scenario, source: str = "", say: Say | None = None) -> DrillReport:
    return DrillRunner(scn, source, say).run()


AnyScenario = Scenario | ProcScenario | NationalScenario


def load_any(path: Path, topology: Topology | None = None) -> AnyScenario:
    """An embedded scenario, or a process scenario (``federation.mode: processes``)."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: cannot read", errors=[{"path": "(file)", "message": str(exc)}]) from exc
    if is_process_doc(doc):
        return parse_proc_scenario(doc, str(path), topology)
    if is_national_doc(doc):
        return parse_national_scenario(doc, str(path), topology)
    return parse_scenario(doc, str(path), topology)


def load_all(files: list[Path]) -> tuple[list[tuple[Path, AnyScenario]], list[tuple[Path, ScenarioError]]]:
    """Validate every file against the repository's topology; collect every error."""
    from controller.services.policy_files import load_policy_set

    topology = load_policy_set(REPO_POLICIES).topology
    ok: list[tuple[Path, AnyScenario]] = []
    bad = []
    for path in files:
        try:
            ok.append((path, load_any(path, topology)))
        except ScenarioError as exc:
            bad.append((path, exc))
    return ok, bad


def _run_one(scn: AnyScenario, path: Path, say: Say, logs: Path | None) -> DrillReport:
    if isinstance(scn, ProcScenario):
        from controller.drills.procrunner import run_process_scenario

        return run_process_scenario(scn, str(path), say, logs)
    if isinstance(scn, NationalScenario):
        from controller.drills.nationalrunner import run_national_scenario

        return run_national_scenario(scn, str(path), say, logs)
    return run_scenario(scn, str(path), say)


def medians(reports: list[DrillReport]) -> dict[str, Any]:
    """Median (and range) of every numeric measurement over several runs of one scenario."""
    keys = sorted({k for r in reports for k, v in r.measurements.items() if isinstance(v, int | float)})
    out: dict[str, Any] = {}
    for k in keys:
        vals = [r.measurements[k] for r in reports if isinstance(r.measurements.get(k), int | float)]
        if vals:
            out[k] = {
                "median": statistics.median(vals),
                "min": min(vals),
                "max": max(vals),
                "runs": len(vals),
            }
    return out


def run_files(
    files: list[Path], out: Path, say: Say | None = None, runs: int = 1, keep_logs: bool = False
) -> tuple[int, list[DrillReport]]:
    """Run each scenario (``runs`` times); write ``<out>/<name>.json`` (``<name>.run<k>.json`` and
    ``<name>.medians.json`` when runs > 1) and ``<out>/junit.xml``. Exit code: 0 all budgets met in
    every run, 1 a budget broke or a drill failed to run, 2 a scenario file is invalid."""
    say = say or print
    scenarios, invalid = load_all(files)
    for path, exc in invalid:
        say(f"{path}: invalid scenario")
        for e in exc.errors:
            say(f"  {e['path']}: {e['message']}")
    if invalid:
        return 2, []
    reports = []
    for path, scn in scenarios:
        mine = []
        for k in range(1, runs + 1):
            say(f"drill {scn.name} ({path})" + (f" run {k}/{runs}" if runs > 1 else ""))
            stem = scn.name if runs == 1 else f"{scn.name}.run{k}"
            rep = _run_one(scn, path, say, out / f"{stem}.logs" if keep_logs else None)
            write_json(rep, out / f"{stem}.json")
            for r in rep.results:
                mark = "skip" if r.skipped else ("ok  " if r.passed else "FAIL")
                say(f"  {mark} {r.name}: {r.message}")
            say(f"  {'PASSED' if rep.passed else 'FAILED'} in {rep.duration_s:.1f}s")
            mine.append(rep)
        if runs > 1:
            meds = medians(mine)
            body: dict[str, Any] = {
                "scenario": scn.name,
                "runs": runs,
                "passed": [r.passed for r in mine],
                "medians": meds,
            }
            (out / f"{scn.name}.medians.json").write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
            for key, v in meds.items():
                say(f"  median {key}: {v['median']:g} ({v['min']:g}-{v['max']:g})")
        reports.extend(mine)
    write_junit(reports, out / "junit.xml")
    return (0 if all(r.passed for r in reports) else 1), reports
