"""What a drill starts and breaks: the embedded federation with recording executors (the
controller, killed and started again on the same database and port, is
``controller.live.LiveController``).

Faults are injected from outside the agent and the federation (no hooks in their code):
- a partition swaps the agent's HTTP client for one whose transport refuses every connection,
  so the agent keeps running and must give up its attempts by itself;
- a killed agent is halted with its work (``EmbeddedFederation.kill``); on recovery a *new*
  Agent (empty memory, like a restarted process) takes over the same executor.
"""

from __future__ import annotations

import httpx

from controller.agent import Agent
from controller.drills.records import RecordingSimulatedExecutor, RecordSink
from controller.executors.simulated import SimNode
from controller.federation import EmbeddedFederation
from controller.topology.model import Cluster


class Unreachable(httpx.AsyncBaseTransport):
    """Every request fails as if the network between agent and controller were cut."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("network partition (drill)", request=request)


def sim_nodes(cluster: Cluster, count: int) -> list[SimNode]:
    c = cluster.capacity
    return [
        SimNode(f"{cluster.name}-n{i}", c.cpu / count, c.memory_gib / count, c.gpu // count)
        for i in range(count)
    ]


class DrillFederation:
    """The embedded federation of a drill: one recording simulated executor per cluster."""

    def __init__(
        self,
        controller_url: str,
        clusters: list[Cluster],
        *,
        nodes_per_cluster: int,
        time_scale: float,
        poll_interval_s: float,
    ) -> None:
        self.sink = RecordSink()
        self.specs = {c.name: c for c in clusters}
        self.nodes_per_cluster = nodes_per_cluster
        self.executors: dict[str, RecordingSimulatedExecutor] = {
            c.name: RecordingSimulatedExecutor(
                c.name, sim_nodes(c, nodes_per_cluster), self.sink, time_scale=time_scale
            )
            for c in clusters
        }
        self.fed = EmbeddedFederation(
            controller_url,
            [c.name for c in clusters],
            lambda name: self.executors[name],
            poll_interval_s=poll_interval_s,
        )
        self._clients: dict[str, httpx.AsyncClient] = {}  # partitioned agent -> its real client
        self.killed: set[str] = set()

    def start(self, timeout_s: float = 30.0) -> None:
        self.fed.start(timeout_s)

    def stop(self) -> None:
        self.fed.stop()

    def agent(self, name: str) -> Agent:
        return self.fed.agents[name]

    def kill(self, name: str) -> None:
        self.fed.kill(name)
        self.killed.add(name)

    def partition(self, name: str) -> None:
        agent = self.agent(name)
        self._clients[name] = agent.client
        agent.client = httpx.AsyncClient(transport=Unreachable())

    def recover(self, name: str) -> None:
        if name in self._clients:  # the partition heals; the agent goes on with what it knows
            self.agent(name).client = self._clients.pop(name)
            return
        if name in self.killed:  # a new agent process on the same cluster: empty memory
            old = self.agent(name)
            self.fed.agents[name] = Agent(
                name,
                old.executor,
                old.client,
                controller_url=self.fed.controller_url,
                token=self.fed.token,
                poll_interval_s=self.fed.poll_interval_s,
            )
            self.killed.discard(name)
            self.fed.resume(name)
