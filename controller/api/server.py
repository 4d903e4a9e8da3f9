"""Serving the API on loopback, in-process (ServerThread) or as a separate controller process
(start_process): the demo, the drills, the bench and the tests use it."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from typing import Any

import uvicorn


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


def start_process(port: int, env: dict[str, str], timeout_s: float = 30.0) -> subprocess.Popen[bytes]:
    """A controller process (uvicorn, ``create_app`` configured by ``env``'s YIWANG_* variables)
    on 127.0.0.1:``port``; returns once it accepts connections. The caller terminates it."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "controller.api.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError as exc:
            if proc.poll() is not None:
                raise RuntimeError(f"the controller on port {port} exited with {proc.returncode}") from exc
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError(f"the controller on port {port} did not listen within {timeout_s} s")
