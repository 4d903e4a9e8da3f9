"""One helper for a live controller on loopback, used by `yiwang up`, the demo, the drills, the
bench and the tests: start it, wait (bounded) until it answers ``/healthz``, stop it, kill it,
start it again on the same database and port, and show its log when it does not come up.

Two ways to run it, one class:
- in a thread (the default): ``create_app(Settings(...))`` served by uvicorn in a daemon thread of
  this process; ``controller`` is the live ``Controller`` (tests read its store and its views);
- as a process (``process=True``): ``python -m uvicorn --factory controller.api.app:create_app``
  configured by ``YIWANG_*`` variables (the settings given, over ``env``); its output goes to a
  temporary file, read back by ``logs()`` and quoted when it fails to start; ``kill()`` is
  SIGKILL.

Every start is a new Controller with a new holder (``<name>-<n>``, unless ``holder`` is given), so
a restarted one must take the leader lease like a restarted process. Servers listen on
127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
import uvicorn

from controller.api.app import create_app
from controller.service import Controller
from controller.settings import Settings

T = TypeVar("T")
LOG_TAIL_CHARS = 4000
CODE_ROOT = Path(__file__).resolve().parents[2]  # the directory holding the controller package


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerThread:
    """``app`` served by uvicorn on 127.0.0.1:``port`` in a daemon thread; ``start()`` returns once
    it accepts connections, ``stop()`` ends it (the app's lifespan stops its control loop)."""

    def __init__(self, app: Any, port: int, name: str = "yiwang-api") -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=name, daemon=True)

    def start(self, timeout_s: float = 20.0) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the controller's HTTP server did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=timeout_s)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


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


def wait_healthy(url: str, timeout_s: float, exited: Callable[[], int | None] = lambda: None) -> None:
    """Poll ``url``/healthz until it answers 200, at most ``timeout_s``; RuntimeError when the
    server's process ends first (``exited`` returns its exit code) or the time is up."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=1.0, trust_env=False) as client:
        while True:
            code = exited()
            if code is not None:
                raise RuntimeError(f"the controller at {url} exited with {code} before it answered")
            try:
                if client.get(f"{url}/healthz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the controller at {url} did not answer /healthz within {timeout_s:g} s")
            time.sleep(0.05)


def settings_env(values: Mapping[str, Any]) -> dict[str, str]:
    """Settings as the ``YIWANG_*`` environment variables ``Settings`` reads."""
    out = {}
    for key, value in values.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, dict | list):
            text = json.dumps(value)
        else:
            text = str(value)
        out[f"YIWANG_{key.upper()}"] = text
    return out


class LiveController:
    """A controller on 127.0.0.1:``port`` (a free one unless given) over ``db`` (a SQLite file;
    or give ``database_url``), with the other settings given as keywords. ``start()`` and
    ``stop()``/``kill()`` as often as needed."""

    def __init__(
        self,
        db: Path | None = None,
        *,
        port: int | None = None,
        name: str = "controller",
        process: bool = False,
        env: Mapping[str, str] | None = None,
        start_timeout_s: float = 30.0,
        **settings: Any,
    ) -> None:
        self.db = db
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.name = name
        self.process = process
        self.env = dict(os.environ if env is None else env)
        self.start_timeout_s = start_timeout_s
        self.settings_overrides = settings
        self.ctl: Controller | None = None
        self.server: ServerThread | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.starts = 0

    @property
    def controller(self) -> Controller:
        """The in-process Controller of the last start (thread mode only)."""
        if self.ctl is None:
            raise RuntimeError("no controller in this process (not started, or started as a process)")
        return self.ctl

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("not started as a process")
        return self.proc.pid

    @property
    def running(self) -> bool:
        if self.process:
            return self.proc is not None and self.proc.poll() is None
        return self.server is not None and self.server.thread.is_alive()

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """The settings of the next start."""
        values: dict[str, Any] = {}
        if self.db is not None:
            values["database_url"] = f"sqlite:///{self.db}"
        values["holder"] = f"{self.name}-{self.starts + 1}"
        values.update(self.settings_overrides)
        values.update(overrides)
        return values

    def start(self, timeout_s: float | None = None, **overrides: Any) -> LiveController:
        """Start a new Controller (``overrides``: settings for this start only) and return once it
        answers /healthz; RuntimeError (with its log, for a process) when it does not within
        ``timeout_s``."""
        values = self.settings(**overrides)
        self.starts += 1
        timeout = self.start_timeout_s if timeout_s is None else timeout_s
        if self.process:
            self._spawn({"tune_gc": True, **values})  # a process of its own, as deployed
            try:
                wait_healthy(self.url, timeout, self._exited)
            except RuntimeError as exc:
                self.stop()
                raise RuntimeError(f"{exc}; its log:\n{self.logs()}") from None
            return self
        # a thread of this process: the controller is its guest and leaves its collector alone
        app = create_app(Settings(**{"tune_gc": False, **values}))
        self.ctl = app.state.controller
        self.server = ServerThread(app, self.port, name=self.name).start(timeout)
        try:
            wait_healthy(self.url, timeout)
        except RuntimeError:
            self.stop()
            raise
        return self

    def _spawn(self, values: Mapping[str, Any]) -> None:
        if self._log is not None:
            self._log.close()
        # kept open past this call (logs() reads it back); closed at the next start
        self._log = tempfile.TemporaryFile(prefix=f"yiwang-{self.name}-", suffix=".log")  # noqa: SIM115
        argv = [sys.executable, "-m", "uvicorn", "--factory", "controller.api.app:create_app"]
        argv += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning", "--no-access-log"]
        env = {**self.env, **settings_env(values)}
        # the child runs the code this process runs (the checkout holding this package)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(CODE_ROOT), env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def _exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop serving (the app's lifespan stops its control loop; a process gets SIGTERM, then
        SIGKILL after ``timeout_s``). The database stays; the last Controller stays readable."""
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def kill(self) -> None:
        """A crash: SIGKILL for a process (nothing it did not commit survives); a thread cannot
        be killed, so in thread mode this is ``stop()``."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.stop()

    def logs(self) -> str:
        """The tail of the process's output (stdout and stderr); empty in thread mode."""
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-LOG_TAIL_CHARS:]

    def __enter__(self) -> LiveController:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- API helpers ----------------------------------------------------------------------
    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10.0)

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
