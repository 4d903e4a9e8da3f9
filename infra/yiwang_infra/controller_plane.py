"""ControllerDeployment: the federation controller on a national cluster, and its PostgreSQL.

Active at ``national-primary``, standby at ``national-backup``, both on one PostgreSQL database
(the leader lease and fencing epoch live there). In ACK mode the primary stack creates an RDS
PostgreSQL instance inside the cluster's VPC, disk-encrypted with the cluster's KMS key; otherwise
the database URL comes from the ``databaseUrl`` secret, and the standby falls back to the primary
stack's ``databaseUrl`` output.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pulumi
import pulumi_alicloud as alicloud
import pulumi_kubernetes as k8s

from infra.yiwang_infra import labels as L
from infra.yiwang_infra.charts import CONTROLLER_CHART, chart_path
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
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("yiwang:infra:ControllerDatabase", name, {"clusterName": config.cluster.name}, opts)
        settings = config.controller
        assert settings is not None  # checked by StackConfig for national stacks
        if cluster.alicloud_provider is None or cluster.vpc_id is None:
            raise ValueError("an RDS database needs an ACK member cluster")
        child = pulumi.ResourceOptions(parent=self, provider=cluster.alicloud_provider)
        tags = L.cluster_labels(config.cluster)
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
            vswitch_id=cluster.vswitch_ids[0],
            zone_id=config.zones[0],
            security_ips=[config.ack.vpc_cidr],
            encryption_key=cluster.kms_key_id,
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
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
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
