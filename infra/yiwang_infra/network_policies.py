"""The platform's NetworkPolicies: every namespace default-deny, then exactly the flows it needs.

Namespace by namespace (the pods are selected by the labels their charts give them):

- every namespace the platform creates: ``default-deny-all`` (ingress and egress) and
  ``allow-dns`` (egress to kube-dns, UDP and TCP 53);
- ``yiwang-system``: the agent takes metrics scrapes from the cluster's Prometheus (its metrics
  port) and calls the Kubernetes API server and the controller endpoint (the national sites'
  address blocks, the controller URL's port); the controller's own policy comes with its chart
  (API port open to the government network, egress to the database only);
- ``yiwang-monitoring``: Prometheus scrapes the agent (and, at a national site, the controller),
  pulls the members' Prometheus servers (``/federate`` through their intranet addresses: the
  members' address blocks, 443) and sends alerts to Alertmanager; a member's Prometheus lets the
  national sites (and the load balancer's health checks) in on its port; Alertmanager takes
  alerts from Prometheus and calls the configured receivers only;
- the Spark operator's namespace: the operator calls the API server, and the API server calls
  its admission webhook (from an address the managed control plane does not fix: the webhook
  port is open, nothing else);
- tenant namespaces: traffic inside the namespace and DNS; Spark drivers (``spark-role: driver``)
  also call the API server (to start their executors). Nothing else in or out.

``tests/infra/test_platform_flows.py`` renders these with the charts of every tier and checks,
flow by flow, that each required flow is allowed and everything else denied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi_kubernetes as k8s

from infra.yiwang_infra.config import AddressBlock

NP = k8s.networking.v1

# Pod labels of what the platform runs, as the charts set them (release names fixed by ClusterPlatform).
AGENT_POD = {"app.kubernetes.io/name": "yiwang-agent", "app.kubernetes.io/instance": "yiwang-agent"}
PROMETHEUS_POD = {
    "app.kubernetes.io/name": "yiwang-monitoring",
    "app.kubernetes.io/instance": "yiwang-monitoring",
}
ALERTMANAGER_POD = {
    "app.kubernetes.io/name": "yiwang-monitoring-alertmanager",
    "app.kubernetes.io/instance": "yiwang-monitoring",
}
CONTROLLER_POD = {  # role=all controllers and role=api replicas alike (the chart's apiServerSelectorLabels)
    "app.kubernetes.io/instance": "yiwang-controller",
    "app.kubernetes.io/part-of": "yiwang",
    "app.kubernetes.io/component": "controller",
}
SPARK_OPERATOR_POD = {
    "app.kubernetes.io/name": "spark-operator",
    "app.kubernetes.io/instance": "spark-operator",
}
SPARK_WEBHOOK_POD = {**SPARK_OPERATOR_POD, "app.kubernetes.io/component": "webhook"}
SPARK_DRIVER_POD = {"spark-role": "driver"}
KUBE_DNS_POD = {"k8s-app": "kube-dns"}
NAMESPACE_NAME = "kubernetes.io/metadata.name"

AGENT_METRICS_PORT = 9102
CONTROLLER_PORT = 8080
PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
SPARK_WEBHOOK_PORT = 9443
FEDERATION_PORT = 443
# Alibaba Cloud SLB health checks come from 100.64.0.0/10 (to the pods directly: Terway ENI backends)
SLB_HEALTH_CHECK_CIDR = "100.64.0.0/10"


@dataclass(frozen=True)
class PlatformNetwork:
    """What the platform's policies need to know about the cluster and the federation."""

    system_namespace: str
    monitoring_namespace: str
    tenant_namespaces: Sequence[str]
    api_server: Sequence[AddressBlock]
    # the controller endpoint the agent calls: the national sites' blocks and the URL's port
    controller: Sequence[AddressBlock]
    # national sites: scrape the controller; pull these members' Prometheus (their blocks, 443)
    national: bool = False
    federated_members: Sequence[str] = ()
    # members: who may pull /federate (the national sites' blocks)
    federation_clients: Sequence[str] = ()
    alertmanager: bool = False
    alert_receivers: Sequence[AddressBlock] = ()
    prometheus_readers: Sequence[AddressBlock] = ()
    spark_operator_namespace: str | None = None


@dataclass(frozen=True)
class Policy:
    """One NetworkPolicy to create: its namespace, name and spec."""

    namespace: str
    name: str
    spec: k8s.networking.v1.NetworkPolicySpecArgs


def _selector(labels: dict[str, str] | None = None) -> k8s.meta.v1.LabelSelectorArgs:
    return k8s.meta.v1.LabelSelectorArgs(match_labels=labels) if labels else k8s.meta.v1.LabelSelectorArgs()


def _pods(namespace: str, labels: dict[str, str]) -> NP.NetworkPolicyPeerArgs:
    return NP.NetworkPolicyPeerArgs(
        namespace_selector=_selector({NAMESPACE_NAME: namespace}), pod_selector=_selector(labels)
    )


def _block(cidr: str) -> NP.NetworkPolicyPeerArgs:
    return NP.NetworkPolicyPeerArgs(ip_block=NP.IPBlockArgs(cidr=cidr))


def _tcp(*ports: int) -> list[NP.NetworkPolicyPortArgs]:
    return [NP.NetworkPolicyPortArgs(protocol="TCP", port=p) for p in ports]


def _to_blocks(blocks: Sequence[AddressBlock]) -> list[NP.NetworkPolicyEgressRuleArgs]:
    return [NP.NetworkPolicyEgressRuleArgs(to=[_block(b.cidr)], ports=_tcp(*b.ports)) for b in blocks]


def _egress(pods: dict[str, str], rules: list[NP.NetworkPolicyEgressRuleArgs]) -> NP.NetworkPolicySpecArgs:
    return NP.NetworkPolicySpecArgs(pod_selector=_selector(pods), policy_types=["Egress"], egress=rules)


def default_deny() -> NP.NetworkPolicySpecArgs:
    return NP.NetworkPolicySpecArgs(pod_selector=_selector(), policy_types=["Ingress", "Egress"])


def dns_egress() -> NP.NetworkPolicyEgressRuleArgs:
    return NP.NetworkPolicyEgressRuleArgs(
        to=[_pods("kube-system", KUBE_DNS_POD)],
        ports=[
            NP.NetworkPolicyPortArgs(protocol="UDP", port=53),
            NP.NetworkPolicyPortArgs(protocol="TCP", port=53),
        ],
    )


def namespace_baseline(namespace: str) -> list[Policy]:
    """Default deny, and DNS for every pod of the namespace."""
    return [
        Policy(namespace, "default-deny-all", default_deny()),
        Policy(namespace, "allow-dns", _egress({}, [dns_egress()])),
    ]


def tenant_policies(namespace: str, net: PlatformNetwork) -> list[Policy]:
    """A tenant namespace: default deny, DNS, traffic inside the namespace; Spark drivers to the
    API server when the Spark operator runs in the cluster."""
    same_namespace = [NP.NetworkPolicyPeerArgs(pod_selector=_selector())]
    policies = [
        *namespace_baseline(namespace),
        Policy(
            namespace,
            "allow-same-namespace",
            NP.NetworkPolicySpecArgs(
                pod_selector=_selector(),
                policy_types=["Ingress", "Egress"],
                ingress=[NP.NetworkPolicyIngressRuleArgs(from_=same_namespace)],
                egress=[NP.NetworkPolicyEgressRuleArgs(to=same_namespace)],
            ),
        ),
    ]
    if net.spark_operator_namespace is not None:
        policies.append(
            Policy(
                namespace,
                "allow-spark-driver-api-server",
                _egress(SPARK_DRIVER_POD, _to_blocks(net.api_server)),
            )
        )
    return policies


def platform_policies(net: PlatformNetwork) -> list[Policy]:
    """Every NetworkPolicy of the platform, in every namespace it creates."""
    return [
        *system_policies(net),
        *monitoring_policies(net),
        *spark_operator_policies(net),
        *(p for ns in net.tenant_namespaces for p in tenant_policies(ns, net)),
    ]


def system_policies(net: PlatformNetwork) -> list[Policy]:
    """yiwang-system: the agent (the controller's policy is its chart's)."""
    ns = net.system_namespace
    agent = NP.NetworkPolicySpecArgs(
        pod_selector=_selector(AGENT_POD),
        policy_types=["Ingress", "Egress"],
        ingress=[
            NP.NetworkPolicyIngressRuleArgs(
                from_=[_pods(net.monitoring_namespace, PROMETHEUS_POD)], ports=_tcp(AGENT_METRICS_PORT)
            )
        ],
        egress=[*_to_blocks(net.api_server), *_to_blocks(net.controller)],
    )
    return [*namespace_baseline(ns), Policy(ns, "yiwang-agent", agent)]


def monitoring_policies(net: PlatformNetwork) -> list[Policy]:
    """yiwang-monitoring: Prometheus (and Alertmanager at the national sites)."""
    ns = net.monitoring_namespace
    egress = [
        NP.NetworkPolicyEgressRuleArgs(
            to=[_pods(net.system_namespace, AGENT_POD)], ports=_tcp(AGENT_METRICS_PORT)
        )
    ]
    if net.national:
        egress.append(
            NP.NetworkPolicyEgressRuleArgs(
                to=[_pods(net.system_namespace, CONTROLLER_POD)], ports=_tcp(CONTROLLER_PORT)
            )
        )
    if net.federated_members:
        egress.append(
            NP.NetworkPolicyEgressRuleArgs(
                to=[_block(c) for c in net.federated_members], ports=_tcp(FEDERATION_PORT)
            )
        )
    if net.alertmanager:
        egress.append(
            NP.NetworkPolicyEgressRuleArgs(to=[_pods(ns, ALERTMANAGER_POD)], ports=_tcp(ALERTMANAGER_PORT))
        )
    ingress = [
        NP.NetworkPolicyIngressRuleArgs(from_=[_block(b.cidr)], ports=_tcp(*b.ports))
        for b in net.prometheus_readers
    ]
    if net.federation_clients:
        ingress.append(
            NP.NetworkPolicyIngressRuleArgs(
                from_=[_block(c) for c in (*net.federation_clients, SLB_HEALTH_CHECK_CIDR)],
                ports=_tcp(PROMETHEUS_PORT),
            )
        )
    prometheus = NP.NetworkPolicySpecArgs(
        pod_selector=_selector(PROMETHEUS_POD),
        policy_types=["Ingress", "Egress"],
        ingress=ingress,
        egress=egress,
    )
    policies = [*namespace_baseline(ns), Policy(ns, "yiwang-prometheus", prometheus)]
    if net.alertmanager:
        alertmanager = NP.NetworkPolicySpecArgs(
            pod_selector=_selector(ALERTMANAGER_POD),
            policy_types=["Ingress", "Egress"],
            ingress=[
                NP.NetworkPolicyIngressRuleArgs(
                    from_=[_pods(ns, PROMETHEUS_POD)], ports=_tcp(ALERTMANAGER_PORT)
                )
            ],
            egress=_to_blocks(net.alert_receivers),
        )
        policies.append(Policy(ns, "yiwang-alertmanager", alertmanager))
    return policies


def spark_operator_policies(net: PlatformNetwork) -> list[Policy]:
    ns = net.spark_operator_namespace
    if ns is None:
        return []
    operator = _egress(SPARK_OPERATOR_POD, _to_blocks(net.api_server))
    webhook = NP.NetworkPolicySpecArgs(
        pod_selector=_selector(SPARK_WEBHOOK_POD),
        policy_types=["Ingress"],
        ingress=[NP.NetworkPolicyIngressRuleArgs(ports=_tcp(SPARK_WEBHOOK_PORT))],
    )
    return [
        *namespace_baseline(ns),
        Policy(ns, "spark-operator-api-server", operator),
        Policy(ns, "spark-operator-webhook", webhook),
    ]
