"""What the process drills (``procrunner``) and the national drills (``nationalrunner``) share:
a submission load of marker-writing jobs through the API, paged job listings, the fault timeline
that runs until every job is terminal (or a bound passes), and the run's skeleton (skip, set up,
load, timeline, measure, clean up on every exit path).

A subclass starts its own processes (``setup``), injects its faults (``inject``), samples what
it measures (``tick``), grades the run (``measure``) and stops what it started (``cleanup``).
"""

from __future__ import annotations

import abc
import contextlib
import secrets
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import httpx

from controller.drills import netns
from controller.drills.markers import MarkerLog, marker_command, marker_env
from controller.drills.procs import Submitter, code_dir, kill_strays, wait_http
from controller.drills.report import BudgetResult, DrillReport

Say = Callable[[str], None]
TICK_S = 0.25
ACTIVE = ("Pending", "Scheduled", "Running")


def rounded(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def wall_of(iso: str) -> float:
    """An API timestamp as wall-clock seconds (a naive one is UTC)."""
    dt = datetime.fromisoformat(iso)
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


class TimedFault(Protocol):
    @property
    def at_s(self) -> float: ...


R = TypeVar("R", bound=TimedFault)


class LiveDrill(abc.ABC, Generic[R]):
    """The shared skeleton; ``scn`` is a process or national scenario (same ``load`` and
    ``federation.agents`` / ``ready_timeout_s`` fields, and the settle bounds)."""

    scn: Any
    say: Say
    workdir: Path
    markers_path: Path
    markers: MarkerLog
    tag: str
    keep_logs: Path | None
    lab: netns.NetLab | None
    http: httpx.Client | None
    submitter: Submitter | None
    runs: list[R]
    last_up_wall: float
    notes: list[str]
    report: DrillReport

    def __init__(
        self, scn: Any, source: str, say: Say | None, keep_logs: Path | None, *, workdir_prefix: str
    ) -> None:
        """What every live drill starts with: its scenario, a fresh work folder with the marker
        log the jobs write to, a tag for its process names, and an empty report."""
        self.scn = scn
        self.source = source
        self.say = say or (lambda _m: None)
        self.keep_logs = keep_logs
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{workdir_prefix}-{scn.name}-"))
        self.markers_path = self.workdir / "markers.log"
        self.markers = MarkerLog(self.markers_path, watch_pids=True)
        self.code = code_dir()
        self.tag = secrets.token_hex(3)
        self.lab = None
        self.http = None
        self.submitter = None
        self.agent_starts: dict[str, int] = {}
        self.probes: dict[str, float] = {}  # probe job id -> ack wall time
        self.last_up_wall = 0.0  # the last fault that was undone (restart, thaw, heal, site up)
        self.notes = []
        self.report = DrillReport(scn.name, source, datetime.now(UTC).isoformat(timespec="seconds"))

    # ---- what a subclass provides -----------------------------------------------------------
    @abc.abstractmethod
    def skip_reason(self) -> str | None:
        """Why this machine cannot run the scenario (it is then skipped with this reason)."""

    @abc.abstractmethod
    def setup(self) -> None: ...

    @abc.abstractmethod
    def async_client(self) -> httpx.AsyncClient: ...

    @abc.abstractmethod
    def inject(self, run: R) -> None: ...

    @abc.abstractmethod
    def tick(self) -> None: ...

    @abc.abstractmethod
    def measure(self) -> None: ...

    @abc.abstractmethod
    def stop_processes(self) -> None:
        """Stop the load's helpers, heal cuts and stop every process the drill started."""

    def measures_complete(self) -> bool:
        """Whether every fault's measures are in (the timeline may stop early only then)."""
        return True

    def after_load_started(self) -> None:
        """Between starting the load and the fault timeline (e.g. wait for steady state)."""
        return None  # nothing by default

    def keep_extra_logs(self, into: Path) -> None:
        """Copy logs kept outside ``workdir/logs`` (e.g. the national store's) into ``into``."""
        return None  # nothing by default

    def remove_extra(self) -> None:
        """Remove what the drill made outside ``workdir`` (e.g. the national store's folders)."""
        return None  # nothing by default

    def load_retry_s(self) -> float | None:
        """How long the load retries a submission through a failover (None: it does not)."""
        return None

    # ---- the API ----------------------------------------------------------------------------
    @property
    def api(self) -> httpx.Client:
        assert self.http is not None
        return self.http

    def get(self, path: str, **params: Any) -> Any:
        r = self.api.get(path, params=params or None)
        r.raise_for_status()
        return r.json()

    def list_jobs(self, **params: Any) -> dict[str, dict[str, Any]]:
        """Every job matching ``params``, page by page (bounded by the load's size)."""
        seen: dict[str, dict[str, Any]] = {}
        cursor: str | None = None
        for _ in range(self.scn.load.count // 1000 + 50):
            q: dict[str, Any] = {"limit": 1000, **params}
            if cursor:
                q["cursor"] = cursor
            page = self.get("/v1/jobs", **q)
            seen.update({j["id"]: j for j in page["items"]})
            cursor = page["next_cursor"]
            if not cursor:
                break
        return seen

    def any_active(self) -> bool | None:
        """Whether any job is still Pending, Scheduled or Running (None: the API did not say)."""
        try:
            return any(self.get("/v1/jobs", phase=p, limit=1)["items"] for p in ACTIVE)
        except (httpx.HTTPError, ValueError, KeyError):
            return None

    def wait_ready(self, clusters: list[str]) -> None:
        timeout = self.scn.federation.ready_timeout_s
        for c in clusters:
            if not wait_http(self.api, f"/v1/clusters/{c}", timeout, lambda b: b.get("health") == "Ready"):
                raise RuntimeError(f"the agent of {c} did not make it Ready in {timeout:g}s (see its log)")

    # ---- the load ---------------------------------------------------------------------------
    def job_body(self, i: int) -> dict[str, Any]:
        """The i-th job of the load: it writes start and end markers around its work."""
        ld = self.scn.load
        allow = ld.allow_clusters or [a.cluster for a in self.scn.federation.agents]
        return {
            "name": f"{ld.name}-{i}",
            "tenant": ld.tenant,
            "resources": ld.resources.model_dump(),
            "constraints": {"allow_clusters": allow},
            "runtime": {"command": marker_command(), "env": marker_env(self.markers_path, ld.work_s)},
            "expected_runtime_s": max(ld.work_s, 0.01),
            "max_runtime_s": int(ld.work_s * 4) + 300,
        }

    def start_load(self) -> None:
        ld = self.scn.load
        retry = self.load_retry_s()
        self.submitter = Submitter(
            self.async_client,
            self.job_body,
            lambda i: f"drill-{self.tag}-{i}",
            ld.count,
            ld.rate_per_s,
            ld.concurrency,
            ld.request_timeout_s,
            **({"retry_s": retry} if retry is not None else {}),
        ).start()
        also = f" (retry {retry:g}s)" if retry is not None else ""
        self.say(f"  offering {ld.count} jobs of {ld.work_s:g}s at {ld.rate_per_s:g}/s{also}")

    # ---- the timeline -----------------------------------------------------------------------
    def timeline(self) -> None:
        """Inject the faults at their times and tick until every job is terminal and every
        measure is in, or ``stuck_after_s`` passed after the jobs could have finished, or the
        hard bound ``settle_timeout_s``; then tick for ``tail_s`` more."""
        sub = self.submitter
        assert sub is not None
        t0 = time.monotonic()
        hard = t0 + self.scn.settle_timeout_s
        pending = list(self.runs)
        last_check = 0.0
        outcome = "hard bound (settle_timeout_s) reached"
        while time.monotonic() < hard:
            while pending and time.monotonic() >= t0 + pending[0].at_s:
                self.inject(pending.pop(0))
            self.tick()
            if not pending and sub.done and time.monotonic() - last_check >= 1.0:
                last_check = time.monotonic()
                could_finish = max(sub.result.ended_wall or 0.0, self.last_up_wall) + self.scn.load.work_s
                if self.measures_complete() and self.any_active() is False:
                    outcome = "every job terminal"
                    break
                if time.time() > could_finish + self.scn.stuck_after_s:
                    outcome = (
                        f"stuck_after_s ({self.scn.stuck_after_s:g}s) passed with jobs not terminal"
                        " or a measure missing"
                    )
                    break
            wake = t0 + pending[0].at_s if pending else time.monotonic() + TICK_S
            time.sleep(max(0.0, min(TICK_S, wake - time.monotonic())))
        self.notes.append(f"settled: {outcome}")
        self.say(f"  {outcome}")
        end = time.monotonic() + self.scn.tail_s
        while time.monotonic() < end:
            self.tick()
            time.sleep(TICK_S)

    # ---- the run ----------------------------------------------------------------------------
    def cleanup(self) -> None:
        self.stop_processes()
        strays = kill_strays(self.markers_path)
        if strays:
            self.notes.append(f"{strays} job process(es) still running at the end were killed")
        if self.lab is not None:
            self.lab.destroy()
        if self.keep_logs is not None:
            shutil.rmtree(self.keep_logs, ignore_errors=True)
            if (self.workdir / "logs").exists():
                shutil.copytree(self.workdir / "logs", self.keep_logs)
            self.keep_extra_logs(self.keep_logs)
            with contextlib.suppress(OSError):
                self.keep_logs.mkdir(parents=True, exist_ok=True)
                shutil.copy(self.markers_path, self.keep_logs / "markers.log")
        self.remove_extra()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def run(self) -> DrillReport:
        t = time.monotonic()
        why = self.skip_reason()
        if why is not None:
            self.say(f"  SKIP {self.scn.name}: {why}")
            self.report.results = [BudgetResult("run", None, None, "", True, why, skipped=True)]
            self.report.details = {"skipped": why}
            shutil.rmtree(self.workdir, ignore_errors=True)
            return self.report
        try:
            self.setup()
            self.start_load()
            self.after_load_started()
            self.timeline()
            self.measure()
        except Exception as exc:  # the report says what broke; the exit code says it failed
            self.report.error = f"{type(exc).__name__}: {exc}"
            self.notes.append("".join(traceback.format_exception(exc)))  # where the drill itself broke
            self.say(f"  ERROR: {self.report.error}")
        finally:
            self.report.duration_s = round(time.monotonic() - t, 3)
            try:
                self.cleanup()
            finally:
                self.report.details.setdefault("notes", self.notes)
        return self.report
