"""Run a national drill (``federation.mode: national``): the replicated national store from empty
folders (``controller.drills.national``), a controller per national site on the multi-host URL,
the national endpoint (``controller.drills.lb``) in front of them, agents, a submission load that
retries through the failover with its Idempotency-Key, and whole-site faults.

Measured (wall seconds from the fault; every process runs on this machine):
- rpo_jobs: acknowledged jobs (a 2xx) missing from the store at the end (must be 0); jobs_lost
  also counts those that ended Failed or Cancelled;
- not_on_both_sites: acknowledged jobs absent from either database site's own node at the end
  (synchronous replication: each must be on both once the lost site is back);
- from the jobs' markers (``controller.drills.markers``), never from the controller's view:
  duplicate_successes, overlapping_jobs, executions stopped by the failover;
- per fault: promotion_s (Gui'an's Patroni says primary), first_submission_s (the first
  submission sent after the fault that was acknowledged, at its acknowledgement), first_placement_s
  (the first Scheduled event after the fault) and first_placement_new_leader_s (the first by a
  leader epoch newer than the fault's), max_ack_gap_s (the longest time without an
  acknowledgement from the fault until the load ends or the site is back), rejoin_s (restart or
  heal -> the site's node is the synchronous standby again), and for a cut-off Beijing the
  submissions its own controller acknowledged to a client inside Beijing after Gui'an's promotion
  (must be 0), and whether each of its acknowledgements survived.

Why one module of this length: a national drill is one procedure (sites, endpoint, agents, load,
site faults, measures) over one set of processes; the parts it shares with the process drills are in
``livedrill``, the store in ``national``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from controller.drills import netns
from controller.drills.livedrill import ACTIVE, LiveDrill, Say, rounded, wall_of
from controller.drills.markers import analyse
from controller.drills.national import DB_SITES, NationalStore
from controller.drills.national import unavailable as store_unavailable
from controller.drills.nationalscenario import DOWN, NationalAgent, NationalScenario
from controller.drills.procs import (
    LAUNCH,
    RUNNER_CODE,
    Proc,
    child_env,
    wait_http,
)
from controller.drills.report import DrillReport, check_max
from controller.store.patroni import dcs_settings

CTL_PORT = 8080
SITE_OF_CONTROLLER = ("beijing", "guian")


def scenario_skip_reason(scn: NationalScenario) -> str | None:
    why = store_unavailable()
    if why is None and scn.federation.netns:
        why = netns.unavailable()
    return why


def _job_pids(markers: Path, cluster: str) -> set[int]:
    """Job processes of this drill run by ``cluster``'s agent (their environment names both)."""
    needles = (f"DRILL_MARKERS={markers}\0".encode(), f"YIWANG_CLUSTER={cluster}\0".encode())
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if all(n in env for n in needles):
            out.add(int(entry))
    return out


@dataclass
class SiteFaultRun:
    index: int
    fault: str
    site: str
    at_s: float
    injected_wall: float | None = None
    epoch_before: int = 0
    placed_before: dict[str, tuple[int, str]] = field(default_factory=dict)  # job -> (attempt, cluster)
    promotion_s: float | None = None
    first_placement_s: float | None = None
    first_placement_new_leader_s: float | None = None
    placement_job: str | None = None
    rejoin_s: float | None = None
    killed_pids: int = 0
    # set by measure()
    first_submission_s: float | None = None
    max_ack_gap_s: float | None = None
    isolated: dict[str, Any] = field(default_factory=dict)

    @property
    def down(self) -> bool:
        return self.fault in DOWN

    @property
    def leader_site_lost(self) -> bool:
        return self.down and self.site == "beijing"

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "index": self.index,
            "fault": self.fault,
            "site": self.site,
            "at_s": self.at_s,
            "injected_wall": self.injected_wall,
        }
        if self.down:
            body |= {
                "epoch_before": self.epoch_before,
                "first_submission_s": rounded(self.first_submission_s),
                "first_placement_s": rounded(self.first_placement_s),
                "first_placement_new_leader_s": rounded(self.first_placement_new_leader_s),
                "max_ack_gap_s": rounded(self.max_ack_gap_s),
            }
            if self.leader_site_lost:
                body["promotion_s"] = rounded(self.promotion_s)
            if self.fault == "kill_site":
                body["killed_processes"] = self.killed_pids
            if self.isolated:
                body["isolated_client"] = self.isolated
        else:
            body["rejoin_s"] = rounded(self.rejoin_s)
        return body


class IsolatedClient:
    """A client inside a cut-off site: submits to that site's own controller, one at a time,
    each with its own Idempotency-Key, and notes when each answer came."""

    def __init__(self, client: httpx.Client, body: Callable[[int], dict[str, Any]], tag: str) -> None:
        self.client = client
        self.body = body
        self.tag = tag
        self.acks: dict[str, float] = {}  # job id -> answer wall time
        self.answers: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drill-isolated-client", daemon=True)

    def start(self) -> IsolatedClient:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            body = self.body(20_000_000 + i)
            body["name"] = f"isolated-{i}"
            try:
                r = self.client.post(
                    "/v1/jobs",
                    json=body,
                    headers={"Idempotency-Key": f"{self.tag}-isolated-{i}"},
                    timeout=5.0,
                )
                key = f"HTTP {r.status_code}"
                if r.status_code < 300:
                    self.acks[r.json()["id"]] = time.time()
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                key = type(exc).__name__
            self.answers[key] = self.answers.get(key, 0) + 1
            self._stop.wait(0.2)


class NationalDrill(LiveDrill["SiteFaultRun"]):
    def __init__(
        self, scn: NationalScenario, source: str = "", say: Say | None = None, keep_logs: Path | None = None
    ) -> None:
        super().__init__(scn, source, say, keep_logs, workdir_prefix="yiwang-ndrill")
        os.chmod(self.workdir, 0o755)  # the store's folders below belong to postgres
        self.store: NationalStore | None = None
        self.controllers: dict[str, Proc] = {}
        self.ctl_ports: dict[str, int] = {}
        self.ctl_starts: dict[str, int] = {}
        self.relays: list[Proc] = []
        self.lb: Proc | None = None
        self.lb_port = 0
        self.agents: dict[str, Proc] = {}
        self.specs: dict[str, NationalAgent] = {a.cluster: a for a in scn.federation.agents}
        self.ctl_http: dict[str, httpx.Client] = {}
        self.isolated: IsolatedClient | None = None
        self.probe_sent: dict[str, float] = {}
        self.runs = [SiteFaultRun(i, f.fault, f.site, f.at_s) for i, f in enumerate(scn.timeline)]

    # ---- addresses and clients --------------------------------------------------------------
    def ctl_host(self, site: str) -> str:
        return self.lab.addr[site] if self.lab else "127.0.0.1"

    def ctl_url(self, site: str) -> str:
        return f"http://{self.ctl_host(site)}:{self.ctl_ports[site]}"

    @property
    def endpoint(self) -> str:
        """The national endpoint (the load balancer) as agents outside the sites reach it."""
        return f"http://{self.lab.hub_ip if self.lab else '127.0.0.1'}:{self.lb_port}"

    def _client(self, sock: str | None, base: str, timeout: float = 10.0) -> httpx.Client:
        if self.lab and sock:
            return httpx.Client(
                base_url="http://national",
                transport=httpx.HTTPTransport(uds=str(self.workdir / sock)),
                timeout=timeout,
            )
        return httpx.Client(base_url=base, timeout=timeout)

    def async_client(self) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=self.scn.load.concurrency + 4)
        if self.lab:
            transport = httpx.AsyncHTTPTransport(limits=limits, uds=str(self.workdir / "lb.sock"))
            return httpx.AsyncClient(base_url="http://national", transport=transport)
        return httpx.AsyncClient(base_url=self.endpoint, transport=httpx.AsyncHTTPTransport(limits=limits))

    def prefix(self, where: str | None) -> list[str]:
        return self.lab.exec_prefix(where) if self.lab else []

    # ---- processes --------------------------------------------------------------------------
    def start_controller(self, site: str) -> None:
        assert self.store is not None
        n = self.ctl_starts[site] = self.ctl_starts.get(site, 0) + 1
        argv = [sys.executable, "-c", LAUNCH, "serve", "--host", self.ctl_host(site)]
        argv += ["--port", str(self.ctl_ports[site]), "--database-url", self.store.sqlalchemy_url()]
        env = {"YIWANG_MODE": "active" if site == "beijing" else "standby", "YIWANG_HOLDER": f"{site}-{n}"}
        if self.scn.federation.leader_ttl_s is not None:
            env["YIWANG_LEADER_TTL_S"] = f"{self.scn.federation.leader_ttl_s:g}"
        self.controllers[site] = Proc(
            f"controller-{site}-{n}",
            self.prefix(site) + argv,
            child_env(env, code=self.code),
            self.workdir / "logs" / f"controller-{site}-{n}.log",
            self.workdir,
        )

    def start_relay(self, where: str | None, sock: str, host: str, port: int) -> None:
        argv = [*self.prefix(where), sys.executable, "-m", "controller.drills.relay"]
        argv += [str(self.workdir / sock), host, str(port)]
        self.relays.append(
            Proc(
                f"relay-{sock}",
                argv,
                child_env(code=RUNNER_CODE),
                self.workdir / "logs" / f"relay-{sock}.log",
                self.workdir,
            )
        )
        deadline = time.monotonic() + 20
        while not (self.workdir / sock).exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def start_lb(self) -> None:
        host = self.lab.hub_ip if self.lab else "127.0.0.1"
        backends = [f"{self.ctl_host(s)}:{self.ctl_ports[s]}" for s in SITE_OF_CONTROLLER]
        argv = [
            *self.prefix(None),
            sys.executable,
            "-m",
            "controller.drills.lb",
            f"{host}:{self.lb_port}",
            *backends,
        ]
        self.lb = Proc(
            "endpoint",
            argv,
            child_env(code=RUNNER_CODE),
            self.workdir / "logs" / "endpoint.log",
            self.workdir,
        )

    def start_agent(self, spec: NationalAgent) -> None:
        n = self.agent_starts[spec.cluster] = self.agent_starts.get(spec.cluster, 0) + 1
        wd = self.workdir / "agents" / spec.cluster
        url = self.ctl_url(spec.site) if spec.site else self.endpoint
        argv = [sys.executable, "-c", LAUNCH, "agent", "--cluster", spec.cluster, "--executor", "local"]
        argv += ["--workdir", str(wd), "--cpu", f"{spec.cpu:g}", "--memory-gib", f"{spec.memory_gib:g}"]
        argv += ["--url", url]
        if self.scn.federation.agent_poll_interval_s is not None:
            argv += ["--poll-interval", f"{self.scn.federation.agent_poll_interval_s:g}"]
        where = spec.site or (spec.cluster if self.lab else None)
        self.agents[spec.cluster] = Proc(
            f"agent-{spec.cluster}-{n}",
            self.prefix(where) + argv,
            child_env({"YIWANG_URL": url}, self.code),
            self.workdir / "logs" / f"agent-{spec.cluster}-{n}.log",
            self.workdir,
        )

    # ---- set-up -----------------------------------------------------------------------------
    def setup(self) -> None:
        f = self.scn.federation
        if f.netns:
            outside = [a.cluster for a in f.agents if a.site is None]
            self.lab = netns.NetLab(["beijing", "guian", "witness", *outside])
            self.lab.create()
            self.ctl_ports = {s: CTL_PORT for s in SITE_OF_CONTROLLER}
            self.lb_port = CTL_PORT
        else:
            from controller.live import free_port

            self.ctl_ports = {s: free_port() for s in SITE_OF_CONTROLLER}
            self.lb_port = free_port()
        self.store = NationalStore(self.workdir / "store", self.lab, say=self.say)
        took = self.store.start(f.store_timeout_s)
        for site in SITE_OF_CONTROLLER:
            if self.lab:
                self.start_relay(site, f"ctl-{site}.sock", self.ctl_host(site), self.ctl_ports[site])
            self.ctl_http[site] = self._client(f"ctl-{site}.sock", self.ctl_url(site))
            self.start_controller(site)
            ok = wait_http(self.ctl_http[site], "/readyz", 60, lambda b: b.get("status") == "ready")
            if not ok:
                raise RuntimeError(f"the {site} controller did not answer /readyz in 60s (see its log)")
        self.start_lb()
        if self.lab:
            self.start_relay(None, "lb.sock", self.lab.hub_ip, self.lb_port)
        self.http = self._client("lb.sock", self.endpoint)
        if not wait_http(self.api, "/readyz", 30, lambda b: b.get("leader") is True):
            raise RuntimeError("the national endpoint did not reach the leading controller in 30s")
        failover = self.get("/v1/policies")["failover"]
        if f.lease_s is not None or f.heartbeat_grace_s is not None:
            if f.lease_s is not None:
                failover["lease_s"] = f.lease_s
            if f.heartbeat_grace_s is not None:
                failover["heartbeat_grace_s"] = f.heartbeat_grace_s
            self.api.put("/v1/policies/failover", json=failover).raise_for_status()
        for a in f.agents:
            self.start_agent(a)
        self.wait_ready([a.cluster for a in f.agents])
        self.report.federation = {
            "mode": "national",
            "netns": f.netns,
            "store": {
                "sites": {s: vars(x) for s, x in self.store.sites.items()},
                "healthy_from_empty_s": round(took, 3),
                "url": self.store.sqlalchemy_url(),
                "patroni": {k: v for k, v in dcs_settings().items() if k != "postgresql"},
            },
            "agents": [a.model_dump() for a in f.agents],
            "lease_s": failover["lease_s"],
            "heartbeat_grace_s": failover["heartbeat_grace_s"],
            "leader_ttl_s": f.leader_ttl_s,
            "code": str(self.code),
        }
        self.say(
            f"  store healthy in {took:.1f}s; controllers beijing (leader) and guian, endpoint :{self.lb_port}, "
            f"{len(f.agents)} agent(s), lease {failover['lease_s']:g}s"
        )

    def leader_epoch(self) -> int:
        for site in SITE_OF_CONTROLLER:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                b = self.ctl_http[site].get("/readyz", timeout=2.0).json()
                if b.get("leader"):
                    return int(b.get("epoch") or 0)
        with contextlib.suppress(httpx.HTTPError, ValueError):
            return int(self.get("/readyz").get("epoch") or 0)
        return 0

    # ---- faults -----------------------------------------------------------------------------
    def site_pids(self, site: str) -> set[int]:
        """The drill's own processes of a national site: its controller, its agents and their jobs."""
        pids: set[int] = set()
        ctl = self.controllers.get(site)
        if ctl is not None and ctl.alive:
            pids.add(ctl.pid)
        for c, spec in self.specs.items():
            if spec.site == site:
                a = self.agents.get(c)
                if a is not None and a.alive:
                    pids.add(a.pid)
                pids |= _job_pids(self.markers_path, c)
        return pids

    def inject(self, run: SiteFaultRun) -> None:
        assert self.store is not None
        site = run.site
        if run.down:
            run.epoch_before = self.leader_epoch()
            with contextlib.suppress(httpx.HTTPError):
                for phase in ("Scheduled", "Running"):
                    for j in self.list_jobs(phase=phase).values():
                        run.placed_before[j["id"]] = (j["attempt"], j["cluster"])
        run.injected_wall = time.time()
        if run.fault == "kill_site":
            pids = self.store.kill_site(site, also=lambda: self.site_pids(site))
            run.killed_pids = len(pids)
            run.injected_wall = self.store.lost_at[site]  # every process stopped: the site is lost
            for proc in [
                self.controllers.get(site),
                *(self.agents.get(c) for c, s in self.specs.items() if s.site == site),
            ]:
                if proc is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.popen.wait(5)
        elif run.fault == "partition_site" and self.lab:
            self.lab.partition(site)
            if site == "beijing":
                self.isolated = IsolatedClient(
                    self._client("ctl-beijing.sock", self.ctl_url("beijing"), 6.0), self.job_body, self.tag
                ).start()
        elif run.fault == "restart_site":
            self.store.restart_site(site)
            if site in SITE_OF_CONTROLLER:
                self.start_controller(site)
                for _c, spec in self.specs.items():
                    if spec.site == site:
                        self.start_agent(spec)
            self.last_up_wall = time.time()
        elif run.fault == "heal_site" and self.lab:
            self.lab.heal(site)
            if self.isolated is not None and site == "beijing":
                self.isolated.stop()
            self.last_up_wall = time.time()
        extra = f" ({run.killed_pids} processes)" if run.fault == "kill_site" else ""
        self.say(f"  {run.at_s:7.1f}s {run.fault} {site}{extra}")

    def tick(self) -> None:
        assert self.store is not None
        self.markers.poll()
        now = time.time()
        for run in self.runs:
            if run.injected_wall is None:
                continue
            if (
                run.leader_site_lost
                and run.promotion_s is None
                and self.store.rest("guian", "/primary", 0.5)[0] == 200
            ):
                run.promotion_s = time.time() - run.injected_wall
            if run.down and run.first_placement_new_leader_s is None and now - run.injected_wall < 600:
                self.track_placement(run)
            if not run.down and run.rejoin_s is None:
                if run.site in DB_SITES:
                    if self.store.rest(run.site, "/sync", 0.5)[0] == 200:
                        run.rejoin_s = time.time() - run.injected_wall
                elif self.store.etcd_healthy(run.site):
                    run.rejoin_s = time.time() - run.injected_wall
        self.maybe_probe()

    def track_placement(self, run: SiteFaultRun) -> None:
        """The first placement after the fault (and the first by a newer leader epoch): jobs
        Scheduled or Running now that were not there, or not in that attempt, at the fault."""
        assert run.injected_wall is not None
        try:
            now_placed = {**self.list_jobs(phase="Scheduled"), **self.list_jobs(phase="Running")}
        except (httpx.HTTPError, ValueError, KeyError):
            return
        fresh = [
            j for j in now_placed.values() if run.placed_before.get(j["id"]) != (j["attempt"], j["cluster"])
        ]
        for j in sorted(fresh, key=lambda j: j["id"])[:25]:
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                job = self.get(f"/v1/jobs/{j['id']}")
                times = [
                    wall_of(e["at"])
                    for e in job.get("events", [])
                    if e.get("to_phase") == "Scheduled" and e.get("attempt") == job["attempt"]
                ]
                if not times or times[-1] < run.injected_wall:
                    continue
                at = times[-1] - run.injected_wall
                if run.first_placement_s is None or at < run.first_placement_s:
                    run.first_placement_s = at
                if (job.get("epoch") or 0) > run.epoch_before and (
                    run.first_placement_new_leader_s is None or at < run.first_placement_new_leader_s
                ):
                    run.first_placement_new_leader_s = at
                    run.placement_job = job["id"]
        if run.first_placement_new_leader_s is not None or not run.leader_site_lost:
            run.first_placement_new_leader_s = run.first_placement_new_leader_s or run.first_placement_s

    def maybe_probe(self) -> None:
        """When the load is over and a fault still has no acknowledged submission after it, a
        probe job (one at a time) shows when submissions are accepted again."""
        sub = self.submitter
        if sub is None or not sub.done:
            return
        for run in self.runs:
            if not run.down or run.injected_wall is None:
                continue
            after = [j for j, s in {**sub.result.sent, **self.probe_sent}.items() if s >= run.injected_wall]
            if after:
                continue
            i = 30_000_000 + len(self.probe_sent) + run.index * 1000
            body = self.job_body(i)
            body["name"] = f"{self.scn.load.name}-probe-{i}"
            sent = time.time()
            with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
                r = self.api.post(
                    "/v1/jobs",
                    json=body,
                    headers={"Idempotency-Key": f"drill-{self.tag}-probe-{i}"},
                    timeout=3.0,
                )
                if r.status_code < 300:
                    jid = r.json()["id"]
                    self.probes[jid] = time.time()
                    self.probe_sent[jid] = sent
            return

    # ---- verdict ----------------------------------------------------------------------------
    def on_both_sites(self, acked: set[str]) -> tuple[int | None, dict[str, Any]]:
        """Acknowledged jobs absent from either database site's own node (None when a site's
        node does not answer). The standby replays shortly after its flush: asked again for up
        to 15 s."""
        assert self.store is not None
        deadline = time.monotonic() + 15
        missing: dict[str, int | None] = {}
        while True:
            for site in DB_SITES:
                rows = self.store.site_sql(site, "SELECT id FROM jobs")
                missing[site] = None if rows is None else len(acked - set(rows))
            if all(v == 0 for v in missing.values()) or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        if any(v is None for v in missing.values()):
            return None, {"missing_by_site": missing}
        return max(v or 0 for v in missing.values()), {"missing_by_site": missing}

    def executions_unknown_to_store(self) -> list[dict[str, Any]]:
        """Executions (from the markers) of an attempt the surviving store never dispatched
        there: no Scheduled event of that attempt on that cluster. A leader cut off with its old
        primary must not have placed anything the other side does not see; this is the proof."""
        dispatched: dict[str, set[tuple[int, str]]] = {}
        out = []
        for ex in self.markers.executions:
            if ex.job_id not in dispatched:
                try:
                    job = self.get(f"/v1/jobs/{ex.job_id}")
                except (httpx.HTTPError, ValueError):
                    job = {"events": []}
                dispatched[ex.job_id] = {
                    (e["attempt"], e["cluster"])
                    for e in job.get("events", [])
                    if e.get("to_phase") == "Scheduled"
                }
            if (ex.attempt, ex.cluster) not in dispatched[ex.job_id]:
                out.append(ex.as_dict())
        return out

    def measure(self) -> None:
        assert self.store is not None
        self.markers.poll()
        horizon = time.time()
        sub = self.submitter
        assert sub is not None
        acked, failures = sub.snapshot()
        sent = dict(sub.result.sent)
        acked.update(self.probes)
        sent.update(self.probe_sent)
        isolated = dict(self.isolated.acks) if self.isolated else {}
        try:
            jobs = self.list_jobs()
        except httpx.HTTPError as exc:
            raise RuntimeError(f"cannot list the jobs at the end: {exc}") from exc
        every_ack = set(acked) | set(isolated)
        missing = sorted(j for j in every_ack if j not in jobs)
        lost = [{"job_id": j, "why": "missing"} for j in missing] + [
            {"job_id": j, "phase": jobs[j]["phase"], "why": jobs[j]["message"][:200]}
            for j in every_ack
            if j in jobs and jobs[j]["phase"] in ("Failed", "Cancelled")
        ]
        stuck = [j for j in every_ack if j in jobs and jobs[j]["phase"] in ACTIVE]
        phases: dict[str, int] = {}
        for j in every_ack:
            p = jobs.get(j, {}).get("phase", "missing")
            phases[p] = phases.get(p, 0) + 1
        a = analyse(self.markers, horizon)
        both, both_detail = self.on_both_sites(every_ack)
        unknown = self.executions_unknown_to_store()
        ack_times = sorted(acked.values())
        load_end = sub.result.ended_wall or horizon
        for k, run in enumerate(self.runs):
            if not run.down or run.injected_wall is None:
                continue
            t = run.injected_wall
            after = [acked[j] for j in acked if sent.get(j, 0.0) >= t]
            run.first_submission_s = (min(after) - t) if after else None
            nxt = next((r.injected_wall for r in self.runs[k + 1 :] if r.injected_wall), None)
            until = min(load_end, nxt or load_end)
            window = [x for x in ack_times if t <= x <= until]
            if until > t:
                edges = [t, *window]
                gaps = [b - a_ for a_, b in itertools.pairwise(edges)]
                tail = until - (window[-1] if window else t)
                run.max_ack_gap_s = max([*gaps, tail]) if gaps or tail > 0 else 0.0
            if run.fault == "partition_site" and run.site == "beijing":
                # acknowledged to the client inside Beijing while Beijing was cut off, after
                # Gui'an's promotion (answers after the heal come from the healed federation)
                promoted = t + run.promotion_s if run.promotion_s is not None else None
                healed = nxt or horizon
                late = [j for j, at in isolated.items() if promoted is not None and promoted < at < healed]
                run.isolated = {
                    "acknowledged": len(isolated),
                    "acknowledged_after_promotion": len(late) if promoted is not None else None,
                    "acknowledged_missing": len([j for j in isolated if j not in jobs]),
                    "answers": dict(self.isolated.answers) if self.isolated else {},
                }
        downs = [r for r in self.runs if r.down and r.injected_wall is not None]
        t_first = next((r.injected_wall for r in self.runs if r.injected_wall), horizon)
        ups = [r for r in self.runs if not r.down and r.injected_wall is not None]

        def worst(values: list[float | None]) -> float | None:
            if not values or any(v is None for v in values):
                return None
            return max(v for v in values if v is not None)

        m: dict[str, Any] = {
            "acknowledged": len(acked),
            "acknowledged_isolated": len(isolated),
            "offered": sub.result.offered,
            "submission_failures": sum(failures.values()),
            "submission_retries": sub.result.retries,
            **a.counters(),
            "rpo_jobs": len(missing),
            "jobs_lost": len(lost),
            "jobs_stuck": len(stuck),
            "not_on_both_sites": both,
            "executions_unknown_to_store": len(unknown),
            "unacknowledged_stored": len(set(jobs) - every_ack),
            "promotion_s": rounded(worst([r.promotion_s for r in downs if r.leader_site_lost])),
            "first_submission_s": rounded(worst([r.first_submission_s for r in downs])),
            "first_placement_s": rounded(worst([r.first_placement_s for r in downs])),
            "first_placement_new_leader_s": rounded(worst([r.first_placement_new_leader_s for r in downs])),
            "max_ack_gap_s": rounded(worst([r.max_ack_gap_s for r in downs])),
            "rejoin_s": rounded(worst([r.rejoin_s for r in ups])),
        }
        iso = [r.isolated.get("acknowledged_after_promotion") for r in downs if r.isolated]
        if iso:
            m["isolated_acks_after_promotion"] = None if None in iso else sum(i or 0 for i in iso)
            m["isolated_acks_missing"] = sum(
                r.isolated.get("acknowledged_missing", 0) for r in downs if r.isolated
            )
        self.report.measurements = m
        b = self.scn.budgets
        results = [
            check_max("rpo_jobs", m["rpo_jobs"], b.rpo_jobs, "jobs"),
            check_max("jobs_lost", m["jobs_lost"], b.jobs_lost, "jobs"),
            check_max("duplicate_successes", a.duplicate_successes, b.duplicate_successes, "jobs"),
            check_max("overlapping_jobs", a.overlapping_jobs, b.overlapping_jobs, "jobs"),
            check_max("jobs_stuck", len(stuck), b.jobs_stuck, "jobs"),
            check_max("executions_unknown_to_store", len(unknown), 0, "executions"),
        ]
        optional: list[tuple[str, float | int | None, str, str]] = [
            ("submission_failures", m["submission_failures"], "jobs", ""),
            (
                "not_on_both_sites",
                m["not_on_both_sites"],
                "jobs",
                "a database site did not answer at the end",
            ),
            (
                "first_submission_s",
                m["first_submission_s"],
                "s",
                "no submission sent after a fault was acknowledged",
            ),
            (
                "first_placement_s",
                m["first_placement_new_leader_s"],
                "s",
                "no placement by a new leader after the fault",
            ),
            ("max_ack_gap_s", m["max_ack_gap_s"], "s", "not measured"),
            ("promotion_s", m["promotion_s"], "s", "Gui'an was never seen primary"),
            ("rejoin_s", m["rejoin_s"], "s", "the site never rejoined"),
            ("isolated_acks_after_promotion", m.get("isolated_acks_after_promotion"), "jobs", "not measured"),
        ]
        for name, value, unit, why in optional:
            budget = getattr(b, name)
            if budget is not None:
                results.append(check_max(name, value, budget, unit, why))
        if "isolated_acks_missing" in m:
            results.append(check_max("isolated_acks_missing", m["isolated_acks_missing"], 0, "jobs"))
        self.report.results = results
        self.report.timeline = [r.as_dict() for r in self.runs]
        self.report.jobs = {
            "acknowledged": len(acked),
            "phases": phases,
            "submission_failures": failures,
            "offers_late": sub.result.late,
            "load_s": rounded((sub.result.ended_wall or horizon) - sub.result.started_wall),
        }
        self.report.details = {
            "store_at_end": self.store.status(),
            "on_both_sites": both_detail,
            "duplicate_success_jobs": a.duplicate_jobs[:200],
            # every execution of a job done twice, times from the first fault: where, which
            # attempt, how it ended (end, term, or nothing: SIGKILLed with its site)
            "duplicate_executions": {
                j: [
                    {
                        **{k: v for k, v in e.as_dict().items() if k in ("attempt", "cluster", "how")},
                        "started_s": round(e.started - t_first, 3),
                        "ended_s": None if e.ended is None else round(e.ended - t_first, 3),
                    }
                    for e in self.markers.executions
                    if e.job_id == j
                ]
                for j in a.duplicate_jobs[:50]
            },
            "overlaps": [o.as_dict() for o in a.overlaps][:200],
            "lost": lost[:200],
            "executions_unknown_to_store": unknown[:200],
            "stuck": [{"job_id": j, "phase": jobs[j]["phase"]} for j in stuck[:200]],
            "notes": self.notes,
            "markers": str(self.markers_path),
        }

    # ---- the hooks of LiveDrill --------------------------------------------------------------
    def skip_reason(self) -> str | None:
        return scenario_skip_reason(self.scn)

    def load_retry_s(self) -> float | None:
        return float(self.scn.load.retry_s)

    def measures_complete(self) -> bool:
        """A lost site's successor placed as the new leader; a site that came back rejoined."""
        return all(
            (r.rejoin_s is not None or r.down) and (r.first_placement_new_leader_s is not None or not r.down)
            for r in self.runs
            if r.injected_wall is not None
        )

    def stop_processes(self) -> None:
        if self.submitter is not None:
            self.submitter.stop()
        if self.isolated is not None:
            self.isolated.stop()
        if self.lab is not None:
            for site in list(self.lab.cut):
                with contextlib.suppress(subprocess.SubprocessError, OSError):
                    self.lab.heal(site)
        for p in self.agents.values():
            p.stop()
        for p in self.controllers.values():
            p.stop()
        if self.lb is not None:
            self.lb.stop(2.0)
        for p in self.relays:
            p.stop(2.0)
        if self.store is not None:
            self.store.stop()
        for c in [self.http, *self.ctl_http.values()]:
            if c is not None:
                c.close()

    def keep_extra_logs(self, into: Path) -> None:
        if self.store is not None:
            self.store.keep_logs(into / "store")

    def remove_extra(self) -> None:
        if self.store is not None:
            self.store.remove()


def run_national_scenario(
    scn: NationalScenario, source: str = "", say: Say | None = None, keep_logs: Path | None = None
) -> DrillReport:
    return NationalDrill(scn, source, say, keep_logs).run()
