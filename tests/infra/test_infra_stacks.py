"""Every stack (2 national + 32 provinces + 8 ministries) builds its resource graph under mocks.

Per stack: parents, names, labels and regions of the resources; every Kubernetes manifest passes
the 1.30 schemas strictly; the registration body is the topology entry; the policy pack passes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pulumi
import pytest
import yaml

from controller.executors.kube_manifests import KubeOptions
from controller.topology.model import Tier, load_topology
from infra.generate_stacks import main as generate_main
from infra.policypack.harness import check_resource, check_stack, policy_resource, provider, resource_args
from infra.yiwang_infra import labels as L
from infra.yiwang_infra.charts import CHARTS_DIR
from infra.yiwang_infra.config import Mode
from infra.yiwang_infra.regions import allowed_region_ids
from infra.yiwang_infra.testing import (
    ACK_VERSIONS,
    LB_ADDRESS,
    NATIONAL_OUTPUTS,
    Registration,
    StackRun,
    agent_token_of,
    stack_names,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = load_topology(REPO_ROOT / "policies" / "topology.yaml")
RAW_TOPOLOGY = yaml.safe_load((REPO_ROOT / "policies" / "topology.yaml").read_text(encoding="utf-8"))
ALL_STACKS = [
    (project, stack) for project in ("national", "province", "department") for stack in stack_names(project)
]
KUBE_VERSION = "1.30.0"
NOT_MANIFESTS = ("kubernetes:helm.sh/", "pulumi:providers:kubernetes")


def as_manifest(value: Any) -> Any:
    """Mocks hand numbers over as floats; the API server's schemas want integers where whole."""
    if isinstance(value, dict):
        return {k: as_manifest(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_manifest(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def test_one_stack_per_cluster_of_the_topology() -> None:
    expected = {
        "national": {"primary", "backup"},
        "province": {c.tenant for c in TOPOLOGY.clusters if c.tier is Tier.province},
        "department": {c.tenant for c in TOPOLOGY.clusters if c.tier is Tier.department},
    }
    found = {project: set(stack_names(project)) for project in expected}
    assert found == expected
    assert [len(found[p]) for p in ("national", "province", "department")] == [2, 32, 8]


def test_generated_stack_files_are_up_to_date() -> None:
    assert generate_main(["--check"]) == 0, "run: python -m infra.generate_stacks"


def _by_type(run: StackRun, type_: str) -> list[Registration]:
    return [r for r in run.monitor.registrations.values() if r.type == type_]


def _one(run: StackRun, type_: str) -> Registration:
    found = _by_type(run, type_)
    assert len(found) == 1, f"expected one {type_}, got {[r.name for r in found]}"
    return found[0]


def check_stack_graph(run: StackRun, project: str, stack: str) -> None:
    config = run.config
    cluster = TOPOLOGY.by_name()[config.cluster.name]
    regs = run.monitor.registrations
    assert config.cluster == cluster, "stack file out of sync with policies/topology.yaml"
    names = [r.name for r in regs.values()]
    assert len(names) == len(set(names)), "duplicate logical names"

    # -- the member cluster and its children
    member = _one(run, "yiwang:infra:MemberCluster")
    assert member.name == cluster.name
    assert member.parent.endswith(f"pulumi:pulumi:Stack::{run.name}-{stack}"), member.parent
    assert member.inputs["region"] == cluster.region
    assert member.inputs["labels"][L.TIER] == cluster.tier.value
    k8s_provider = _one(run, "pulumi:providers:kubernetes")
    assert k8s_provider.parent == member.urn
    platform = _one(run, "yiwang:infra:ClusterPlatform")
    endpoints = {r.urn for r in _by_type(run, "yiwang:infra:ControllerEndpoint")}
    stores = {r.urn for r in _by_type(run, "yiwang:infra:NationalStoreMember")}
    owners = (
        {platform.urn}
        | {r.urn for r in _by_type(run, "yiwang:infra:ControllerDeployment")}
        | endpoints
        | stores
    )

    alicloud = [r for r in regs.values() if r.type.startswith("alicloud:")]
    if config.mode is Mode.ack:
        provider_reg = _one(run, "pulumi:providers:alicloud")
        assert provider_reg.parent == member.urn
        region_id = provider_reg.inputs["region"]
        assert region_id in allowed_region_ids(cluster.region), f"{region_id} is outside {cluster.region}"
        assert member.inputs["alicloudRegion"] == region_id
        database_urns = {r.urn for r in _by_type(run, "yiwang:infra:ControllerDatabase")}
        for r in alicloud:
            assert r.parent in {member.urn} | database_urns | endpoints | stores, (
                f"{r.name} has parent {r.parent}"
            )
            assert r.provider.startswith(provider_reg.urn), f"{r.name} uses a default provider"
        for switch in _by_type(run, "alicloud:vpc/switch:Switch"):
            assert switch.inputs["zoneId"].startswith(region_id + "-")
        network = config.network
        assert network is not None
        assert _one(run, "alicloud:vpc/network:Network").inputs["cidrBlock"] == network.vpc_cidr
        switch_cidrs = sorted(s.inputs["cidrBlock"] for s in _by_type(run, "alicloud:vpc/switch:Switch"))
        zones = len(config.zones)
        assert switch_cidrs == sorted([*network.vswitch_cidrs[:zones], *network.pod_vswitch_cidrs[:zones]])
        ack = _one(run, "alicloud:cs/managedKubernetes:ManagedKubernetes")
        assert ack.inputs["name"] == cluster.name
        assert ack.inputs["encryptionProviderKey"].endswith("-secrets-key-id")
        assert ack.inputs["tags"] == L.cluster_labels(cluster)
        assert ack.inputs["slbInternetEnabled"] is False
        # Terway with NetworkPolicy enforcement, pods on their own vSwitches; the planned Service range
        addons = {a["name"]: a.get("config") for a in ack.inputs["addons"]}
        assert addons["terway-eniip"] == '{"NetworkPolicy":"true"}' and "flannel" not in addons
        assert "podCidr" not in ack.inputs and len(ack.inputs["podVswitchIds"]) == zones
        assert ack.inputs["serviceCidr"] == network.service_cidr
        # resolved at plan time: the newest version ACK offers (the mocks offer ACK_VERSIONS)
        assert ack.inputs["version"] == ACK_VERSIONS[-1]
        key = _one(run, "alicloud:kms/key:Key")
        assert not (key.inputs["protectionLevel"] == "HSM" and key.inputs["automaticRotation"] == "Enabled")
        pool = _one(run, "alicloud:cs/nodePool:NodePool")
        assert pool.inputs["desiredSize"] == str(config.ack.node_count(cluster))
    else:
        assert alicloud == [] and not _by_type(run, "pulumi:providers:alicloud")

    # -- Kubernetes objects: parents, provider, names, schemas
    manifests = [
        r for r in regs.values() if r.type.startswith("kubernetes:") and not r.type.startswith(NOT_MANIFESTS)
    ]
    assert manifests
    for r in manifests:
        assert r.parent in owners, f"{r.name} has parent {r.parent}"
        assert r.provider.startswith(k8s_provider.urn), (
            f"{r.name} is not deployed through the member's provider"
        )
        doc = as_manifest(r.inputs)
        assert doc["metadata"].get("name"), f"{r.name} relies on auto-naming"
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)

    # -- namespaces, labels, quotas
    namespaces = {
        r.inputs["metadata"]["name"]: r.inputs["metadata"]["labels"]
        for r in _by_type(run, "kubernetes:core/v1:Namespace")
    }
    quotas = {r.inputs["metadata"]["namespace"] for r in _by_type(run, "kubernetes:core/v1:ResourceQuota")}
    tenants = config.tenant_refs()
    assert tenants[0].name == cluster.tenant
    for tenant in tenants:
        labels = namespaces[tenant.namespace]
        assert labels[L.TENANT] == tenant.name and labels[L.TIER] == tenant.tier.value
        assert labels[L.CLUSTER] == cluster.name and labels[L.REGION] == cluster.region
        if tenant.tier is Tier.province:
            assert labels[L.ADCODE] == tenant.adcode
        assert tenant.namespace in quotas
    for name in ("yiwang-system", "yiwang-monitoring", "spark-operator"):
        assert namespaces[name][L.TIER] == cluster.tier.value
        assert namespaces[name].get(L.ADCODE) == cluster.adcode
    # every namespace the platform creates is default-deny (the flows: test_platform_flows.py)
    policies = {
        (r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]): r.inputs["spec"]
        for r in _by_type(run, "kubernetes:networking.k8s.io/v1:NetworkPolicy")
    }
    for name in namespaces:
        assert policies[(name, "default-deny-all")] == {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
        }, name

    # -- Helm releases from charts/
    releases = {r.inputs["name"]: r for r in _by_type(run, "kubernetes:helm.sh/v3:Release")}
    expected_releases = {"yiwang-agent", "yiwang-monitoring", "spark-operator"}
    if cluster.tier is Tier.national:
        expected_releases.add("yiwang-controller")
    assert set(releases) == expected_releases
    # the Spark operator that runs the agent's SparkApplications: a pinned chart from the mirror,
    # watching every tenant namespace, with the service account the SparkApplications name
    spark = releases.pop("spark-operator")
    spark_settings = config.platform.spark_operator
    assert spark.parent in owners
    assert (spark.inputs["chart"], spark.inputs["version"]) == ("spark-operator", spark_settings.version)
    assert spark.inputs["repositoryOpts"] == {"repo": spark_settings.repository}
    assert spark.inputs["namespace"] == spark_settings.namespace
    assert spark.inputs["values"]["spark"]["jobNamespaces"] == [t.namespace for t in config.tenant_refs()]
    assert spark.inputs["values"]["spark"]["serviceAccount"]["name"] == KubeOptions().spark_service_account
    assert spark.inputs["values"]["image"]["registry"] == spark_settings.image_registry
    assert spark_settings.namespace in namespaces
    for release_name, release in releases.items():
        assert release.parent in owners
        assert Path(os.path.normpath(Path.cwd() / release.inputs["chart"])) == CHARTS_DIR / release_name
        chart_schema = json.loads(
            (CHARTS_DIR / release_name / "values.schema.json").read_text(encoding="utf-8")
        )
        jsonschema.validate(as_manifest(release.inputs["values"]), chart_schema)
    agent_values = releases["yiwang-agent"].inputs["values"]
    assert agent_values["cluster"] == {
        "name": cluster.name,
        "tier": cluster.tier.value,
        "capacity": {
            "cpu": cluster.capacity.cpu,
            "memoryGib": cluster.capacity.memory_gib,
            "gpu": cluster.capacity.gpu,
        },
    } | ({"adcode": cluster.adcode} if cluster.adcode else {})
    assert agent_values["controllerUrl"] == NATIONAL_OUTPUTS["controllerUrl"]
    assert agent_values["tenantNamespaces"] == [t.namespace for t in tenants]
    monitoring = releases["yiwang-monitoring"].inputs["values"]
    if cluster.tier is Tier.national:
        controller_values = releases["yiwang-controller"].inputs["values"]
        assert controller_values["mode"] == ("active" if stack == "primary" else "standby")
        # API replicas (YIWANG_ROLE=api) take the submissions at the primary site only
        assert controller_values["api"] == {"replicaCount": 2 if stack == "primary" else 0}
        assert controller_values["cluster"] == cluster.name
        assert controller_values["environment"] == "prod"
        # every policy file of the repository, topology and failover included
        policy_dir = REPO_ROOT / "policies"
        assert controller_values["policies"]["files"] == {
            p.name: p.read_text(encoding="utf-8") for p in policy_dir.glob("*.yaml")
        }
        assert monitoring["persistence"]["enabled"] is True
        federated = {t["cluster"] for t in monitoring["federation"]["targets"]}
        assert federated == {c.name for c in TOPOLOGY.clusters if c.tier is not Tier.national}
    else:
        assert "federation" not in monitoring

    # -- the national database: the replicated store by default (its own test below); RDS when chosen
    rds = _by_type(run, "alicloud:rds/instance:Instance")
    assert rds == [] and len(stores) == (1 if cluster.tier is Tier.national else 0)

    # -- registrations and agent tokens: national stacks only (member stacks hold no admin token)
    registrations = _by_type(run, "pulumi-python:dynamic/yiwang:ControllerRegistration")
    tokens = _by_type(run, "pulumi-python:dynamic/yiwang:AgentToken")
    if cluster.tier is Tier.national:
        expected = {cluster.name}
        if stack == "primary":
            expected |= {c.name for c in TOPOLOGY.clusters if c.tier is not Tier.national}
        assert {r.inputs["cluster"]["name"] for r in registrations} == expected
        assert {t.inputs["cluster"] for t in tokens} == expected
        for registration in registrations:
            raw_entry = next(
                c for c in RAW_TOPOLOGY["clusters"] if c["name"] == registration.inputs["cluster"]["name"]
            )
            assert as_manifest(registration.inputs["cluster"]) == raw_entry
            assert registration.inputs["url"] == NATIONAL_OUTPUTS["controllerUrl"]
            assert "token" in registration.secret_paths
        for token in tokens:
            assert "token" in token.secret_paths
        # the intranet endpoint (ack mode): LB Service, TLS certificate, private DNS record
        if config.mode is Mode.ack:
            (lb,) = [
                r
                for r in _by_type(run, "kubernetes:core/v1:Service")
                if r.inputs["spec"].get("type") == "LoadBalancer" and r.parent in endpoints
            ]  # (the national store publishes its own two: test_infra_national_store.py)
            annotations = lb.inputs["metadata"]["annotations"]
            assert (
                annotations["service.beta.kubernetes.io/alibaba-cloud-loadbalancer-address-type"]
                == "intranet"
            )
            assert (
                annotations["service.beta.kubernetes.io/alibaba-cloud-loadbalancer-protocol-port"]
                == "https:443"
            )
            cert = _one(run, "alicloud:slb/serverCertificate:ServerCertificate")
            assert {"serverCertificate", "privateKey"} <= cert.secret_paths
            record = _one(run, "alicloud:pvtz/zoneRecord:ZoneRecord")
            assert (record.inputs["rr"], record.inputs["type"], record.inputs["value"]) == (
                "controller",
                "A",
                LB_ADDRESS,
            )
            assert _one(run, "alicloud:pvtz/zone:Zone").inputs["zoneName"] == "yiwang.gov.internal"
    else:
        assert registrations == [] and tokens == []
    (token_secret,) = [
        r
        for r in _by_type(run, "kubernetes:core/v1:Secret")
        if r.inputs["metadata"]["name"] == "yiwang-agent-token"
    ]
    assert {"stringData", "stringData.token"} & token_secret.secret_paths
    if cluster.tier is not Tier.national:  # the token the national primary issued for this cluster
        assert token_secret.inputs["stringData"]["token"] == agent_token_of(cluster.name)
    else:
        assert token_secret.inputs["stringData"]["token"]

    # -- the policy pack passes on the whole graph
    providers = {
        r.urn: provider(r.type, r.inputs, r.name)
        for r in regs.values()
        if r.type.startswith("pulumi:providers:")
    }
    violations: dict[str, Any] = {}
    for r in regs.values():
        provider_urn = r.provider.split("::")[0:4]
        found = check_resource(
            resource_args(r.type, r.inputs, r.name, providers.get("::".join(provider_urn)), urn=r.urn)
        )
        if found:
            violations[r.name] = found
    stack_found = check_stack([policy_resource(r.type, r.inputs, r.name) for r in regs.values()])
    assert not violations and not stack_found, (violations, stack_found)


@pytest.mark.parametrize(("project", "stack"), ALL_STACKS, ids=[f"{p}/{s}" for p, s in ALL_STACKS])
@pulumi.runtime.test
def test_stack_builds_a_compliant_graph(project: str, stack: str) -> Any:
    run = StackRun(project, stack)
    outputs = run.run()

    def check(_: Any) -> None:
        check_stack_graph(run, project, stack)

    def secret(name: str) -> pulumi.Output[bool]:
        return pulumi.Output.from_input(outputs[name].is_secret())

    secrets = [secret("kubeconfig")] + ([secret("databaseUrl")] if "databaseUrl" in outputs else [])

    def check_all(values: list[Any]) -> None:
        assert all(values[1:]), "a secret output is in plain text"
        check(values[0])

    return pulumi.Output.all(run.settled(), *secrets).apply(check_all)
