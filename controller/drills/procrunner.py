"""Run a process drill (``federation.mode: processes``): real controller and agent processes,
jobs that write markers, faults done to the processes, verdict from the markers.

Measured (wall seconds; every process runs on this machine):
- from the markers (``controller.drills.markers``), never from the controller's view:
  duplicate_successes (jobs whose work finished twice), overlapping_jobs (jobs with two
  executions at the same time; an execution without an end runs until the drill's end),
  executions, executions stopped by a signal, executions without an end;
- from the API: acknowledged jobs (a 2xx from POST /v1/jobs), jobs_lost (acknowledged, then
  missing, Failed or Cancelled), jobs_stuck (acknowledged and still not terminal
  ``stuck_after_s`` after their work could have finished: the load ended, the last fault was
  undone, plus work_s);
- detection_s: agent fault -> the API shows the cluster ``Unreachable``;
- rto_s: agent fault -> every affected job (an open execution on the cluster, or Scheduled or
  Running there, at the fault) has a new execution (another attempt or cluster) in the markers;
  affected jobs that finished where they were without running again are counted apart;
- takeover_s: controller SIGKILL -> the first job acknowledged after the restart is Scheduled
  (its event time); answering_s: SIGKILL -> /readyz answers again.

Why one module of this length: a process drill is one procedure (start, load, faults, measures,
verdict) over one set of processes; the parts it shares with the national drills are in
``livedrill``.
"""

from __future__ import annotations

import contextlib
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from controller.drills import netns
from controller.drills.livedrill import ACTIVE, TICK_S, LiveDrill, Say, rounded, wall_of
from controller.drills.markers import analyse
from controller.drills.procs import (
    LAUNCH,
    RUNNER_CODE,
    Proc,
    agent_url_flag,
    child_env,
    wait_http,
)
from controller.drills.procscenario import DOWN, AgentSpec, ProcScenario
from controller.drills.report import DrillReport, check_max

TERMINAL = ("Succeeded", "Failed", "Cancelled")


def scenario_skip_reason(scn: ProcScenario) -> str | None:
    """Why this machine cannot run the scenario (it is then skipped with this reason)."""
    if scn.federation.netns:
        why = netns.unavailable()
        if why:
            return why
    if scn.federation.database == "postgresql":
        from controller.bench.postgres import unavailable

        return unavailable()
    return None


@dataclass
class FaultRun:
    index: int
    fault: str
    at_s: float
    cluster: str | None = None
    injected_wall: float | None = None
    detected_s: float | None = None
    affected: dict[str, set[tuple[int, str]]] = field(default_factory=dict)  # job -> executions before
    recovered: dict[str, float] = field(default_factory=dict)  # job -> s after the fault
    finished_in_place: list[str] = field(default_factory=list)
    # kill_controller
    restart_wall: float | None = None
    restarted: bool = False
    answering_s: float | None = None
    takeover_s: float | None = None
    takeover_job: str | None = None

    @property
    def rto_s(self) -> float | None:
        if any(j not in self.recovered and j not in self.finished_in_place for j in self.affected):
            return None
        return max(self.recovered.values(), default=0.0)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "index": self.index,
            "fault": self.fault,
            "at_s": self.at_s,
            "cluster": self.cluster,
            "injected_wall": self.injected_wall,
        }
        if self.fault in DOWN:
            body |= {
                "detection_s": rounded(self.detected_s),
                "rto_s": rounded(self.rto_s),
                "affected_jobs": len(self.affected),
                "ran_again": len(self.recovered),
                "finished_in_place": len(self.finished_in_place),
                "never_ran_again": len(
                    [j for j in self.affected if j not in self.recovered and j not in self.finished_in_place]
                ),
            }
        if self.fault == "kill_controller":
            body |= {"answering_s": rounded(self.answering_s), "takeover_s": rounded(self.takeover_s)}
        return body


def _git_head(code: Path) -> str | None:
    try:
        r = subprocess.run(
            ["git", "-C", str(code), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip()[:120] or None


class ProcessDrill(LiveDrill[FaultRun]):
    def __init__(
        self, scn: ProcScenario, source: str = "", say: Say | None = None, keep_logs: Path | None = None
    ) -> None:
        super().__init__(scn, source, say, keep_logs, workdir_prefix="yiwang-pdrill")
        self.stack = contextlib.ExitStack()
        self.ctl: Proc | None = None
        self.ctl_starts = 0
        self.relay: Proc | None = None
        self.agents: dict[str, Proc] = {}
        self.specs: dict[str, AgentSpec] = {a.cluster: a for a in scn.federation.agents}
        self.port = 0
        self.db_url = ""
        self.probed: set[int] = set()  # fault runs that submitted a probe
        self.runs = [
            FaultRun(i, f.fault, f.at_s, getattr(f, "cluster", None))
            for i, f in enumerate(scn.expanded_timeline())
        ]
        self.faults = scn.expanded_timeline()
        self.lease_s = self.grace_s = 0.0

    # ---- addresses and clients --------------------------------------------------------------
    @property
    def controller_host(self) -> str:
        return self.lab.hub_ip if self.lab else "127.0.0.1"

    @property
    def agent_url(self) -> str:
        return f"http://{self.controller_host}:{self.port}"

    def _transport_kw(self) -> dict[str, Any]:
        return {"uds": str(self.workdir / "controller.sock")} if self.lab else {}

    def client(self) -> httpx.Client:
        base = "http://controller" if self.lab else self.agent_url
        return httpx.Client(
            base_url=base, transport=httpx.HTTPTransport(**self._transport_kw()), timeout=10.0
        )

    def async_client(self) -> httpx.AsyncClient:
        base = "http://controller" if self.lab else self.agent_url
        limits = httpx.Limits(max_connections=self.scn.load.concurrency + 4)
        return httpx.AsyncClient(
            base_url=base, transport=httpx.AsyncHTTPTransport(limits=limits, **self._transport_kw())
        )

    # ---- processes --------------------------------------------------------------------------
    def start_controller(self) -> None:
        self.ctl_starts += 1
        argv = [
            sys.executable,
            "-c",
            LAUNCH,
            "serve",
            "--host",
            self.controller_host,
            "--port",
            str(self.port),
        ]
        argv += ["--database-url", self.db_url]
        prefix = self.lab.exec_prefix(None) if self.lab else []
        ttl_s = self.scn.federation.leader_ttl_s
        ttl = {"YIWANG_LEADER_TTL_S": f"{ttl_s:g}"} if ttl_s is not None else {}
        self.ctl = Proc(
            f"controller-{self.ctl_starts}",
            prefix + argv,
            child_env(ttl, code=self.code),
            self.workdir / "logs" / f"controller-{self.ctl_starts}.log",
            self.workdir,
        )

    def start_agent(self, spec: AgentSpec) -> None:
        n = self.agent_starts[spec.cluster] = self.agent_starts.get(spec.cluster, 0) + 1
        wd = self.workdir / "agents" / spec.cluster
        argv = [sys.executable, "-c", LAUNCH, "agent", "--cluster", spec.cluster, "--executor", "local"]
        argv += ["--workdir", str(wd), "--cpu", f"{spec.cpu:g}", "--memory-gib", f"{spec.memory_gib:g}"]
        flag = agent_url_flag(self.code)
        if flag:
            argv += [flag, self.agent_url]
        if self.scn.federation.agent_poll_interval_s is not None:
            argv += ["--poll-interval", f"{self.scn.federation.agent_poll_interval_s:g}"]
        prefix = self.lab.exec_prefix(spec.cluster) if self.lab else []
        env = child_env({"YIWANG_CONTROLLER_URL": self.agent_url, "YIWANG_URL": self.agent_url}, self.code)
        self.agents[spec.cluster] = Proc(
            f"agent-{spec.cluster}-{n}",
            prefix + argv,
            env,
            self.workdir / "logs" / f"agent-{spec.cluster}-{n}.log",
            self.workdir,
        )

    # ---- set-up -----------------------------------------------------------------------------
    def setup(self) -> None:
        f = self.scn.federation
        if f.netns:
            self.lab = netns.NetLab([a.cluster for a in f.agents])
            self.lab.create()
            self.port = 8080
            self.relay = Proc(
                "relay",
                [
                    *self.lab.exec_prefix(None),
                    sys.executable,
                    "-m",
                    "controller.drills.relay",
                    str(self.workdir / "controller.sock"),
                    self.lab.hub_ip,
                    str(self.port),
                ],
                child_env(code=RUNNER_CODE),
                self.workdir / "logs" / "relay.log",
                self.workdir,
            )
        else:
            from controller.live import free_port

            self.port = free_port()
        if f.database == "postgresql":
            from controller.bench.postgres import throwaway_postgres

            self.db_url = self.stack.enter_context(throwaway_postgres())
        else:
            self.db_url = f"sqlite:///{self.workdir / 'yiwang.db'}"
        if f.netns:  # the relay's socket appears once it runs
            deadline = time.monotonic() + 20
            while not (self.workdir / "controller.sock").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        self.http = self.client()
        self.start_controller()
        if not wait_http(self.api, "/readyz", 60, lambda b: b.get("status") == "ready"):
            raise RuntimeError("the controller did not answer /readyz in 60s (see its log)")
        policies = self.get("/v1/policies")
        failover = policies["failover"]
        if f.lease_s is not None or f.heartbeat_grace_s is not None:
            if f.lease_s is not None:
                failover["lease_s"] = f.lease_s
            if f.heartbeat_grace_s is not None:
                failover["heartbeat_grace_s"] = f.heartbeat_grace_s
            self.api.put("/v1/policies/failover", json=failover).raise_for_status()
        self.lease_s, self.grace_s = float(failover["lease_s"]), float(failover["heartbeat_grace_s"])
        first = [a for a in f.agents if a.start == "at_load"]
        for a in first:
            self.start_agent(a)
        self.wait_ready([a.cluster for a in first])
        self.report.federation = {
            "mode": "processes",
            "database": f.database,
            "netns": f.netns,
            "agents": [a.model_dump() for a in f.agents],
            "lease_s": self.lease_s,
            "heartbeat_grace_s": self.grace_s,
            "timers_from": "scenario" if f.lease_s or f.heartbeat_grace_s else "policies/failover.yaml",
            "code": str(self.code),
            "code_commit": _git_head(self.code),
        }
        self.say(
            f"  controller :{self.port} ({f.database}{', netns' if f.netns else ''}), "
            f"{len(first)} agent(s), lease {self.lease_s:g}s, grace {self.grace_s:g}s, code {self.code}"
        )

    def wait_steady(self) -> None:
        """Every acknowledged job Running (the load is fully on the first agents)."""
        sub = self.submitter
        assert sub is not None
        deadline = time.monotonic() + self.scn.load.steady_timeout_s
        while time.monotonic() < deadline:
            self.markers.poll()
            if sub.done:
                acked, _ = sub.snapshot()
                try:
                    jobs = self.list_jobs(phase="Running")
                except httpx.HTTPError:
                    jobs = {}
                if acked and set(acked) <= set(jobs):
                    return
            time.sleep(TICK_S)
        raise RuntimeError(
            f"the load did not reach steady state (every job Running) in {self.scn.load.steady_timeout_s:g}s"
        )

    # ---- faults -----------------------------------------------------------------------------
    def inject(self, run: FaultRun) -> None:
        c = run.cluster
        if run.fault in DOWN and c is not None:
            self.markers.poll()
            for ex in self.markers.executions:
                if ex.cluster == c and ex.ended is None:
                    run.affected.setdefault(ex.job_id, set())
            for phase in ("Scheduled", "Running"):
                with contextlib.suppress(httpx.HTTPError):
                    for j in self.list_jobs(cluster=c, phase=phase).values():
                        run.affected.setdefault(j["id"], set()).add((j["attempt"], c))
            for ex in self.markers.executions:
                if ex.job_id in run.affected:
                    run.affected[ex.job_id].add((ex.attempt, ex.cluster))
        run.injected_wall = time.time()
        if run.fault == "kill_agent" and c:
            self.agents[c].kill9()
        elif run.fault == "freeze_agent" and c:
            self.agents[c].signal(signal.SIGSTOP)
        elif run.fault == "partition" and c and self.lab:
            self.lab.partition(c)
        elif run.fault == "restart_agent" and c:
            self.start_agent(self.specs[c])
            self.last_up_wall = time.time()
        elif run.fault == "thaw_agent" and c:
            self.agents[c].signal(signal.SIGCONT)
            self.last_up_wall = time.time()
        elif run.fault == "heal" and c and self.lab:
            self.lab.heal(c)
            self.last_up_wall = time.time()
        elif run.fault == "kill_controller" and self.ctl is not None:
            self.ctl.kill9()
            run.restart_wall = run.injected_wall + getattr(self.faults[run.index], "down_s", 0.0)
        what = f" ({len(run.affected)} affected jobs)" if run.fault in DOWN else ""
        self.say(f"  {run.at_s:7.1f}s {run.fault} {c or ''}{what}")

    def tick(self) -> None:
        """Read new markers, and look through the API for detection and takeover."""
        now = time.time()
        for ex in self.markers.poll():
            for run in self.runs:
                if run.fault not in DOWN or run.injected_wall is None or ex.job_id not in run.affected:
                    continue
                before = run.affected[ex.job_id]
                if (
                    ex.job_id not in run.recovered
                    and ex.started >= run.injected_wall
                    and (ex.attempt, ex.cluster) not in before
                ):
                    run.recovered[ex.job_id] = ex.started - run.injected_wall
        for run in self.runs:
            if run.injected_wall is None:
                continue
            if run.fault in DOWN and run.detected_s is None and run.cluster:
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    if self.get(f"/v1/clusters/{run.cluster}").get("health") == "Unreachable":
                        run.detected_s = time.time() - run.injected_wall
            if run.fault != "kill_controller" or run.restart_wall is None:
                continue
            if not run.restarted and now >= run.restart_wall:
                self.start_controller()
                run.restarted = True
                run.restart_wall = now
                self.last_up_wall = now
            elif run.restarted and run.answering_s is None:
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    if self.api.get("/readyz", timeout=1.0).status_code == 200:
                        run.answering_s = time.time() - run.injected_wall
            elif run.restarted and run.takeover_s is None:
                self.check_takeover(run)

    def probe(self, run: FaultRun) -> None:
        self.probed.add(run.index)
        body = self.job_body(10_000_000 + run.index)
        body["name"] = f"{self.scn.load.name}-probe-{run.index}"
        with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
            r = self.api.post(
                "/v1/jobs", json=body, headers={"Idempotency-Key": f"drill-{self.tag}-probe-{run.index}"}
            )
            if r.status_code < 300:
                self.probes[r.json()["id"]] = time.time()

    def check_takeover(self, run: FaultRun) -> None:
        assert run.restart_wall is not None and run.injected_wall is not None
        after = [j for j, at in self.probes.items() if at >= run.restart_wall]
        if self.submitter is not None:
            after += self.submitter.acked_since(run.restart_wall)[:3]
        if not after and (self.submitter is None or self.submitter.done) and run.index not in self.probed:
            self.probe(run)  # the load is over: a probe job shows when the new controller places
        for job_id in after[:3]:
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                job = self.get(f"/v1/jobs/{job_id}")
                if job["phase"] == "Pending":
                    continue
                at = next(
                    (wall_of(e["at"]) for e in job.get("events", []) if e.get("to_phase") == "Scheduled"),
                    time.time(),
                )
                run.takeover_s = at - run.injected_wall
                run.takeover_job = job_id
                return

    # ---- verdict ----------------------------------------------------------------------------
    def measure(self) -> None:
        self.markers.poll()
        horizon = time.time()
        sub = self.submitter
        assert sub is not None
        acked, failures = sub.snapshot()
        acked.update(self.probes)
        try:
            jobs = self.list_jobs()
        except httpx.HTTPError as exc:
            raise RuntimeError(f"cannot list the jobs at the end: {exc}") from exc
        lost = [
            {"job_id": j, "why": "missing"}
            if j not in jobs
            else {"job_id": j, "phase": jobs[j]["phase"], "why": jobs[j]["message"][:200]}
            for j in acked
            if j not in jobs or jobs[j]["phase"] in ("Failed", "Cancelled")
        ]
        stuck = [j for j in acked if j in jobs and jobs[j]["phase"] in ACTIVE]
        stuck_phases: dict[str, int] = {}
        for j in stuck:
            stuck_phases[jobs[j]["phase"]] = stuck_phases.get(jobs[j]["phase"], 0) + 1
        phases: dict[str, int] = {}
        for j in acked:
            p = jobs.get(j, {}).get("phase", "missing")
            phases[p] = phases.get(p, 0) + 1
        a = analyse(self.markers, horizon)
        executed = {e.job_id for e in self.markers.executions}
        succeeded_unseen = [
            j for j in acked if jobs.get(j, {}).get("phase") == "Succeeded" and j not in executed
        ]
        for run in self.runs:
            for j in run.affected:
                if j not in run.recovered and jobs.get(j, {}).get("phase") == "Succeeded":
                    run.finished_in_place.append(j)
        agent_runs = [r for r in self.runs if r.fault in DOWN]
        kills = [r for r in self.runs if r.fault == "kill_controller"]
        detections = [r.detected_s for r in agent_runs]
        rtos = [r.rto_s for r in agent_runs]
        takeovers = [r.takeover_s for r in kills]
        m: dict[str, Any] = {
            "acknowledged": len(acked),
            "offered": sub.result.offered,
            "submission_failures": sum(failures.values()),
            **a.counters(),
            "jobs_lost": len(lost),
            "jobs_stuck": len(stuck),
            "succeeded_without_marker": len(succeeded_unseen),
            "unacknowledged_stored": len(set(jobs) - set(acked)),
            "detection_s": rounded(max(detections)) if detections and None not in detections else None,  # type: ignore[type-var]
            "rto_s": rounded(max(rtos)) if rtos and None not in rtos else None,  # type: ignore[type-var]
            "takeover_s": rounded(max(takeovers)) if takeovers and None not in takeovers else None,  # type: ignore[type-var]
            "takeover_median_s": rounded(statistics.median([t for t in takeovers if t is not None]))
            if any(t is not None for t in takeovers)
            else None,
        }
        self.report.measurements = m
        b = self.scn.budgets
        results = [
            check_max("duplicate_successes", a.duplicate_successes, b.duplicate_successes, "jobs"),
            check_max("overlapping_jobs", a.overlapping_jobs, b.overlapping_jobs, "jobs"),
            check_max("jobs_lost", len(lost), b.jobs_lost, "jobs"),
            check_max("jobs_stuck", len(stuck), b.jobs_stuck, "jobs"),
            check_max("succeeded_without_marker", len(succeeded_unseen), 0, "jobs"),
        ]
        if b.detection_s is not None:
            results.append(
                check_max(
                    "detection_s",
                    m["detection_s"],
                    b.detection_s,
                    "s",
                    "a faulted cluster was never Unreachable",
                )
            )
        if b.rto_s is not None:
            not_back = sum(
                1
                for r in agent_runs
                for j in r.affected
                if j not in r.recovered and j not in r.finished_in_place
            )
            results.append(
                check_max("rto_s", m["rto_s"], b.rto_s, "s", f"{not_back} affected job(s) never ran again")
            )
        if b.takeover_s is not None:
            results.append(
                check_max(
                    "takeover_s",
                    m["takeover_s"],
                    b.takeover_s,
                    "s",
                    "a restarted controller never placed a new job",
                )
            )
        self.report.results = results
        self.report.timeline = [r.as_dict() for r in self.runs]
        self.report.jobs = {
            "acknowledged": len(acked),
            "phases": phases,
            "stuck_by_phase": stuck_phases,
            "submission_failures": failures,
            "offers_late": sub.result.late,
            "load_s": rounded((sub.result.ended_wall or horizon) - sub.result.started_wall),
        }
        names = {
            j: jobs.get(j, {}).get("spec", {}).get("name", j)
            for j in set(a.duplicate_jobs) | {o.job_id for o in a.overlaps}
        }
        self.report.details = {
            "duplicate_success_jobs": [names.get(j, j) for j in a.duplicate_jobs],
            "overlaps": [{"name": names.get(o.job_id, o.job_id), **o.as_dict()} for o in a.overlaps],
            "lost": lost[:200],
            "stuck": [
                {"job_id": j, "name": jobs[j]["spec"]["name"], "phase": jobs[j]["phase"]} for j in stuck[:200]
            ],
            "succeeded_without_marker": succeeded_unseen[:200],
            "notes": self.notes,
            "markers": str(self.markers_path),
        }

    # ---- the hooks of LiveDrill --------------------------------------------------------------
    def skip_reason(self) -> str | None:
        return scenario_skip_reason(self.scn)

    def after_load_started(self) -> None:
        later = [a for a in self.scn.federation.agents if a.start == "after_load"]
        if self.scn.load.steady == "running":
            self.wait_steady()
        for a in later:
            self.start_agent(a)
        self.wait_ready([a.cluster for a in later])

    def measures_complete(self) -> bool:
        """A killed controller is back and has placed again."""
        return all(r.takeover_s is not None or r.fault != "kill_controller" for r in self.runs)

    def stop_processes(self) -> None:
        if self.submitter is not None:
            self.submitter.stop()
        if self.lab is not None:
            for c in list(self.lab.cut):
                with contextlib.suppress(subprocess.SubprocessError, OSError):
                    self.lab.heal(c)
        for p in self.agents.values():
            p.stop()
        if self.ctl is not None:
            self.ctl.stop()
        if self.relay is not None:
            self.relay.stop(2.0)
        if self.http is not None:
            self.http.close()
        self.stack.close()


def run_process_scenario(
    scn: ProcScenario, source: str = "", say: Say | None = None, keep_logs: Path | None = None
) -> DrillReport:
    return ProcessDrill(scn, source, say, keep_logs).run()
