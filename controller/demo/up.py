"""`yiwang up`: the embedded federation, left running in the foreground for the README's quick start.

The controller (SQLite in ``workdir``, real HTTP on 127.0.0.1), one agent per member cluster with
the local executor, and the demo's sample data sets registered, as in ``yiwang demo``; then a
banner with the URLs and the wait for Ctrl-C (SIGINT) or SIGTERM. Each agent advertises its
cluster's declared capacity (the topology's), so jobs are placed as in the real federation, while
their commands run as small local processes on this machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import threading
from pathlib import Path
from types import FrameType

from rich.console import Console

from controller.client import Client
from controller.demo.data import DATASETS
from controller.demo.run import local_executors, register_datasets, stage_data
from controller.federation import EmbeddedFederation
from controller.live import LiveController


class PortInUse(Exception):
    pass


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def up(
    workdir: Path = Path(".yiwang/up"),
    port: int = 8080,
    console: Console | None = None,
    stop: threading.Event | None = None,
) -> int:
    console = console or Console()
    if not port_free(port):
        raise PortInUse(f"port {port} on 127.0.0.1 is in use (another yiwang up or serve?); pass --port")
    workdir = workdir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)  # a fresh federation each time
    _, source, fetch, _ = stage_data(workdir)
    # the holder Settings would pick by default: this host and process
    live = LiveController(
        workdir / "yiwang.db",
        port=port,
        name="yiwang-api",
        loop_interval_s=0.2,
        holder=f"{socket.gethostname()}-{os.getpid()}",
    )
    stop = stop or threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, on_signal)
    live.start()
    ctl, url = live.controller, live.url
    token = ctl.settings.admin_token
    fed = EmbeddedFederation(
        url,
        list(ctl.registry.clusters),
        local_executors(ctl, workdir),
        token=token,
        poll_interval_s=0.3,
        data_dir=workdir / "data",
        fetch=fetch,
    )
    try:
        fed.start()
        with Client(url, token) as client:
            register_datasets(client, source)
            ready = sum(1 for c in client.clusters() if c["health"] == "Ready")
        auth = (
            "admin token from YIWANG_ADMIN_TOKEN (send it as --token/YIWANG_TOKEN)"
            if token
            else "open (dev: no token needed; set YIWANG_ADMIN_TOKEN to require one)"
        )
        lines = [
            f"Yiwang is up: controller + {ready}/{len(fed.clusters)} agents Ready (local executor), "
            f"{len(DATASETS)} sample data sets ({', '.join(d.id for d in DATASETS)})",
            f"  API        {url}   (CLI: export YIWANG_URL={url})",
            f"  dashboard  {url}/ui",
            f"  metrics    {url}/metrics",
            f"  auth       {auth}",
            f"  state      {workdir} (SQLite, data, job work dirs; wiped at each start)",
            "Ctrl-C to stop.",
        ]
        for line in lines:
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        console.file.flush()
        while not stop.wait(1.0):
            pass
        console.print("stopping: agents, then the controller", markup=False, highlight=False)
    finally:
        fed.stop()
        live.stop()
    return 0
