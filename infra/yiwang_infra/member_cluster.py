"""MemberCluster: the Kubernetes cluster of one federation member.

``mode: ack`` creates it on Alibaba Cloud: a KMS key, a VPC with one node vSwitch and one Terway pod
vSwitch per zone (address ranges from the stack's generated ``network`` plan), an ACK Pro managed
cluster with Terway and NetworkPolicy enforcement and Secret encryption at rest under that key (no
public API endpoint), and a node pool sized from the topology's capacity with encrypted disks.
The ACK version and the zones are checked at plan time against what the region offers
(``cs.get_kubernetes_version``, ``get_zones``), with an error that lists what is on offer. ``mode: existing`` adopts an
on-premises government-cloud cluster from a kubeconfig secret. Either way the component exposes a
``kubernetes.Provider`` for everything installed inside the cluster.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import pulumi
import pulumi_alicloud as alicloud
import pulumi_kubernetes as k8s

from infra.yiwang_infra.config import AddressBlock, Mode, StackConfig
from infra.yiwang_infra.labels import cluster_labels

TYPE = "yiwang:infra:MemberCluster"
# ACK add-ons: Terway in ENI multi-IP mode with NetworkPolicy enforcement (Flannel enforces none)
TERWAY_ADDONS = (
    ("terway-eniip", '{"NetworkPolicy":"true"}'),
    ("csi-plugin", ""),
    ("csi-provisioner", ""),
)


class CloudInputError(ValueError):
    """A cloud input (ACK version, zone) that the region does not offer; raised at plan time."""


def _version_key(version: str) -> tuple[int, ...]:
    head = version.split("-", 1)[0]
    return tuple(int(p) for p in head.split(".") if p.isdigit())


def choose_kubernetes_version(offered: list[str], wanted: str | None, where: str) -> str:
    """The wanted version if ACK offers it, else (wanted empty) the newest offered one."""
    if not offered:
        raise CloudInputError(f"{where}: ACK offers no Kubernetes version for managed clusters")
    if wanted is None:
        return max(offered, key=_version_key)
    if wanted not in offered:
        raise CloudInputError(
            f"{where}: ACK no longer creates Kubernetes {wanted}; offered: {sorted(offered, key=_version_key)} "
            "(set ack.kubernetesVersion to one of them, or leave it empty for the newest)"
        )
    return wanted


def check_zones(available: list[str], wanted: list[str], where: str) -> list[str]:
    missing = [z for z in wanted if z not in available]
    if missing:
        raise CloudInputError(
            f"{where}: zones {missing} cannot create vSwitches; available: {sorted(available)} "
            "(set ack.zones)"
        )
    return wanted


def ack_api_server(connections: Sequence[Any] | None, service_cidr: str, where: str) -> list[AddressBlock]:
    """Where pods reach an ACK cluster's API server: its intranet endpoint (``https://IP:6443``,
    what the ``kubernetes`` Service's endpoints hold, the address NetworkPolicies see after the
    Service translation) and the ``kubernetes`` Service address itself (the first of the Service
    range, port 443) for policy engines that judge before it."""
    intranet = next((c.api_server_intranet for c in connections or [] if c.api_server_intranet), None)
    if not intranet:
        raise CloudInputError(f"{where}: ACK reported no intranet API server endpoint")
    url = urlsplit(intranet)
    if not url.hostname:
        raise CloudInputError(f"{where}: cannot read the API server endpoint {intranet!r}")
    address = ipaddress.ip_address(url.hostname)  # ACK reports an address, never a name
    service_ip = next(ipaddress.ip_network(service_cidr).hosts())
    return [
        AddressBlock(cidr=f"{address}/{address.max_prefixlen}", ports=[url.port or 443]),
        AddressBlock(cidr=f"{service_ip}/32", ports=[443]),
    ]


class MemberCluster(pulumi.ComponentResource):
    """A member cluster; ``provider`` deploys into it, ``kubeconfig`` is a secret output."""

    provider: k8s.Provider
    kubeconfig: pulumi.Output[str]
    vpc_id: pulumi.Output[str] | None
    vswitch_ids: list[pulumi.Output[str]]
    cluster_id: pulumi.Output[str] | None
    kms_key_id: pulumi.Output[str] | None
    alicloud_provider: alicloud.Provider | None
    vpc_cidr: str | None
    zone_ids: pulumi.Output[list[str]] | None
    # ack mode: where pods reach the API server (NetworkPolicy egress); None in existing mode
    api_server: pulumi.Output[list[AddressBlock]] | None

    def __init__(
        self,
        name: str,
        config: StackConfig,
        kubeconfig: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        cluster = config.cluster
        labels = cluster_labels(cluster)
        props = {
            "clusterName": cluster.name,
            "tier": cluster.tier.value,
            "tenant": cluster.tenant,
            "region": config.region,
            "adcode": cluster.adcode,
            "mode": config.mode.value,
            "alicloudRegion": config.alicloud.region_id if config.mode is Mode.ack else None,
            "labels": labels,
        }
        super().__init__(TYPE, name, props, opts)
        self.vpc_id = None
        self.vswitch_ids = []
        self.cluster_id = None
        self.kms_key_id = None
        self.alicloud_provider = None
        self.vpc_cidr = None
        self.zone_ids = None
        self.api_server = None
        if config.mode is Mode.ack:
            self.kubeconfig = self._create_ack(name, config, labels)
        else:
            if kubeconfig is None:
                raise ValueError(f"{cluster.name}: mode existing needs the kubeconfig secret")
            self.kubeconfig = pulumi.Output.secret(kubeconfig)
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs(
            {
                "clusterName": cluster.name,
                "clusterId": self.cluster_id,
                "vpcId": self.vpc_id,
                "kubeconfig": self.kubeconfig,
            }
        )

    def _create_ack(self, name: str, config: StackConfig, labels: dict[str, str]) -> pulumi.Output[str]:
        cluster, ack = config.cluster, config.ack
        self.alicloud_provider = alicloud.Provider(
            f"{name}-alicloud",
            region=config.alicloud.region_id,
            opts=pulumi.ResourceOptions(parent=self),
        )
        child = pulumi.ResourceOptions(parent=self, provider=self.alicloud_provider)
        rotation = ack.kms_protection_level == "SOFTWARE"  # KMS rotates software keys only
        key = alicloud.kms.Key(
            f"{name}-secrets-key",
            description=f"Encryption at rest of Kubernetes Secrets in {cluster.name}",
            key_usage="ENCRYPT/DECRYPT",
            key_spec="Aliyun_AES_256",
            protection_level=ack.kms_protection_level,
            pending_window_in_days=30,
            automatic_rotation="Enabled" if rotation else "Disabled",
            rotation_interval="365d" if rotation else None,
            tags=labels,
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(protect=ack.deletion_protection)),
        )
        self.kms_key_id = key.id
        network = config.network
        assert network is not None  # StackConfig requires it in ack mode
        where = f"{cluster.name} ({config.alicloud.region_id})"
        invoke = pulumi.InvokeOutputOptions(provider=self.alicloud_provider)
        zones_offered = alicloud.get_zones_output(available_resource_creation="VSwitch", opts=invoke)
        wanted_zones = config.zones[: len(network.vswitch_cidrs)]
        zones = zones_offered.ids.apply(lambda ids: check_zones(list(ids or []), wanted_zones, where))
        versions = alicloud.cs.get_kubernetes_version_output(
            cluster_type="ManagedKubernetes", profile="Default", opts=invoke
        )
        version = versions.metadatas.apply(
            lambda ms: choose_kubernetes_version([m.version for m in ms or []], ack.kubernetes_version, where)
        )
        vpc = alicloud.vpc.Network(
            f"{name}-vpc", vpc_name=cluster.name, cidr_block=network.vpc_cidr, tags=labels, opts=child
        )

        def switch(kind: str, index: int, cidr: str) -> alicloud.vpc.Switch:
            zone = wanted_zones[index]
            return alicloud.vpc.Switch(
                f"{name}-{kind}-{zone}",
                vswitch_name=f"{cluster.name}-{kind}-{zone}",
                vpc_id=vpc.id,
                zone_id=zones.apply(lambda zs: zs[index]),
                cidr_block=cidr,
                tags=labels,
                opts=child,
            )

        switches = [switch("vsw", i, c) for i, c in enumerate(network.vswitch_cidrs[: len(wanted_zones)])]
        pod_switches = [
            switch("pods", i, c) for i, c in enumerate(network.pod_vswitch_cidrs[: len(wanted_zones)])
        ]
        self.vpc_id = vpc.id
        self.vpc_cidr = network.vpc_cidr
        self.vswitch_ids = [s.id for s in switches]
        self.zone_ids = zones
        managed = alicloud.cs.ManagedKubernetes(
            f"{name}-ack",
            name=cluster.name,
            cluster_spec=ack.cluster_spec,
            version=version,
            vswitch_ids=self.vswitch_ids,
            pod_vswitch_ids=[s.id for s in pod_switches],
            service_cidr=network.service_cidr,
            addons=[
                alicloud.cs.ManagedKubernetesAddonArgs(name=addon, config=addon_config or None)
                for addon, addon_config in TERWAY_ADDONS
            ],
            proxy_mode="ipvs",
            new_nat_gateway=True,
            slb_internet_enabled=False,  # the API server is reachable from the government network only
            encryption_provider_key=key.id,
            enable_rrsa=True,
            deletion_protection=ack.deletion_protection,
            is_enterprise_security_group=True,
            timezone="Asia/Shanghai",
            tags=labels,
            opts=child,
        )
        self.cluster_id = managed.id
        self.api_server = managed.connections.apply(
            lambda connections: ack_api_server(connections, network.service_cidr, where)
        )
        node_pool = alicloud.cs.NodePool(
            f"{name}-workers",
            cluster_id=managed.id,
            node_pool_name=f"{cluster.name}-workers",
            vswitch_ids=self.vswitch_ids,
            instance_types=ack.instance_types,
            desired_size=str(ack.node_count(cluster)),  # a string in pulumi-alicloud 4
            system_disk_category="cloud_essd",
            system_disk_size=ack.system_disk_gib,
            system_disk_encrypted=True,
            system_disk_kms_key=key.id,
            labels=[alicloud.cs.NodePoolLabelArgs(key=k, value=v) for k, v in sorted(labels.items())],
            tags=labels,
            opts=child,
        )
        credential = alicloud.cs.get_cluster_credential_output(
            cluster_id=managed.id,
            opts=pulumi.InvokeOutputOptions(provider=self.alicloud_provider, depends_on=[node_pool]),
        )
        return pulumi.Output.secret(credential.kube_config)
