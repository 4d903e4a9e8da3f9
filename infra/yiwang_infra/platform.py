"""ClusterPlatform: what every member cluster runs, installed through its kubernetes provider.

Per tenant hosted on the cluster: a namespace, a ResourceQuota (its share of the topology's
capacity), a LimitRange (so quota-counted pods always have requests), and the agent's
Role/RoleBinding. Cluster-wide: the PriorityClasses jobs use, the agent's ServiceAccount and
read-only ClusterRole, the agent and monitoring Helm releases from ``charts/``, and the Spark
operator (a pinned release from a chart repository mirror) that runs the SparkApplications.
Every namespace is default-deny with exactly the platform's flows allowed (network_policies.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s

from infra.yiwang_infra import labels as L
from infra.yiwang_infra.charts import AGENT_CHART, MONITORING_CHART, chart_path
from infra.yiwang_infra.config import AddressBlock, StackConfig, TenantRef
from infra.yiwang_infra.network_policies import PlatformNetwork, Policy, platform_policies

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


def _spec_of(net: PlatformNetwork, key: tuple[str, str]) -> k8s.networking.v1.NetworkPolicySpecArgs:
    found: list[Policy] = [p for p in platform_policies(net) if (p.namespace, p.name) == key]
    assert len(found) == 1, key
    return found[0].spec


@dataclass(frozen=True)
class NetworkInputs:
    """What the platform's NetworkPolicies need from the program: where the API server and the
    controller are, and the address blocks of the sites the federation pull joins."""

    controller_url: pulumi.Input[str]
    # ack mode: the cluster's endpoints (an Output); existing mode: from config or the site's block
    api_server: pulumi.Input[Sequence[AddressBlock]]
    national_blocks: Sequence[str]  # the national sites: the controller endpoint and the federation pull
    federated_member_blocks: Sequence[str] = ()  # national sites: the members whose Prometheus they pull


def url_port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


class ClusterPlatform(pulumi.ComponentResource):
    """Namespaces, quotas, priorities, network policies, RBAC, agent and monitoring of one cluster."""

    system_namespace: k8s.core.v1.Namespace
    tenant_namespaces: dict[str, k8s.core.v1.Namespace]

    def __init__(
        self,
        name: str,
        config: StackConfig,
        monitoring_values: dict[str, Any],
        network: NetworkInputs,
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
        namespaces: dict[str, k8s.core.v1.Namespace] = {
            platform.system_namespace: self.system_namespace,
            platform.monitoring_namespace: monitoring_ns,
        }
        spark = platform.spark_operator
        if spark.enabled:
            namespaces[spark.namespace] = self._namespace(
                spark.namespace, L.system_labels(cluster, "spark-operator")
            )

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
            namespaces[tenant.namespace] = self.tenant_namespaces[tenant.name]
        self._network_policies(network, monitoring_values, namespaces)
        if spark.enabled:
            self.spark_operator: k8s.helm.v3.Release | None = self._spark_operator(namespaces)
        else:
            self.spark_operator = None

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

    def network(
        self,
        inputs: NetworkInputs,
        api_server: Sequence[AddressBlock],
        controller_url: str,
        alertmanager: bool,
    ) -> PlatformNetwork:
        """The platform's flows for this cluster, with the API server and controller resolved."""
        config, platform = self._config, self._config.platform
        federation = config.federation
        return PlatformNetwork(
            system_namespace=platform.system_namespace,
            monitoring_namespace=platform.monitoring_namespace,
            tenant_namespaces=[t.namespace for t in config.tenant_refs()],
            api_server=list(api_server),
            controller=[
                AddressBlock(cidr=b, ports=[url_port(controller_url)]) for b in inputs.national_blocks
            ],
            national=config.controller is not None,
            federated_members=list(inputs.federated_member_blocks) if federation else [],
            # members let the national sites pull /federate; the national sites federate, not federated
            federation_clients=[] if config.controller is not None else list(inputs.national_blocks),
            alertmanager=alertmanager,
            alert_receivers=list(platform.alert_receivers),
            prometheus_readers=list(platform.prometheus_readers),
            spark_operator_namespace=platform.spark_operator.namespace
            if platform.spark_operator.enabled
            else None,
        )

    def _network_policies(
        self,
        inputs: NetworkInputs,
        monitoring_values: dict[str, Any],
        namespaces: dict[str, k8s.core.v1.Namespace],
    ) -> None:
        merged = {**monitoring_values, **self._config.platform.monitoring_chart_values}
        alertmanager = bool((merged.get("alertmanager") or {}).get("enabled"))
        resolved = pulumi.Output.all(inputs.api_server, inputs.controller_url).apply(
            lambda a: self.network(
                inputs, [AddressBlock.model_validate(b) for b in a[0]], str(a[1]), alertmanager
            )
        )
        # the policies' names do not depend on the addresses: create them now, fill the specs in later
        skeleton = self.network(inputs, [], "https://controller.invalid", alertmanager)
        for policy in platform_policies(skeleton):
            key = (policy.namespace, policy.name)

            def spec(
                net: PlatformNetwork, key: tuple[str, str] = key
            ) -> k8s.networking.v1.NetworkPolicySpecArgs:
                return _spec_of(net, key)

            k8s.networking.v1.NetworkPolicy(
                f"{self._name}-np-{policy.namespace}-{policy.name}",
                metadata=_meta(policy.name, {L.PART_OF: "yiwang"}, policy.namespace),
                spec=resolved.apply(spec),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[namespaces[policy.namespace]]),
            )

    def _spark_operator(self, namespaces: dict[str, k8s.core.v1.Namespace]) -> k8s.helm.v3.Release:
        """The Spark operator, watching the tenant namespaces; its Spark service account is the one
        the agent's SparkApplications name (``spark``)."""
        spark = self._config.platform.spark_operator
        tenant_namespaces = [t.namespace for t in self._config.tenant_refs()]
        values: dict[str, Any] = {
            "image": {"registry": spark.image_registry},
            "hook": {"image": {"registry": spark.image_registry}},
            "controller": {"priorityClassName": PLATFORM_PRIORITY},
            "webhook": {"enable": True, "port": 9443, "priorityClassName": PLATFORM_PRIORITY},
            "spark": {
                "jobNamespaces": tenant_namespaces,
                "serviceAccount": {"create": True, "name": "spark"},
            },
            **spark.values,
        }
        return k8s.helm.v3.Release(
            f"{self._name}-spark-operator",
            name="spark-operator",
            chart=spark.chart,
            version=spark.version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=spark.repository),
            namespace=spark.namespace,
            values=values,
            atomic=True,
            timeout=600,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(namespaces.values())),
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
        rules = [
            k8s.rbac.v1.PolicyRuleArgs(
                api_groups=["batch"],
                resources=["jobs"],
                verbs=["get", "list", "watch", "create", "delete", "patch"],
            ),
            k8s.rbac.v1.PolicyRuleArgs(
                api_groups=[""], resources=["pods", "pods/log", "events"], verbs=["get", "list", "watch"]
            ),
        ]
        if platform.spark_operator.enabled:  # SparkApplications need the operator's CRD
            rules.append(
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=["sparkoperator.k8s.io"],
                    resources=["sparkapplications"],
                    verbs=["get", "list", "watch", "create", "delete", "patch"],
                )
            )
        role = k8s.rbac.v1.Role(
            f"{self._name}-executor-{tenant.name}",
            metadata=_meta("yiwang-agent-executor", tenant_meta, ns_name),
            rules=rules,
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
