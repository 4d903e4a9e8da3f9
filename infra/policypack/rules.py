"""Compliance rules of the Yiwang stacks, each a pulumi-policy policy with a plain validate function.

- ``tenant-namespace-has-quota``: every tenant namespace (label ``yiwang.gov.cn/tenant``) has a
  ResourceQuota in the same stack.
- ``namespace-default-deny``: every namespace the stack creates has a NetworkPolicy that selects
  all its pods and denies all ingress and egress (the platform's flows are opened on top of it).
- ``no-public-services``: no Service of type NodePort, and a LoadBalancer only on the intranet
  (annotation ``service.beta.kubernetes.io/alibaba-cloud-loadbalancer-address-type: intranet``).
- ``cluster-in-province-region``: a cluster's configured region equals the topology's region for
  it, and an Alibaba Cloud cluster lies in a cloud region inside that province
  (table: infra/yiwang_infra/regions.py).
- ``encryption-at-rest``: ACK clusters encrypt Secrets with KMS, node disks and RDS are encrypted
  (RDS with its own key also names the RAM role RDS uses for it); a KMS key is never HSM-protected
  and automatically rotated at once (KMS refuses that).
- ``required-labels``: namespaces and clusters carry ``yiwang.gov.cn/tier``, and
  ``yiwang.gov.cn/adcode`` when the tier is province.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from controller.topology.model import Cluster, Topology, load_topology
from infra.yiwang_infra import labels as L
from infra.yiwang_infra.charts import POLICIES_DIR
from infra.yiwang_infra.regions import UnknownRegion, allowed_region_ids

NAMESPACE = "kubernetes:core/v1:Namespace"
RESOURCE_QUOTA = "kubernetes:core/v1:ResourceQuota"
SERVICE = "kubernetes:core/v1:Service"
ACK_CLUSTER = "alicloud:cs/managedKubernetes:ManagedKubernetes"
NODE_POOL = "alicloud:cs/nodePool:NodePool"
RDS_INSTANCE = "alicloud:rds/instance:Instance"
ALICLOUD_PROVIDER = "pulumi:providers:alicloud"
MEMBER_CLUSTER = "yiwang:infra:MemberCluster"
LB_ADDRESS_TYPE = "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-address-type"
KMS_KEY = "alicloud:kms/key:Key"
PUBLIC_SERVICE_TYPES = ("LoadBalancer", "NodePort")


@cache
def topology() -> Topology:
    return load_topology(POLICIES_DIR / "topology.yaml")


def _say(report: ReportViolation, message: str, urn: str | None = None) -> None:
    report(message, urn)


def _labels(props: Mapping[str, Any]) -> Mapping[str, Any]:
    return (props.get("metadata") or {}).get("labels") or {}


def _missing_labels(labels: Mapping[str, Any]) -> list[str]:
    missing = [] if labels.get(L.TIER) else [L.TIER]
    if labels.get(L.TIER) == "province" and not labels.get(L.ADCODE):
        missing.append(L.ADCODE)
    return missing


# --- tenant-namespace-has-quota -------------------------------------------------------------


def validate_tenant_quota(args: StackValidationArgs, report: ReportViolation) -> None:
    quota_namespaces = {
        (r.props.get("metadata") or {}).get("namespace")
        for r in args.resources
        if r.resource_type == RESOURCE_QUOTA
    }
    for r in args.resources:
        if r.resource_type != NAMESPACE or L.TENANT not in _labels(r.props):
            continue
        name = (r.props.get("metadata") or {}).get("name")
        if name not in quota_namespaces:
            _say(report, f"tenant namespace {name!r} has no ResourceQuota", r.urn)


tenant_namespace_has_quota = StackValidationPolicy(
    name="tenant-namespace-has-quota",
    description="Every tenant namespace has a ResourceQuota.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=validate_tenant_quota,
)


# --- namespace-default-deny -----------------------------------------------------------------

NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


def _denies_all(props: Mapping[str, Any]) -> bool:
    spec = props.get("spec") or {}
    return (
        not (spec.get("podSelector") or {})
        and {"Ingress", "Egress"} <= set(spec.get("policyTypes") or [])
        and not spec.get("ingress")
        and not spec.get("egress")
    )


def validate_default_deny(args: StackValidationArgs, report: ReportViolation) -> None:
    denied = {
        (r.props.get("metadata") or {}).get("namespace")
        for r in args.resources
        if r.resource_type == NETWORK_POLICY and _denies_all(r.props)
    }
    for r in args.resources:
        if r.resource_type != NAMESPACE:
            continue
        name = (r.props.get("metadata") or {}).get("name")
        if name not in denied:
            _say(report, f"namespace {name!r} has no default-deny NetworkPolicy (ingress and egress)", r.urn)


namespace_default_deny = StackValidationPolicy(
    name="namespace-default-deny",
    description="Every namespace the stack creates denies all ingress and egress by default.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=validate_default_deny,
)


# --- no-public-services ---------------------------------------------------------------------


def validate_no_public_services(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != SERVICE:
        return
    service_type = (args.props.get("spec") or {}).get("type") or "ClusterIP"
    annotations = (args.props.get("metadata") or {}).get("annotations") or {}
    if service_type == "LoadBalancer" and annotations.get(LB_ADDRESS_TYPE) == "intranet":
        return  # an intranet load balancer: reachable inside the government network only
    if service_type in PUBLIC_SERVICE_TYPES:
        _say(
            report,
            f"Service of type {service_type} exposes the cluster; use ClusterIP behind the government gateway "
            f"or a LoadBalancer annotated {LB_ADDRESS_TYPE}: intranet",
        )


no_public_services = ResourceValidationPolicy(
    name="no-public-services",
    description="No Service of type LoadBalancer (public) or NodePort.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=validate_no_public_services,
)


# --- cluster-in-province-region -------------------------------------------------------------


def _topology_cluster(name: str | None) -> Cluster | None:
    return topology().by_name().get(name or "")


def validate_cluster_region(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == MEMBER_CLUSTER:
        cluster_name, region = args.props.get("clusterName"), args.props.get("region")
        alicloud_region = args.props.get("alicloudRegion")
    elif args.resource_type == ACK_CLUSTER:
        tags = args.props.get("tags") or {}
        cluster_name, region = tags.get(L.CLUSTER), tags.get(L.REGION)
        alicloud_region = (args.provider.props or {}).get("region") if args.provider else None
    else:
        return
    cluster = _topology_cluster(cluster_name)
    if cluster is None:
        _say(report, f"cluster {cluster_name!r} is not in policies/topology.yaml")
        return
    if region != cluster.region:
        _say(
            report,
            f"cluster {cluster.name} is configured in region {region!r}; the topology says {cluster.region!r}",
        )
    if alicloud_region is None:
        if args.resource_type == ACK_CLUSTER:
            _say(report, f"ACK cluster {cluster.name} has no explicit Alibaba Cloud region")
        return
    try:
        allowed = allowed_region_ids(cluster.region)
    except UnknownRegion as exc:
        _say(report, str(exc))
        return
    if alicloud_region not in allowed:
        _say(
            report,
            f"cluster {cluster.name} would be created in Alibaba Cloud region {alicloud_region!r}, outside "
            f"{cluster.region}; allowed: {list(allowed) or 'none (use mode: existing)'}",
        )


cluster_in_province_region = ResourceValidationPolicy(
    name="cluster-in-province-region",
    description="Clusters of a province are created in that province's region.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=validate_cluster_region,
)


# --- encryption-at-rest ---------------------------------------------------------------------


def validate_encryption(args: ResourceValidationArgs, report: ReportViolation) -> None:
    props = args.props
    if args.resource_type == ACK_CLUSTER:
        if not props.get("encryptionProviderKey"):
            _say(report, "ACK cluster without encryptionProviderKey: Secrets would not be encrypted with KMS")
        if props.get("disableEncryption"):
            _say(report, "ACK cluster with disableEncryption set")
    elif args.resource_type == NODE_POOL:
        if props.get("systemDiskEncrypted") is not True:
            _say(report, "node pool system disks are not encrypted (systemDiskEncrypted)")
        for disk in props.get("dataDisks") or []:
            if str(disk.get("encrypted")).lower() != "true":
                _say(report, "node pool data disk is not encrypted")
    elif args.resource_type == RDS_INSTANCE and not props.get("encryptionKey"):
        _say(report, "RDS instance without encryptionKey: disks would not be encrypted")
    elif args.resource_type == RDS_INSTANCE and not props.get("roleArn"):
        _say(report, "RDS instance with its own KMS key but no roleArn: RDS cannot use the key")
    elif (
        args.resource_type == KMS_KEY
        and props.get("protectionLevel") == "HSM"
        and props.get("automaticRotation") == "Enabled"
    ):
        _say(report, "KMS key with HSM protection and automatic rotation: KMS refuses the pair")


encryption_at_rest = ResourceValidationPolicy(
    name="encryption-at-rest",
    description="Managed clusters (and their disks and databases) encrypt data at rest with KMS.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=validate_encryption,
)


# --- required-labels ------------------------------------------------------------------------


def validate_required_labels(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == NAMESPACE:
        labels: Mapping[str, Any] = _labels(args.props)
        what = f"namespace {(args.props.get('metadata') or {}).get('name')!r}"
    elif args.resource_type == ACK_CLUSTER:
        labels = args.props.get("tags") or {}
        what = f"ACK cluster {args.props.get('name')!r} (tags)"
    elif args.resource_type == MEMBER_CLUSTER:
        labels = args.props.get("labels") or {}
        what = f"cluster {args.props.get('clusterName')!r}"
    else:
        return
    missing = _missing_labels(labels)
    if missing:
        _say(report, f"{what} lacks required labels: {', '.join(missing)}")


required_labels = ResourceValidationPolicy(
    name="required-labels",
    description="Namespaces and clusters carry yiwang.gov.cn/tier (and yiwang.gov.cn/adcode for provinces).",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=validate_required_labels,
)

RESOURCE_POLICIES = (no_public_services, cluster_in_province_region, encryption_at_rest, required_labels)
STACK_POLICIES = (tenant_namespace_has_quota, namespace_default_deny)
ALL_POLICIES = [*RESOURCE_POLICIES, *STACK_POLICIES]
