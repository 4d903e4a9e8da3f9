"""ClusterPlatform: what every member cluster runs, installed through its kubernetes provider.

Per tenant hosted on the cluster: a namespace, a ResourceQuota (its share of the topology's
capacity), a LimitRange (so quota-counted pods always have requests), default-deny
NetworkPolicies with only same-namespace and DNS traffic allowed, and the agent's Role/RoleBinding.
Cluster-wide: the PriorityClasses jobs use, the agent's ServiceAccount and read-only ClusterRole,
and the agent and monitoring Helm releases from ``charts/``.
"""

from __future__ import annotations

import math
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.yiwang_infra import labels as L
from infra.yiwang_infra.charts import AGENT_CHART, MONITORING_CHART, chart_path
from infra.yiwang_infra.config import StackConfig, TenantRef

TYPE = "yiwang:infra:ClusterPlatform"
AGENT_SA = "yiwang-agent"
AGENT_TOKEN_SECRET = "yiwang-agent-token"

# name -> (value, preemption policy, description). Jobs pick one by their priority in the API.
PRIORITY_CLASSES: dict[str, tuple[int, str, str]] = {
    "yiwang-platform-critical": (1_000_000, "PreemptLowerPriority", "Yiwang agent and monitoring"),
    "yiwang-high": (10_000, "PreemptLowerPriority", "Urgent analytics (emergency response)"),
    "yiwang-normal": (1_000, "PreemptLowerPriority", "Regular analytics jobs"),
    "yiwang-batch": (100, "Never", "Best-effort batch and backfill; never preempts"),
}
PLATFORM_PRIORITY = "yiwang-platform-critical"


def _meta(name: str, labels: dict[str, str], namespace: str | None = None) -> k8s.meta.v1.ObjectMetaArgs:
    return k8s.meta.v1.ObjectMetaArgs(
        name=name,
        namespace=namespace,
        labels={**labels, L.MANAGED_BY: L.MANAGER},
    )


def _dns_egress() -> k8s.networking.v1.NetworkPolicyEgressRuleArgs:
    return k8s.networking.v1.NetworkPolicyEgressRuleArgs(
        to=[
            k8s.networking.v1.NetworkPolicyPeerArgs(
                namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                    match_labels={"kubernetes.io/metadata.name": "kube-system"}
                ),
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels={"k8s-app": "kube-dns"}),
            )
        ],
        ports=[
            k8s.networking.v1.NetworkPolicyPortArgs(protocol="UDP", port=53),
            k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=53),
        ],
    )


class ClusterPlatform(pulumi.ComponentResource):
    """Namespaces, quotas, priorities, network policies, RBAC, agent and monitoring of one cluster."""

    system_namespace: k8s.core.v1.Namespace
    tenant_namespaces: dict[str, k8s.core.v1.Namespace]

    def __init__(
        self,
        name: str,
        config: StackConfig,
        monitoring_values: dict[str, Any],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(TYPE, name, {"clusterName": config.cluster.name}, opts)
        self._name = name
        self._config = config
        self._child = pulumi.ResourceOptions(parent=self)
        cluster = config.cluster
        platform = config.platform

        for pc_name, (value, preemption, description) in PRIORITY_CLASSES.items():
            k8s.scheduling.v1.PriorityClass(
                f"{name}-pc-{pc_name}",
                metadata=_meta(pc_name, {L.PART_OF: "yiwang"}),
                value=value,
                preemption_policy=preemption,
                global_default=False,
                description=description,
                opts=self._child,
            )

        self.system_namespace = self._namespace(platform.system_namespace, L.system_labels(cluster, "agent"))
        monitoring_ns = self._namespace(platform.monitoring_namespace, L.system_labels(cluster, "monitoring"))
        self._system_network_policies(platform.system_namespace, https_egress=True)
        self._system_network_policies(platform.monitoring_namespace, https_egress=True, scrape=True)

        sa = k8s.core.v1.ServiceAccount(
            f"{name}-agent-sa",
            metadata=_meta(AGENT_SA, {L.PART_OF: "yiwang"}, platform.system_namespace),
            automount_service_account_token=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.system_namespace]),
        )
        observer = k8s.rbac.v1.ClusterRole(
            f"{name}-agent-observer",
            metadata=_meta("yiwang-agent-observer", {L.PART_OF: "yiwang"}),
            rules=[
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=[""], resources=["nodes", "namespaces", "pods"], verbs=["get", "list", "watch"]
                ),
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=[""], resources=["resourcequotas"], verbs=["get", "list", "watch"]
                ),
            ],
            opts=self._child,
        )
        k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-agent-observer-binding",
            metadata=_meta("yiwang-agent-observer", {L.PART_OF: "yiwang"}),
            role_ref=k8s.rbac.v1.RoleRefArgs(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="yiwang-agent-observer"
            ),
            subjects=[
                k8s.rbac.v1.SubjectArgs(
                    kind="ServiceAccount", name=AGENT_SA, namespace=platform.system_namespace
                )
            ],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[observer, sa]),
        )
        self.tenant_namespaces = {}
        for tenant in config.tenant_refs():
            self.tenant_namespaces[tenant.name] = self._tenant(tenant, sa)

        chart_cluster: dict[str, Any] = {"name": cluster.name, "tier": cluster.tier.value}
        if cluster.adcode:
            chart_cluster["adcode"] = cluster.adcode
        self._chart_cluster = chart_cluster
        self._agent_sa = sa
        self.monitoring = k8s.helm.v3.Release(
            f"{name}-monitoring",
            name="yiwang-monitoring",
            chart=chart_path(MONITORING_CHART),
            namespace=platform.monitoring_namespace,
            values={
                "cluster": chart_cluster,
                "priorityClassName": PLATFORM_PRIORITY,
                **monitoring_values,
                **platform.monitoring_chart_values,
            },
            atomic=True,
            timeout=600,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[monitoring_ns]),
        )

    def install_agent(
        self,
        controller_url: pulumi.Input[str],
        agent_token: pulumi.Input[str],
        depends_on: list[pulumi.Resource] | None = None,
    ) -> k8s.helm.v3.Release:
        """The agent's token Secret and its Helm release; called once the token exists (it is
        issued by the controller: the national stack's AgentToken resources)."""
        cluster, config, platform = self._config.cluster, self._config, self._config.platform
        name, sa, chart_cluster = self._name, self._agent_sa, self._chart_cluster
        token_secret = k8s.core.v1.Secret(
            f"{name}-agent-token",
            metadata=_meta(AGENT_TOKEN_SECRET, {L.PART_OF: "yiwang"}, platform.system_namespace),
            type="Opaque",
            string_data={"token": pulumi.Output.secret(agent_token)},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.system_namespace, *(depends_on or [])]),
        )

        # What the cluster offers the federation: the agent reports it (it does not read nodes).
        capacity = {
            "cpu": cluster.capacity.cpu,
            "memoryGib": cluster.capacity.memory_gib,
            "gpu": cluster.capacity.gpu,
        }
        # values follow charts/yiwang-agent/values.schema.json; the platform owns SA and RBAC
        agent_values: dict[str, Any] = {
            "controllerUrl": controller_url,
            "cluster": {**chart_cluster, "capacity": capacity},
            "auth": {"existingSecret": AGENT_TOKEN_SECRET, "existingSecretKey": "token"},
            "tenantNamespaces": [t.namespace for t in config.tenant_refs()],
            "rbac": {"create": False},
            "serviceAccount": {"create": False, "name": AGENT_SA},
            "priorityClassName": PLATFORM_PRIORITY,
            **platform.agent_chart_values,
        }
        self.agent = k8s.helm.v3.Release(
            f"{name}-agent",
            name="yiwang-agent",
            chart=chart_path(AGENT_CHART),
            namespace=platform.system_namespace,
            values=agent_values,
            atomic=True,
            timeout=600,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.system_namespace, sa, token_secret]),
        )
        self.register_outputs(
            {
                "systemNamespace": self.system_namespace.metadata.name,
                "tenantNamespaces": [t.namespace for t in config.tenant_refs()],
                "agentRelease": self.agent.status.name,
                "monitoringRelease": self.monitoring.status.name,
            }
        )
        return self.agent

    def _namespace(self, ns: str, labels: dict[str, str]) -> k8s.core.v1.Namespace:
        return k8s.core.v1.Namespace(f"{self._name}-ns-{ns}", metadata=_meta(ns, labels), opts=self._child)

    def _deny_all(self, ns: str, after: pulumi.Resource | None) -> None:
        k8s.networking.v1.NetworkPolicy(
            f"{self._name}-np-{ns}-default-deny",
            metadata=_meta("default-deny-all", {L.PART_OF: "yiwang"}, ns),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(), policy_types=["Ingress", "Egress"]
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[after] if after else None),
        )

    def _system_network_policies(self, ns: str, https_egress: bool, scrape: bool = False) -> None:
        self._deny_all(ns, None)
        egress = [_dns_egress()]
        if https_egress:  # agent -> controller, Prometheus -> national remote write
            egress.append(
                k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                    ports=[k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=443)]
                )
            )
        if scrape:  # Prometheus scrapes every namespace of the cluster
            egress.append(
                k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                    to=[
                        k8s.networking.v1.NetworkPolicyPeerArgs(
                            namespace_selector=k8s.meta.v1.LabelSelectorArgs()
                        )
                    ]
                )
            )
        k8s.networking.v1.NetworkPolicy(
            f"{self._name}-np-{ns}-allow-platform",
            metadata=_meta("allow-platform-egress", {L.PART_OF: "yiwang"}, ns),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(), policy_types=["Egress"], egress=egress
            ),
            opts=self._child,
        )

    def _tenant(self, tenant: TenantRef, agent_sa: k8s.core.v1.ServiceAccount) -> k8s.core.v1.Namespace:
        cluster, platform = self._config.cluster, self._config.platform
        ns_name = tenant.namespace
        ns = self._namespace(ns_name, L.tenant_labels(tenant.name, tenant.tier, tenant.adcode, cluster))
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[ns])
        share = self._config.share_of(tenant)
        cpu = max(1, math.floor(cluster.capacity.cpu * share))
        memory = max(1, math.floor(cluster.capacity.memory_gib * share))
        gpu = math.floor(cluster.capacity.gpu * share)
        tenant_meta = {L.TENANT: tenant.name, L.PART_OF: "yiwang"}
        k8s.core.v1.ResourceQuota(
            f"{self._name}-quota-{tenant.name}",
            metadata=_meta("tenant-quota", tenant_meta, ns_name),
            spec=k8s.core.v1.ResourceQuotaSpecArgs(
                hard={
                    "requests.cpu": str(cpu),
                    "limits.cpu": str(cpu),
                    "requests.memory": f"{memory}Gi",
                    "limits.memory": f"{memory}Gi",
                    "requests.nvidia.com/gpu": str(gpu),
                    "pods": str(platform.max_pods_per_tenant),
                    "count/jobs.batch": str(platform.max_pods_per_tenant),
                }
            ),
            opts=in_ns,
        )
        k8s.core.v1.LimitRange(
            f"{self._name}-limits-{tenant.name}",
            metadata=_meta("tenant-defaults", tenant_meta, ns_name),
            spec=k8s.core.v1.LimitRangeSpecArgs(
                limits=[
                    k8s.core.v1.LimitRangeItemArgs(
                        type="Container",
                        default={"cpu": "1", "memory": "4Gi"},
                        default_request={"cpu": "500m", "memory": "2Gi"},
                    )
                ]
            ),
            opts=in_ns,
        )
        self._deny_all(ns_name, ns)
        same_namespace = [
            k8s.networking.v1.NetworkPolicyPeerArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs())
        ]
        k8s.networking.v1.NetworkPolicy(
            f"{self._name}-np-{ns_name}-allow-same-namespace",
            metadata=_meta("allow-same-namespace", tenant_meta, ns_name),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(),
                policy_types=["Ingress", "Egress"],
                ingress=[k8s.networking.v1.NetworkPolicyIngressRuleArgs(from_=same_namespace)],
                egress=[k8s.networking.v1.NetworkPolicyEgressRuleArgs(to=same_namespace), _dns_egress()],
            ),
            opts=in_ns,
        )
        role = k8s.rbac.v1.Role(
            f"{self._name}-executor-{tenant.name}",
            metadata=_meta("yiwang-agent-executor", tenant_meta, ns_name),
            rules=[
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=["batch"],
                    resources=["jobs"],
                    verbs=["get", "list", "watch", "create", "delete", "patch"],
                ),
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=[""], resources=["pods", "pods/log", "events"], verbs=["get", "list", "watch"]
                ),
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=["sparkoperator.k8s.io"],
                    resources=["sparkapplications"],
                    verbs=["get", "list", "watch", "create", "delete", "patch"],
                ),
            ],
            opts=in_ns,
        )
        k8s.rbac.v1.RoleBinding(
            f"{self._name}-executor-binding-{tenant.name}",
            metadata=_meta("yiwang-agent-executor", tenant_meta, ns_name),
            role_ref=k8s.rbac.v1.RoleRefArgs(
                api_group="rbac.authorization.k8s.io", kind="Role", name="yiwang-agent-executor"
            ),
            subjects=[
                k8s.rbac.v1.SubjectArgs(
                    kind="ServiceAccount", name=AGENT_SA, namespace=self._config.platform.system_namespace
                )
            ],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ns, role, agent_sa]),
        )
        return ns
