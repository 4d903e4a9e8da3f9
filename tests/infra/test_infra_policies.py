"""Each rule of the policy pack, called directly with passing and failing resources."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy import StackValidationArgs

from infra.policypack import rules
from infra.policypack.harness import Violations, policy_resource, provider, resource_args
from infra.yiwang_infra import labels as L


def run(policy: Any, args: Any) -> Violations:
    found = Violations()
    policy.validate(args, found)
    return found


def namespace(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


PROVINCE_NS = {L.TENANT: "guangdong", L.TIER: "province", L.ADCODE: "440000"}


# -- tenant-namespace-has-quota


def quota(ns: str) -> dict[str, Any]:
    return {"kind": "ResourceQuota", "metadata": {"name": "tenant-quota", "namespace": ns}}


def test_tenant_namespace_with_quota_passes() -> None:
    resources = [
        policy_resource(rules.NAMESPACE, namespace("tenant-guangdong", PROVINCE_NS), "ns"),
        policy_resource(rules.RESOURCE_QUOTA, quota("tenant-guangdong"), "q"),
        policy_resource(rules.NAMESPACE, namespace("yiwang-system", {L.TIER: "national"}), "sys"),
    ]
    assert run(rules.tenant_namespace_has_quota, StackValidationArgs(resources)) == []


def test_tenant_namespace_without_quota_fails() -> None:
    resources = [
        policy_resource(rules.NAMESPACE, namespace("tenant-guangdong", PROVINCE_NS), "ns"),
        policy_resource(rules.RESOURCE_QUOTA, quota("tenant-other"), "q"),
    ]
    found = run(rules.tenant_namespace_has_quota, StackValidationArgs(resources))
    assert found == ["tenant namespace 'tenant-guangdong' has no ResourceQuota"]


# -- no-public-services


@pytest.mark.parametrize("service_type", [None, "ClusterIP", "ExternalName"])
def test_internal_services_pass(service_type: str | None) -> None:
    spec = {"type": service_type} if service_type else {}
    args = resource_args(rules.SERVICE, {"kind": "Service", "spec": spec})
    assert run(rules.no_public_services, args) == []


@pytest.mark.parametrize("service_type", ["LoadBalancer", "NodePort"])
def test_public_services_fail(service_type: str) -> None:
    args = resource_args(rules.SERVICE, {"kind": "Service", "spec": {"type": service_type}})
    assert len(run(rules.no_public_services, args)) == 1


def test_intranet_load_balancers_pass_and_others_fail() -> None:
    def lb(address_type: str | None) -> Any:
        annotations = {rules.LB_ADDRESS_TYPE: address_type} if address_type else {}
        meta = {"name": "lb", "annotations": annotations}
        return resource_args(
            rules.SERVICE, {"kind": "Service", "metadata": meta, "spec": {"type": "LoadBalancer"}}
        )

    assert run(rules.no_public_services, lb("intranet")) == []
    assert len(run(rules.no_public_services, lb("internet"))) == 1
    assert len(run(rules.no_public_services, lb(None))) == 1
    node_port = {"kind": "Service", "metadata": {"annotations": {rules.LB_ADDRESS_TYPE: "intranet"}}}
    assert (
        len(
            run(
                rules.no_public_services,
                resource_args(rules.SERVICE, {**node_port, "spec": {"type": "NodePort"}}),
            )
        )
        == 1
    )


# -- cluster-in-province-region


def member(cluster: str, region: str, alicloud_region: str | None) -> Any:
    props = {"clusterName": cluster, "region": region, "alicloudRegion": alicloud_region, "labels": {}}
    return resource_args(rules.MEMBER_CLUSTER, props)


def ack(cluster: str, region: str, provider_region: str | None) -> Any:
    tags = {L.CLUSTER: cluster, L.REGION: region, L.TIER: "province", L.ADCODE: "440000"}
    prov = provider(rules.ALICLOUD_PROVIDER, {"region": provider_region}) if provider_region else None
    return resource_args(
        rules.ACK_CLUSTER, {"name": cluster, "tags": tags, "encryptionProviderKey": "k"}, "c", prov
    )


@pytest.mark.parametrize(
    "args",
    [
        member("prov-guangdong", "cn-guangdong", "cn-shenzhen"),
        member("prov-guangdong", "cn-guangdong", "cn-heyuan"),
        member("prov-tianjin", "cn-tianjin", None),  # existing mode: on-premises
        ack("prov-guangdong", "cn-guangdong", "cn-guangzhou"),
        ack("prov-hebei", "cn-hebei", "cn-zhangjiakou"),
    ],
)
def test_clusters_inside_their_province_pass(args: Any) -> None:
    assert run(rules.cluster_in_province_region, args) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (member("prov-guangdong", "cn-beijing", "cn-beijing"), "topology says 'cn-guangdong'"),
        (member("prov-guangdong", "cn-guangdong", "cn-hangzhou"), "outside cn-guangdong"),
        (member("prov-tianjin", "cn-tianjin", "cn-beijing"), "none (use mode: existing)"),
        (ack("prov-guangdong", "cn-guangdong", "cn-shanghai"), "outside cn-guangdong"),
        (ack("prov-guangdong", "cn-guangdong", None), "no explicit Alibaba Cloud region"),
        (member("prov-atlantis", "cn-atlantis", None), "not in policies/topology.yaml"),
    ],
)
def test_clusters_outside_their_province_fail(args: Any, message: str) -> None:
    found = run(rules.cluster_in_province_region, args)
    assert any(message in m for m in found), found


# -- encryption-at-rest


@pytest.mark.parametrize(
    ("resource_type", "props"),
    [
        (rules.ACK_CLUSTER, {"encryptionProviderKey": "key-id"}),
        (rules.NODE_POOL, {"systemDiskEncrypted": True, "dataDisks": [{"encrypted": "true"}]}),
        (rules.RDS_INSTANCE, {"encryptionKey": "key-id", "roleArn": "acs:ram::1:role/r"}),
        (rules.KMS_KEY, {"protectionLevel": "SOFTWARE", "automaticRotation": "Enabled"}),
        (rules.KMS_KEY, {"protectionLevel": "HSM", "automaticRotation": "Disabled"}),
        (rules.SERVICE, {}),
    ],
)
def test_encrypted_resources_pass(resource_type: str, props: dict[str, Any]) -> None:
    assert run(rules.encryption_at_rest, resource_args(resource_type, props)) == []


@pytest.mark.parametrize(
    ("resource_type", "props"),
    [
        (rules.ACK_CLUSTER, {}),
        (rules.ACK_CLUSTER, {"encryptionProviderKey": "k", "disableEncryption": True}),
        (rules.NODE_POOL, {"systemDiskEncrypted": False}),
        (rules.NODE_POOL, {"systemDiskEncrypted": True, "dataDisks": [{"encrypted": "false"}]}),
        (rules.RDS_INSTANCE, {}),
        (rules.RDS_INSTANCE, {"encryptionKey": "key-id"}),  # BYOK without the role RDS reads it with
        (rules.KMS_KEY, {"protectionLevel": "HSM", "automaticRotation": "Enabled"}),
    ],
)
def test_unencrypted_resources_fail(resource_type: str, props: dict[str, Any]) -> None:
    assert len(run(rules.encryption_at_rest, resource_args(resource_type, props))) == 1


# -- required-labels


@pytest.mark.parametrize(
    ("resource_type", "props"),
    [
        (rules.NAMESPACE, namespace("tenant-guangdong", PROVINCE_NS)),
        (rules.NAMESPACE, namespace("tenant-mps", {L.TENANT: "mps", L.TIER: "department"})),
        (rules.ACK_CLUSTER, {"name": "c", "tags": {L.TIER: "province", L.ADCODE: "440000"}}),
        (rules.MEMBER_CLUSTER, {"clusterName": "national-backup", "labels": {L.TIER: "national"}}),
    ],
)
def test_labelled_namespaces_and_clusters_pass(resource_type: str, props: dict[str, Any]) -> None:
    assert run(rules.required_labels, resource_args(resource_type, props)) == []


@pytest.mark.parametrize(
    ("resource_type", "props", "missing"),
    [
        (rules.NAMESPACE, namespace("tenant-x", {L.TENANT: "x"}), L.TIER),
        (rules.NAMESPACE, namespace("tenant-guangdong", {L.TIER: "province"}), L.ADCODE),
        (rules.ACK_CLUSTER, {"name": "c", "tags": {L.TIER: "province"}}, L.ADCODE),
        (rules.MEMBER_CLUSTER, {"clusterName": "prov-x", "labels": {}}, L.TIER),
    ],
)
def test_unlabelled_namespaces_and_clusters_fail(
    resource_type: str, props: dict[str, Any], missing: str
) -> None:
    found = run(rules.required_labels, resource_args(resource_type, props))
    assert len(found) == 1 and missing in found[0]


def test_pack_lists_every_rule_once() -> None:
    names = [p.name for p in rules.ALL_POLICIES]
    assert sorted(names) == sorted(set(names))
    assert set(names) == {
        "tenant-namespace-has-quota",
        "namespace-default-deny",
        "no-public-services",
        "cluster-in-province-region",
        "encryption-at-rest",
        "required-labels",
    }


# -- namespace-default-deny


def network_policy(ns: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "NetworkPolicy", "metadata": {"name": "p", "namespace": ns}, "spec": spec}


DENY_ALL = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_namespace_with_default_deny_passes() -> None:
    resources = [
        policy_resource(rules.NAMESPACE, namespace("tenant-guangdong", PROVINCE_NS), "ns"),
        policy_resource(rules.NETWORK_POLICY, network_policy("tenant-guangdong", DENY_ALL), "np"),
    ]
    assert run(rules.namespace_default_deny, StackValidationArgs(resources)) == []


@pytest.mark.parametrize(
    "spec",
    [
        {"podSelector": {}, "policyTypes": ["Ingress"]},  # egress left open
        {
            "podSelector": {"matchLabels": {"app": "x"}},
            "policyTypes": ["Ingress", "Egress"],
        },  # some pods only
        {**DENY_ALL, "egress": [{}]},  # allows all egress
    ],
)
def test_namespace_without_default_deny_fails(spec: dict[str, Any]) -> None:
    resources = [
        policy_resource(rules.NAMESPACE, namespace("yiwang-system", {L.TIER: "national"}), "ns"),
        policy_resource(rules.NETWORK_POLICY, network_policy("yiwang-system", spec), "np"),
        policy_resource(rules.NETWORK_POLICY, network_policy("elsewhere", DENY_ALL), "np2"),
    ]
    found = run(rules.namespace_default_deny, StackValidationArgs(resources))
    assert found == ["namespace 'yiwang-system' has no default-deny NetworkPolicy (ingress and egress)"]
