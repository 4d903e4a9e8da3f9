"""ControllerDeployment: the federation controller on a national cluster, and its PostgreSQL.

Active at ``national-primary``, standby at ``national-backup``, both on one PostgreSQL database
(the leader lease and fencing epoch live there). In ACK mode the primary stack creates an RDS
PostgreSQL instance inside the cluster's VPC, disk-encrypted with the cluster's KMS key; otherwise
the database URL comes from the ``databaseUrl`` secret, and the standby falls back to the primary
stack's ``databaseUrl`` output.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import pulumi
import pulumi_alicloud as alicloud
import pulumi_kubernetes as k8s

from infra.yiwang_infra import labels as L
from infra.yiwang_infra.charts import CONTROLLER_CHART, chart_path, policy_files
from infra.yiwang_infra.config import StackConfig
from infra.yiwang_infra.member_cluster import MemberCluster
from infra.yiwang_infra.platform import PLATFORM_PRIORITY

TYPE = "yiwang:infra:ControllerDeployment"
DATABASE_NAME = "yiwang"
DATABASE_USER = "yiwang"
DATABASE_SECRET = "yiwang-controller-database"
ADMIN_TOKEN_SECRET = "yiwang-controller-admin-token"


class ControllerDatabase(pulumi.ComponentResource):
    """An RDS PostgreSQL instance, database and owner account; ``url`` is a secret."""

    url: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        config: StackConfig,
        cluster: MemberCluster,
        password: pulumi.Input[str],
        client_cidrs: list[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("yiwang:infra:ControllerDatabase", name, {"clusterName": config.cluster.name}, opts)
        settings = config.controller
        assert settings is not None  # checked by StackConfig for national stacks
        if cluster.alicloud_provider is None or cluster.vpc_id is None:
            raise ValueError("an RDS database needs an ACK member cluster")
        child = pulumi.ResourceOptions(parent=self, provider=cluster.alicloud_provider)
        tags = L.cluster_labels(config.cluster)
        zones = cluster.zone_ids
        assert zones is not None and cluster.vpc_cidr is not None  # an ACK member cluster
        # BYOK: RDS reads the KMS key through this service-linked role of the account
        identity = alicloud.get_caller_identity_output(
            opts=pulumi.InvokeOutputOptions(provider=cluster.alicloud_provider)
        )
        role_arn = identity.account_id.apply(
            lambda account: f"acs:ram::{account}:role/aliyunrdsinstanceencryptiondefaultrole"
        )
        instance = alicloud.rds.Instance(
            f"{name}-pg",
            engine="PostgreSQL",
            engine_version=settings.rds_engine_version,
            instance_type=settings.rds_instance_type,
            instance_storage=settings.rds_storage_gib,
            db_instance_storage_type="cloud_essd",
            category="HighAvailability",
            instance_charge_type="Postpaid",
            instance_name=f"{config.cluster.name}-controller",
            # primary and secondary zone, one vSwitch in each (comma-separated for multi-zone RDS)
            vswitch_id=pulumi.Output.all(*cluster.vswitch_ids[:2]).apply(lambda ids: ",".join(ids)),
            zone_id=zones.apply(lambda z: z[0]),
            zone_id_slave_a=zones.apply(lambda z: z[1] if len(z) > 1 else z[0]),
            # both national sites' controllers: this VPC and the standby's (national-backup) range
            security_ips=[cluster.vpc_cidr, *client_cidrs],
            encryption_key=cluster.kms_key_id,
            role_arn=role_arn,
            ssl_action="Open",
            deletion_protection=True,
            tags=tags,
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(protect=True)),
        )
        database = alicloud.rds.Database(
            f"{name}-db",
            instance_id=instance.id,
            data_base_name=DATABASE_NAME,
            character_set="UTF8",
            opts=child,
        )
        account = alicloud.rds.RdsAccount(
            f"{name}-account",
            db_instance_id=instance.id,
            account_name=DATABASE_USER,
            account_password=password,
            account_type="Normal",
            opts=child,
        )
        alicloud.rds.AccountPrivilege(
            f"{name}-owner",
            instance_id=instance.id,
            account_name=account.account_name,
            privilege="DBOwner",
            db_names=[database.data_base_name],
            opts=child,
        )
        self.url = pulumi.Output.secret(
            pulumi.Output.all(password, instance.connection_string, instance.port).apply(
                lambda a: (
                    f"postgresql+psycopg://{DATABASE_USER}:{quote(str(a[0]), safe='')}@{a[1]}:{a[2]}/"
                    f"{DATABASE_NAME}?sslmode=require"
                )
            )
        )
        self.register_outputs({"url": self.url})


class ControllerDeployment(pulumi.ComponentResource):
    """The controller Helm release (``mode: active|standby``) with its database and admin secrets."""

    def __init__(
        self,
        name: str,
        config: StackConfig,
        namespace: pulumi.Input[str],
        database_url: pulumi.Input[str],
        admin_token: pulumi.Input[str],
        database_cidrs: list[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``database_cidrs``: where the database is (the controller's only egress besides DNS);
        empty when unknown (a given databaseUrl): the database port to any address."""
        settings = config.controller
        if settings is None:
            raise ValueError("ControllerDeployment runs on national stacks only")
        super().__init__(TYPE, name, {"clusterName": config.cluster.name, "mode": settings.role.value}, opts)
        meta_labels = {L.PART_OF: "yiwang", L.MANAGED_BY: L.MANAGER, "yiwang.gov.cn/component": "controller"}
        db_secret = k8s.core.v1.Secret(
            f"{name}-database",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=DATABASE_SECRET, namespace=namespace, labels=meta_labels
            ),
            type="Opaque",
            string_data={"url": pulumi.Output.secret(database_url)},
            opts=pulumi.ResourceOptions(parent=self),
        )
        token_secret = k8s.core.v1.Secret(
            f"{name}-admin-token",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=ADMIN_TOKEN_SECRET, namespace=namespace, labels=meta_labels
            ),
            type="Opaque",
            string_data={"token": pulumi.Output.secret(admin_token)},
            opts=pulumi.ResourceOptions(parent=self),
        )
        # values follow charts/yiwang-controller/values.schema.json (its Service is ClusterIP only)
        values: dict[str, Any] = {
            "mode": settings.role.value,
            "replicaCount": settings.replicas,
            "api": {"replicaCount": settings.api_replicas},
            "cluster": config.cluster.name,
            "database": {"existingSecret": DATABASE_SECRET, "existingSecretKey": "url"},
            "auth": {"existingSecret": ADMIN_TOKEN_SECRET, "existingSecretKey": "token"},
            "priorityClassName": PLATFORM_PRIORITY,
            # the production guard rails: no open auth, no shared agent token, no SQLite
            "environment": "prod",
            # the repository's policies, every file (the controller exits without topology/failover)
            "policies": {"files": policy_files()},
            # the API port stays open to the government network (agents, operators, the intranet
            # load balancer's health checks); out: DNS and the database only
            "networkPolicy": {"enabled": True, "allowExternalEgress": False, "databaseCidrs": database_cidrs},
            **settings.chart_values,
        }
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name="yiwang-controller",
            chart=chart_path(CONTROLLER_CHART),
            namespace=namespace,
            values=values,
            atomic=True,
            timeout=900,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[db_secret, token_secret]),
        )
        self.register_outputs({"mode": settings.role.value, "release": self.release.status.name})


LB_ANNOTATION = "service.beta.kubernetes.io/alibaba-cloud-loadbalancer"
ENDPOINT_SERVICE = "yiwang-controller-intranet"


def split_host(url: str) -> tuple[str, str]:
    """(record, zone) of the controller URL's host: controller.yiwang.gov.internal ->
    ("controller", "yiwang.gov.internal")."""
    host = urlsplit(url).hostname or ""
    record, _, zone = host.partition(".")
    if not record or "." not in zone:
        raise ValueError(f"controller url {url!r} needs a host name <record>.<private zone>")
    return record, zone


class ControllerEndpoint(pulumi.ComponentResource):
    """The controller's address inside the government network (ack mode): an intranet Server Load
    Balancer (a LoadBalancer Service annotated ``address-type: intranet``) terminating TLS with the
    given certificate on 443 in front of the controller pods' port 8080, and a PrivateZone record
    ``<record>.<zone>`` -> the load balancer's address, the zone attached to the cluster's VPC.
    ``ready`` resolves once the record exists; registrations depend on it (and wait for /readyz)."""

    record: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        config: StackConfig,
        cluster: MemberCluster,
        namespace: pulumi.Input[str],
        release: k8s.helm.v3.Release,
        tls_cert: pulumi.Input[str],
        tls_key: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        settings = config.controller
        if settings is None or cluster.alicloud_provider is None or cluster.vpc_id is None:
            raise ValueError("ControllerEndpoint needs a national ACK cluster")
        super().__init__("yiwang:infra:ControllerEndpoint", name, {"url": settings.url}, opts)
        record, zone = split_host(settings.url)
        cloud = pulumi.ResourceOptions(parent=self, provider=cluster.alicloud_provider)
        tags = L.cluster_labels(config.cluster)
        certificate = alicloud.slb.ServerCertificate(
            f"{name}-cert",
            name=f"{config.cluster.name}-controller",
            server_certificate=pulumi.Output.secret(tls_cert),
            private_key=pulumi.Output.secret(tls_key),
            tags=tags,
            opts=cloud,
        )
        service = k8s.core.v1.Service(
            f"{name}-lb",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=ENDPOINT_SERVICE,
                namespace=namespace,
                labels={
                    L.PART_OF: "yiwang",
                    L.MANAGED_BY: L.MANAGER,
                    "yiwang.gov.cn/component": "controller",
                },
                annotations={
                    f"{LB_ANNOTATION}-address-type": "intranet",
                    f"{LB_ANNOTATION}-vswitch-id": cluster.vswitch_ids[0],
                    f"{LB_ANNOTATION}-protocol-port": "https:443",
                    f"{LB_ANNOTATION}-cert-id": certificate.id,
                    f"{LB_ANNOTATION}-health-check-type": "http",
                    f"{LB_ANNOTATION}-health-check-uri": "/readyz",
                    f"{LB_ANNOTATION}-health-check-flag": "on",
                },
            ),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="LoadBalancer",
                external_traffic_policy="Local",
                selector={
                    "app.kubernetes.io/instance": "yiwang-controller",
                    "app.kubernetes.io/part-of": "yiwang",
                    "app.kubernetes.io/component": "controller",
                },
                ports=[
                    k8s.core.v1.ServicePortArgs(name="https", port=443, target_port="http", protocol="TCP")
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[release]),
        )
        address = service.status.apply(_lb_address)
        private_zone = alicloud.pvtz.Zone(f"{name}-zone", zone_name=zone, tags=tags, opts=cloud)
        alicloud.pvtz.ZoneAttachment(
            f"{name}-zone-vpc", zone_id=private_zone.id, vpc_ids=[cluster.vpc_id], opts=cloud
        )
        dns = alicloud.pvtz.ZoneRecord(
            f"{name}-record",
            zone_id=private_zone.id,
            rr=record,
            type="A",
            value=address.apply(_require_address),
            ttl=60,
            opts=cloud,
        )
        self.record = dns.id
        self.register_outputs({"record": dns.id, "address": address})


def _lb_address(status: Any) -> str | None:
    ingress = list((status.load_balancer.ingress or []) if status and status.load_balancer else [])
    return str(ingress[0].ip) if ingress and ingress[0].ip else None


def _require_address(ip: str | None) -> str:
    if not ip:
        raise ValueError("the controller's intranet load balancer has no address yet")
    return ip
