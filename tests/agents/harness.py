"""A real controller on loopback (uvicorn in a thread, SQLite in a temp dir) that can be stopped
and started again on the same database and port, plus helpers to wait on jobs with a bound."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from controller.api.app import create_app
from controller.api.server import ServerThread
from controller.service import Controller
from controller.settings import Settings
from tests.conftest import free_port

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float = 20.0, every_s: float = 0.05) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after the bound."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(every_s)


class LiveController:
    """``start()``/``stop()`` as often as needed; every start is a new Controller process-alike
    (new object, new holder unless given) on the same SQLite file and port."""

    def __init__(self, db: Path, *, port: int | None = None, **settings: Any) -> None:
        self.db = db
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings_overrides = settings
        self.ctl: Controller | None = None
        self.server: ServerThread | None = None
        self.starts = 0

    @property
    def controller(self) -> Controller:
        assert self.ctl is not None, "the controller is not running"
        return self.ctl

    def start(self, **overrides: Any) -> LiveController:
        self.starts += 1
        values = {
            "database_url": f"sqlite:///{self.db}",
            "loop_interval_s": 0.05,
            "leader_ttl_s": 1.0,
            "holder": f"controller-{self.starts}",
            **self.settings_overrides,
            **overrides,
        }
        app = create_app(Settings(**values))
        self.ctl = app.state.controller
        self.server = ServerThread(app, self.port, name="test-controller").start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.server = None

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10.0)

    # ---- API helpers ----------------------------------------------------------------------
    def set_failover(self, lease_s: float, grace_s: float) -> None:
        with self.http() as c:
            body = c.get("/v1/policies").json()["failover"]
            body.update(lease_s=lease_s, heartbeat_grace_s=grace_s)
            r = c.put("/v1/policies/failover", json=body)
            assert r.status_code == 200, r.text

    def submit(self, name: str, command: list[str], **spec: Any) -> str:
        body = {
            "name": name,
            "tenant": spec.pop("tenant", "beijing"),
            "runtime": {"command": command},
            **spec,
        }
        with self.http() as c:
            r = c.post("/v1/jobs", json=body)
            assert r.status_code == 201, r.text
            job_id: str = r.json()["id"]
            return job_id

    def job(self, job_id: str) -> dict[str, Any]:
        with self.http() as c:
            r = c.get(f"/v1/jobs/{job_id}")
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            return body

    def wait_job(
        self, job_id: str, pred: Callable[[dict[str, Any]], bool], what: str, timeout_s: float = 20.0
    ) -> dict[str, Any]:
        last: dict[str, Any] = {}

        def probe() -> dict[str, Any] | None:
            j = self.job(job_id)
            last.update(j)
            return j if pred(j) else None

        try:
            return wait_for(f"job {job_id}: {what}", probe, timeout_s)
        except AssertionError as exc:
            seen = {k: last.get(k) for k in ("phase", "cluster", "attempt", "message")}
            trail = [(e["type"], e["attempt"], e.get("reason", "")[:80]) for e in self.job(job_id)["events"]]
            raise AssertionError(f"{exc}; last seen {seen}; events {trail}") from None

    def cluster(self, name: str) -> dict[str, Any]:
        with self.http() as c:
            body: dict[str, Any] = c.get(f"/v1/clusters/{name}").json()
            return body


def marker_command(marker: Path, *then: str) -> list[str]:
    """A tiny real job: append 'job attempt cluster' to ``marker`` (one line per process start),
    then run ``then`` (a shell snippet)."""
    script = f'echo "$YIWANG_JOB_ID $YIWANG_ATTEMPT $YIWANG_CLUSTER" >> {marker}; {" ".join(then) or "true"}'
    return ["/bin/sh", "-c", script]


def wait_file_then_exit(go: Path, code: int = 0) -> str:
    return f"while [ ! -e {go} ]; do sleep 0.05; done; exit {code}"


def starts(marker: Path) -> list[tuple[str, int, str]]:
    if not marker.exists():
        return []
    out = []
    for line in marker.read_text().splitlines():
        job, attempt, cluster = line.split()
        out.append((job, int(attempt), cluster))
    return out
