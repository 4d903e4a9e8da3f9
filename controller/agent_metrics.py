"""The agent's ``/metrics``: kube-state-metrics-style capacity series and the agent's own state.

Series (units as kube-state-metrics writes them: ``core``, ``byte``, ``integer``):
- ``kube_node_status_allocatable{node,resource,unit}``: what the cluster offers
  (``resource`` = ``cpu`` | ``memory`` | ``nvidia_com_gpu``). The agent sees its executor's
  capacity, not the nodes, so it reports one node named ``<cluster>-<executor>``; sums by
  cluster are what the controller reads.
- ``kube_pod_container_resource_requests{namespace,pod,container,node,resource,unit}``: one pod
  per replica of every active attempt (the namespace is the tenant's, as the Kubernetes executor
  names it).
- ``yiwang_agent_lease_valid``, ``yiwang_agent_active_attempts``, ``yiwang_agent_leader_epoch``
  and counters of heartbeat failures, lease losses, stale reports, executor outages.

Values are read from the agent at scrape time (a custom collector), so nothing is kept twice.
Served per agent (``serve_metrics``; Prometheus adds the ``cluster`` label from its scrape config)
or, for many agents in one process, one registry each; ``cluster_label=True`` adds the label in
the exposition itself for a shared endpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server

from controller.executors.base import ResourceAmounts

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from controller.agent import Agent

NAMESPACE_PREFIX = "tenant-"  # as KubeOptions.namespace_prefix
GIB = 2**30


def _resources(r: ResourceAmounts) -> list[tuple[str, str, float]]:
    return [
        ("cpu", "core", float(r.cpu)),
        ("memory", "byte", float(r.memory_gib) * GIB),
        ("nvidia_com_gpu", "integer", float(r.gpu)),
    ]


class AgentCollector:
    def __init__(self, agent: Agent, *, cluster_label: bool = False) -> None:
        self.agent = agent
        self.cluster_label = cluster_label

    def describe(self) -> list[Metric]:
        return []  # collected lazily; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        a = self.agent
        extra = ["cluster"] if self.cluster_label else []
        ext = [a.cluster] if self.cluster_label else []
        node = f"{a.cluster}-{a.executor.name}"
        snap = a.metrics_snapshot()

        alloc = GaugeMetricFamily(
            "kube_node_status_allocatable",
            "The allocatable resources of a node (from the agent's executor).",
            labels=[*extra, "node", "resource", "unit"],
        )
        if snap.capacity is not None:
            for resource, unit, value in _resources(snap.capacity):
                alloc.add_metric([*ext, node, resource, unit], value)
        yield alloc

        requests = GaugeMetricFamily(
            "kube_pod_container_resource_requests",
            "The resources requested by a container of an active attempt.",
            labels=[*extra, "namespace", "pod", "container", "node", "resource", "unit"],
        )
        for assignment in snap.active:
            per_replica = ResourceAmounts.per_replica(assignment.spec)
            ns = f"{NAMESPACE_PREFIX}{assignment.tenant}"
            for replica in range(assignment.spec.replicas):
                pod = f"yiwang-{assignment.job_id}-a{assignment.attempt}-{replica}"
                for resource, unit, value in _resources(per_replica):
                    if value:
                        requests.add_metric([*ext, ns, pod, "job", node, resource, unit], value)
        yield requests

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            g = GaugeMetricFamily(name, doc, labels=extra)
            g.add_metric(ext, value)
            return g

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            c = CounterMetricFamily(name, doc, labels=extra)
            c.add_metric(ext, value)
            return c

        yield gauge("yiwang_agent_lease_valid", "1 while the agent holds a valid lease.", snap.lease_valid)
        yield gauge("yiwang_agent_active_attempts", "Attempts the executor runs now.", len(snap.active_keys))
        yield gauge("yiwang_agent_leader_epoch", "The newest controller epoch seen.", a.leader_epoch)
        yield gauge("yiwang_agent_executor_up", "1 while the executor's backend answers.", snap.executor_up)
        s = a.stats
        yield counter("yiwang_agent_heartbeats", "Successful heartbeats.", s.heartbeats)
        yield counter("yiwang_agent_heartbeat_failures", "Failed heartbeats.", s.heartbeat_failures)
        yield counter("yiwang_agent_lease_losses", "Times the agent stopped its attempts.", s.lease_losses)
        yield counter("yiwang_agent_stale_reports", "Reports refused as stale (409/404).", s.stale_reports)
        yield counter(
            "yiwang_agent_executor_unavailable",
            "Executor calls that found it unavailable.",
            s.executor_unavailable,
        )
        yield counter("yiwang_agent_attempt_starts", "Attempts started.", s.starts)


def agent_registry(agent: Agent, *, cluster_label: bool = False) -> CollectorRegistry:
    """A registry of its own for one agent (many agents can share a process)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(agent, cluster_label=cluster_label))
    return registry


def serve_metrics(registry: CollectorRegistry, port: int, addr: str = "127.0.0.1") -> WSGIServer:
    """Serve ``/metrics`` in a daemon thread; ``server.shutdown()`` stops it."""
    server, _thread = start_http_server(port, addr=addr, registry=registry)
    return server
