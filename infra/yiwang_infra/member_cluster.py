"""MemberCluster: the Kubernetes cluster of one federation member.

``mode: ack`` creates it on Alibaba Cloud: a KMS key, a VPC with one vSwitch per zone, an ACK Pro
managed cluster with Secret encryption at rest under that key (no public API endpoint), and a
node pool sized from the topology's capacity with encrypted disks. ``mode: existing`` adopts an
on-premises government-cloud cluster from a kubeconfig secret. Either way the component exposes a
``kubernetes.Provider`` for everything installed inside the cluster.
"""

from __future__ import annotations

import pulumi
import pulumi_alicloud as alicloud
import pulumi_kubernetes as k8s

from infra.yiwang_infra.config import Mode, StackConfig
from infra.yiwang_infra.labels import cluster_labels

TYPE = "yiwang:infra:MemberCluster"


class MemberCluster(pulumi.ComponentResource):
    """A member cluster; ``provider`` deploys into it, ``kubeconfig`` is a secret output."""

    provider: k8s.Provider
    kubeconfig: pulumi.Output[str]
    vpc_id: pulumi.Output[str] | None
    vswitch_ids: list[pulumi.Output[str]]
    cluster_id: pulumi.Output[str] | None
    kms_key_id: pulumi.Output[str] | None
    alicloud_provider: alicloud.Provider | None

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
        key = alicloud.kms.Key(
            f"{name}-secrets-key",
            description=f"Encryption at rest of Kubernetes Secrets in {cluster.name}",
            key_usage="ENCRYPT/DECRYPT",
            key_spec="Aliyun_AES_256",
            protection_level="HSM",
            pending_window_in_days=30,
            automatic_rotation="Enabled",
            rotation_interval="365d",
            tags=labels,
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(protect=ack.deletion_protection)),
        )
        self.kms_key_id = key.id
        vpc = alicloud.vpc.Network(
            f"{name}-vpc", vpc_name=cluster.name, cidr_block=ack.vpc_cidr, tags=labels, opts=child
        )
        zones = config.zones
        switches = [
            alicloud.vpc.Switch(
                f"{name}-vsw-{zone}",
                vswitch_name=f"{cluster.name}-{zone}",
                vpc_id=vpc.id,
                zone_id=zone,
                cidr_block=cidr,
                tags=labels,
                opts=child,
            )
            for zone, cidr in zip(zones, ack.vswitch_cidrs, strict=False)
        ]
        self.vpc_id = vpc.id
        self.vswitch_ids = [s.id for s in switches]
        managed = alicloud.cs.ManagedKubernetes(
            f"{name}-ack",
            name=cluster.name,
            cluster_spec=ack.cluster_spec,
            version=ack.kubernetes_version,
            vswitch_ids=self.vswitch_ids,
            pod_cidr=ack.pod_cidr,
            service_cidr=ack.service_cidr,
            node_cidr_mask=24,
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
