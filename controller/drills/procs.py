"""Real processes of a process drill: the controller (``yiwang serve``), the agents (``yiwang agent
--executor local``), the relay into a network namespace, and the submitter that offers jobs at a
rate through the REST API. Every process is started in its own session with its output in a log
file and is stopped by its pid; stray job processes are found by the drill's marker path in their
environment (``/proc/<pid>/environ``), never by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import httpx

import controller

# The code under test: the controller package the runner imports, unless told otherwise (to run
# the drill's processes on another checkout, e.g. YIWANG_DRILL_CODE=/work/main).
RUNNER_CODE = Path(controller.__file__).resolve().parent.parent
LAUNCH = "import sys; from controller.cli import app; sys.argv[0] = 'yiwang'; app()"


def code_dir() -> Path:
    return Path(os.environ.get("YIWANG_DRILL_CODE") or RUNNER_CODE).resolve()


def child_env(extra: dict[str, str] | None = None, code: Path | None = None) -> dict[str, str]:
    """The environment of a drill process: ours without YIWANG_* settings, the code under test
    first on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIWANG_")}
    env["PYTHONPATH"] = str(code or code_dir())
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


@cache
def agent_url_flag(code: Path) -> str | None:
    """The agent's controller-URL option in the code under test (``--controller-url`` or
    ``--url``), read from its ``--help``; None: pass it in the environment only."""
    r = subprocess.run(
        [sys.executable, "-c", LAUNCH, "agent", "--help"],
        env=child_env({"COLUMNS": "200"}, code),
        capture_output=True,
        text=True,
        timeout=60,
    )
    for flag in ("--controller-url", "--url"):
        if flag in r.stdout:
            return flag
    return None


class Proc:
    """One process in its own session; output to ``log``."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path, cwd: Path) -> None:
        self.name = name
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = log
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.popen.pid
        self.stopped = False  # SIGSTOPped by the drill

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.alive:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
        self.stopped = sig == signal.SIGSTOP or (self.stopped and sig != signal.SIGCONT)

    def kill9(self) -> None:
        self.signal(signal.SIGKILL)
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def stop(self, grace_s: float = 8.0) -> None:
        """SIGCONT (if frozen), SIGTERM, then SIGKILL after ``grace_s``."""
        if not self.alive:
            return
        if self.stopped:
            self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.kill9()


def wait_http(client: httpx.Client, path: str, timeout_s: float, ok: Callable[[Any], bool]) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            r = client.get(path, timeout=2.0)
            if r.status_code == 200 and ok(r.json()):
                return True
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.1)
    return False


def kill_strays(marker_path: Path, rounds: int = 3) -> int:
    """SIGKILL every process whose environment names this drill's marker file (the jobs of a
    killed or frozen agent go on by themselves). Returns how many were signalled."""
    needle = f"DRILL_MARKERS={marker_path}\0".encode()
    total = 0
    for _ in range(rounds):
        found = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                environ = Path(f"/proc/{entry}/environ").read_bytes()
            except OSError:
                continue
            if needle in environ:
                try:
                    os.kill(int(entry), signal.SIGKILL)
                    found += 1
                except ProcessLookupError:
                    pass
        total += found
        if not found:
            break
        time.sleep(0.2)
    return total


@dataclass
class Submission:
    acked: dict[str, float] = field(default_factory=dict)  # job id -> wall time of the 2xx
    ack_order: list[str] = field(default_factory=list)
    sent: dict[str, float] = field(default_factory=dict)  # job id -> wall time its answered try was sent
    retries: int = 0  # tries sent again (503 or no answer) with the same Idempotency-Key
    failures: dict[str, int] = field(default_factory=dict)  # reason -> count
    offered: int = 0
    late: int = 0  # offers sent more than 1 s after their slot (the submitter could not keep up)
    started_wall: float = 0.0
    ended_wall: float | None = None


class Submitter:
    """Offers ``count`` job bodies at ``rate_per_s`` (open loop; at most ``concurrency`` in
    flight), each POST once with its own Idempotency-Key, bounded by ``request_timeout_s``; runs
    in its own thread and event loop. ``stop()`` ends it early.

    ``retry_s`` > 0 makes it a well-behaved client of a failing-over federation: a 502/503/504
    or a call without an answer is sent again with the same Idempotency-Key (after Retry-After,
    at most 2 s, or 0.5 s) until it is answered or ``retry_s`` has passed since the first try;
    only then does it count as a failure."""

    def __init__(
        self,
        make_client: Callable[[], httpx.AsyncClient],
        body: Callable[[int], dict[str, Any]],
        key: Callable[[int], str],
        count: int,
        rate_per_s: float,
        concurrency: int,
        request_timeout_s: float,
        retry_s: float = 0.0,
    ) -> None:
        self.retry_s = retry_s
        self.make_client = make_client
        self.body, self.key = body, key
        self.count, self.rate = count, rate_per_s
        self.concurrency = concurrency
        self.timeout = request_timeout_s
        self.result = Submission()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="drill-submitter", daemon=True)

    def start(self) -> Submitter:
        self.result.started_wall = time.time()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.timeout + 5)

    @property
    def done(self) -> bool:
        return not self._thread.is_alive() and self.result.ended_wall is not None

    def acked_since(self, wall: float) -> list[str]:
        with self._lock:
            return [j for j in self.result.ack_order if self.result.acked[j] >= wall]

    def snapshot(self) -> tuple[dict[str, float], dict[str, int]]:
        with self._lock:
            return dict(self.result.acked), dict(self.result.failures)

    def _fail(self, why: str) -> None:
        with self._lock:
            self.result.failures[why] = self.result.failures.get(why, 0) + 1

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        finally:
            self.result.ended_wall = time.time()

    async def _run(self) -> None:
        sem = asyncio.Semaphore(self.concurrency)
        t0 = time.monotonic()
        tasks: set[asyncio.Task[None]] = set()
        async with self.make_client() as client:

            async def one(i: int) -> None:
                first = time.monotonic()
                body, key = self.body(i), self.key(i)
                try:
                    while True:
                        sent = time.time()
                        why, wait = "", 0.5
                        try:
                            r = await client.post(
                                "/v1/jobs", json=body, headers={"Idempotency-Key": key}, timeout=self.timeout
                            )
                            if 200 <= r.status_code < 300:
                                job_id = r.json()["id"]
                                with self._lock:
                                    if job_id not in self.result.acked:
                                        self.result.acked[job_id] = time.time()
                                        self.result.sent[job_id] = sent
                                        self.result.ack_order.append(job_id)
                                return
                            why = f"HTTP {r.status_code}"
                            if r.status_code not in (502, 503, 504):
                                break
                            with contextlib.suppress(ValueError):
                                wait = min(2.0, float(r.headers.get("Retry-After", "0.5")))
                        except httpx.HTTPError as exc:
                            why = type(exc).__name__
                        if self._stop.is_set() or time.monotonic() - first + wait > self.retry_s:
                            break
                        with self._lock:
                            self.result.retries += 1
                        await asyncio.sleep(wait)
                    self._fail(why)
                finally:
                    sem.release()

            for i in range(self.count):
                if self._stop.is_set():
                    break
                slot = t0 + i / self.rate
                delay = slot - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await sem.acquire()
                if time.monotonic() - slot > 1.0:
                    self.result.late += 1
                self.result.offered += 1
                task = asyncio.create_task(one(i))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.wait(tasks, timeout=self.timeout + 5 + self.retry_s)
