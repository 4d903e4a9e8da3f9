"""Label and tag keys shared by the components, the programs and the policy pack."""

from __future__ import annotations

from controller.topology.model import Cluster, Tier

PREFIX = "yiwang.gov.cn"
TIER = f"{PREFIX}/tier"
ADCODE = f"{PREFIX}/adcode"
TENANT = f"{PREFIX}/tenant"
CLUSTER = f"{PREFIX}/cluster"
REGION = f"{PREFIX}/region"
HUB = f"{PREFIX}/hub"
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "pulumi-yiwang"
PART_OF = "app.kubernetes.io/part-of"


def cluster_labels(cluster: Cluster) -> dict[str, str]:
    """Labels (and cloud tags) that describe a member cluster."""
    labels = {CLUSTER: cluster.name, TIER: cluster.tier.value, TENANT: cluster.tenant, REGION: cluster.region}
    if cluster.adcode:
        labels[ADCODE] = cluster.adcode
    hub = cluster.all_labels().get("hub")
    if hub:
        labels[HUB] = hub
    return labels


def tenant_labels(tenant: str, tier: Tier, adcode: str | None, host: Cluster) -> dict[str, str]:
    """Labels of a tenant namespace: who the tenant is, and which cluster hosts the namespace."""
    labels = {TENANT: tenant, TIER: tier.value, CLUSTER: host.name, REGION: host.region}
    if adcode:
        labels[ADCODE] = adcode
    return labels


def system_labels(host: Cluster, component: str) -> dict[str, str]:
    """Labels of a platform namespace (yiwang-system, yiwang-monitoring): those of its cluster."""
    labels = {
        k: v for k, v in cluster_labels(host).items() if k not in (HUB, TENANT)
    }  # not a tenant namespace
    labels[PART_OF] = "yiwang"
    labels["yiwang.gov.cn/component"] = component
    return labels
