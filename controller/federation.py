"""The embedded federation: one agent per member cluster, all in one process and one asyncio
loop, each with its own executor and its own metrics registry, talking to the controller over
real HTTP. Drills and tests can kill, pause and resume single agents."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from prometheus_client import CollectorRegistry

from controller.agent import Agent
from controller.agent_metrics import agent_registry, serve_metrics
from controller.executors.base import Executor

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

T = TypeVar("T")
REASON_AGENT_KILLED = "AgentKilled"


# An agent's calls in flight at once: its renewal, its step's call, a release or a stop's report.
AGENT_CONNECTIONS = 4
# How long the first heartbeats are tried again before the agents start regardless.
FIRST_CONTACT_S = 20.0


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
        metrics_ports: dict[str, int] | None = None,
        agent_options: dict[str, Any] | None = None,
    ) -> None:
        self.controller_url = controller_url
        self.clusters = clusters
        self.executor_factory = executor_factory
        self.token = token
        self.poll_interval_s = poll_interval_s
        self.data_dir = data_dir  # per-cluster data under data_dir/<cluster>/
        self.fetch = fetch
        self.metrics_ports = metrics_ports or {}  # cluster -> port for its own /metrics
        self.agent_options = agent_options or {}
        self.agents: dict[str, Agent] = {}
        self.registries: dict[str, CollectorRegistry] = {}
        self.metrics_servers: dict[str, WSGIServer] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._agent_stops: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        # A client (connection pool) per agent, as each agent of a real federation has its own:
        # one pool shared by every agent made each request scan all its connections (httpcore
        # checks each for expiry on every request and release), which was 40 % of this loop.
        limits = httpx.Limits(max_connections=AGENT_CONNECTIONS, max_keepalive_connections=AGENT_CONNECTIONS)
        tls = ssl.create_default_context()  # one for all: each takes 20 ms to load the CA store
        async with contextlib.AsyncExitStack() as clients:
            for name in self.clusters:
                client = await clients.enter_async_context(
                    httpx.AsyncClient(timeout=10.0, limits=limits, verify=tls)
                )
                agent = Agent(
                    name,
                    self.executor_factory(name),
                    client,
                    controller_url=self.controller_url,
                    token=self.token,
                    poll_interval_s=self.poll_interval_s,
                    data_dir=self.data_dir / name if self.data_dir else None,
                    fetch=self.fetch,
                    **self.agent_options,
                )
                self.agents[name] = agent
                self.registries[name] = agent_registry(agent)
                if name in self.metrics_ports:
                    self.metrics_servers[name] = serve_metrics(
                        self.registries[name], self.metrics_ports[name]
                    )
            # First heartbeats before start() returns, so every cluster is Ready together. An
            # agent whose first heartbeat was answered starts its loop at once (it renews on its
            # own schedule from then on); one whose heartbeat failed is tried again every 0.2 s,
            # for at most FIRST_CONTACT_S, then started regardless (its loop retries with backoff).
            loop = asyncio.get_running_loop()
            deadline = loop.time() + FIRST_CONTACT_S
            waiting = list(self.agents.values())
            while True:
                done = await asyncio.gather(*(a.heartbeat() for a in waiting))
                failed = []
                for agent, ok in zip(waiting, done, strict=True):
                    if ok:
                        self._start_agent(agent.cluster)
                    else:
                        failed.append(agent)
                waiting = failed
                if not waiting or self._stop.is_set() or loop.time() >= deadline:
                    break
                await asyncio.sleep(0.2)
            for agent in waiting:
                self._start_agent(agent.cluster)
            self._ready.set()
            await self._stop.wait()
            for ev in self._agent_stops.values():
                ev.set()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    def _start_agent(self, name: str) -> None:
        stop = self._agent_stops[name] = asyncio.Event()
        self._tasks[name] = asyncio.get_running_loop().create_task(self.agents[name].run(stop))

    def start(self, timeout_s: float = 30.0) -> None:
        def runner() -> None:
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(self._main())
            except BaseException as exc:  # surfaced by start() instead of dying silently
                self._error = exc
                self._ready.set()
            finally:
                self._loop.close()

        self._thread = threading.Thread(target=runner, name="yiwang-embedded-federation", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError("the embedded federation's agents did not register in time")
        if self._error is not None:
            raise RuntimeError(f"the embedded federation failed to start: {self._error}") from self._error

    def _call(self, coro: Coroutine[Any, Any, T], timeout_s: float = 15.0) -> T:
        if self._loop is None:
            raise RuntimeError("the federation is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)

    async def _halt(self, name: str, kill_work: bool) -> None:
        self._agent_stops[name].set()
        await asyncio.gather(self._tasks[name], return_exceptions=True)
        if kill_work:
            agent = self.agents[name]
            for job_id, attempt in agent.executor.active():
                agent.executor.stop(job_id, attempt, REASON_AGENT_KILLED)

    def kill(self, name: str) -> None:
        """The agent dies with its machine: its loop ends and its local processes die with it."""
        self._call(self._halt(name, kill_work=True))

    def pause(self, name: str) -> None:
        """The agent's loop stops (a frozen or partitioned agent); what it started goes on."""
        self._call(self._halt(name, kill_work=False))

    def resume(self, name: str) -> None:
        """Run a paused agent's loop again, with everything it remembered."""

        async def go() -> None:
            self._start_agent(name)

        self._call(go())

    def partition(self, name: str, unreachable_url: str) -> None:
        """Cut the agent off from the controller (its calls go to ``unreachable_url``)."""
        self.agents[name].base = f"{unreachable_url.rstrip('/')}/v1/agents/{name}"

    def heal(self, name: str) -> None:
        self.agents[name].base = f"{self.controller_url.rstrip('/')}/v1/agents/{name}"

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=15)
        for server in self.metrics_servers.values():
            server.shutdown()
            server.server_close()
        for agent in self.agents.values():
            for job_id, attempt in agent.executor.active():
                agent.executor.stop(job_id, attempt, "FederationStopped")
            close = getattr(agent.executor, "close", None)
            if callable(close):
                close()
