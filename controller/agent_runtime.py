"""Running one agent as a process (``yiwang agent``): build its executor from command-line
options, serve its ``/metrics``, run the loop until SIGTERM/SIGINT, and shut down cleanly."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

import httpx

from controller.agent import Agent
from controller.agent_metrics import agent_registry, serve_metrics
from controller.executors import SimNode, make_executor
from controller.executors.base import Executor, ResourceAmounts
from controller.executors.kube_manifests import KubeOptions

log = logging.getLogger("yiwang.agent")
SIM_NODE_DEFAULT = ResourceAmounts(cpu=32.0, memory_gib=128.0, gpu=0)


class AgentConfigError(ValueError):
    """The options do not describe a runnable agent; the message says what is missing."""


@dataclass(frozen=True)
class ExecutorOptions:
    kind: str = "local"
    workdir: Path = Path(".yiwang-agent")
    cpu: float | None = None
    memory_gib: float | None = None
    gpu: int = 0
    nodes: int = 4
    kubeconfig: str | None = None
    context: str | None = None
    namespace_prefix: str = "tenant-"
    fake_kube: bool = False

    def capacity(self) -> ResourceAmounts | None:
        if self.cpu is None and self.memory_gib is None:
            return None
        if self.cpu is None or self.memory_gib is None:
            raise AgentConfigError("give both --cpu and --memory-gib (or neither)")
        return ResourceAmounts(self.cpu, self.memory_gib, self.gpu)


def build_executor(opts: ExecutorOptions) -> Executor:
    cap = opts.capacity()
    if opts.kind == "local":
        return make_executor("local", base_dir=opts.workdir, capacity=cap)
    if opts.kind == "simulated":
        if opts.nodes < 1:
            raise AgentConfigError("--nodes must be at least 1")
        n = opts.nodes
        per = (
            ResourceAmounts(cap.cpu / n, cap.memory_gib / n, cap.gpu // n)
            if cap is not None
            else SIM_NODE_DEFAULT
        )
        nodes = [SimNode(f"sim-node-{i}", per.cpu, per.memory_gib, per.gpu) for i in range(n)]
        return make_executor("simulated", nodes=nodes)
    if opts.kind == "kubernetes":
        if cap is None:
            raise AgentConfigError(
                "the kubernetes executor needs the capacity this cluster offers Yiwang: --cpu and "
                "--memory-gib (and --gpu), or YIWANG_AGENT_CPU / YIWANG_AGENT_MEMORY_GIB / YIWANG_AGENT_GPU"
            )
        client = None
        if opts.fake_kube:
            from controller.executors.kube_fake import FakeKubeClient

            client = FakeKubeClient()
        return make_executor(
            "kubernetes",
            capacity=cap,
            client=client,
            kubeconfig=opts.kubeconfig,
            context=opts.context,
            options=KubeOptions(namespace_prefix=opts.namespace_prefix),
        )
    raise AgentConfigError(f"unknown executor {opts.kind!r}; expected local, kubernetes or simulated")


async def run_agent(
    *,
    cluster: str,
    controller_url: str,
    executor: Executor,
    token: str | None,
    poll_interval_s: float = 1.0,
    metrics_port: int = 0,
    metrics_addr: str = "0.0.0.0",
    max_parallel: int | None = None,
) -> None:
    """Run until SIGTERM/SIGINT. On the way out, attempts of an executor that cannot adopt them
    after a restart (local, simulated) are stopped and released to the controller, so they are
    re-placed at once; Kubernetes Jobs keep running and the next agent adopts them."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with httpx.AsyncClient(timeout=10.0) as client:
        agent = Agent(
            cluster,
            executor,
            client,
            controller_url=controller_url,
            token=token,
            poll_interval_s=poll_interval_s,
            max_parallel=max_parallel,
        )
        server = serve_metrics(agent_registry(agent), metrics_port, metrics_addr) if metrics_port else None
        if server is not None:
            log.info("%s: /metrics on %s:%d", cluster, metrics_addr, metrics_port)
        try:
            await agent.run(stop)
        finally:
            if not callable(getattr(executor, "recover", None)):
                await agent.shutdown(release=True)
            if server is not None:
                server.shutdown()
                server.server_close()
            close = getattr(executor, "close", None)
            if callable(close):
                close()
