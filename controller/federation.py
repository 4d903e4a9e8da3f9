"""The embedded federation: one agent per member cluster, all in one process and one asyncio
loop, each with its own executor, talking to the controller over real HTTP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import httpx

from controller.agent import Agent
from controller.executors.base import Executor


class EmbeddedFederation:
    def __init__(
        self,
        controller_url: str,
        clusters: list[str],
        executor_factory: Callable[[str], Executor],
        *,
        token: str | None = None,
        poll_interval_s: float = 0.3,
        data_dir: Path | None = None,
        fetch: Callable[[str, Path], bool] | None = None,
    ) -> None:
        self.controller_url = controller_url
        self.clusters = clusters
        self.executor_factory = executor_factory
        self.token = token
        self.poll_interval_s = poll_interval_s
        self.data_dir = data_dir  # per-cluster data under data_dir/<cluster>/
        self.fetch = fetch
        self.agents: dict[str, Agent] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
        async with httpx.AsyncClient(timeout=10.0, limits=limits) as client:
            for name in self.clusters:
                self.agents[name] = Agent(
                    name,
                    self.executor_factory(name),
                    client,
                    controller_url=self.controller_url,
                    token=self.token,
                    poll_interval_s=self.poll_interval_s,
                    data_dir=self.data_dir / name if self.data_dir else None,
                    fetch=self.fetch,
                )
            # First heartbeats before anything else, so every cluster is Ready together.
            await asyncio.gather(*(a.heartbeat() for a in self.agents.values()))
            self._ready.set()
            await asyncio.gather(*(a.run(self._stop) for a in self.agents.values()))

    def start(self, timeout_s: float = 30.0) -> None:
        def runner() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._main())
            self._loop.close()

        self._thread = threading.Thread(target=runner, name="yiwang-embedded-federation", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError("the embedded federation's agents did not register in time")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=15)
        for agent in self.agents.values():
            for job_id, attempt in agent.executor.active():
                agent.executor.stop(job_id, attempt, "FederationStopped")
            close = getattr(agent.executor, "close", None)
            if callable(close):
                close()
