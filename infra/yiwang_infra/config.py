"""Typed stack configuration: every ``pulumi config`` key parsed into pydantic models.

Plain keys are read with ``pulumi.Config`` and validated here, so a wrong stack file fails before
any resource is planned, with the key that is wrong. Secrets (tokens, kubeconfig, database URL)
stay ``pulumi.Output`` values and never enter these models.
"""

from __future__ import annotations

import ipaddress
import math
from enum import StrEnum
from typing import Annotated, Any, Literal

import pulumi
from pydantic import Field, ValidationError, field_validator, model_validator

from controller.topology.model import CLUSTER_NAME, Cluster, Tier
from infra.yiwang_infra.config_base import Camel
from infra.yiwang_infra.network_plan import NetworkPlan
from infra.yiwang_infra.regions import AlicloudRegion, alicloud_regions, find_alicloud_region


class Mode(StrEnum):
    ack = "ack"  # a new Alibaba Cloud ACK managed cluster
    existing = "existing"  # an existing (on-premises government cloud) cluster, given by kubeconfig


class ControllerRole(StrEnum):
    active = "active"
    standby = "standby"


class AckSettings(Camel):
    """Sizing and network of a new ACK cluster (``mode: ack``)."""

    # empty: the newest version ACK offers for managed clusters, asked at plan time
    # (cs.get_kubernetes_version); set: must be one ACK offers, or the preview fails naming them
    kubernetes_version: str | None = None
    cluster_spec: str = "ack.pro.small"
    instance_types: Annotated[list[str], Field(min_length=1)] = ["ecs.g7.8xlarge"]
    cores_per_node: Annotated[int, Field(gt=0)] = 32
    max_nodes: Annotated[int, Field(gt=0, le=5000)] = 1000
    node_fraction: Annotated[float, Field(gt=0, le=1)] = 1.0
    zones: list[str] | None = None
    # Terway (pods on VPC addresses from their own vSwitches) with NetworkPolicy enforcement;
    # Flannel would leave every NetworkPolicy of the platform unenforced.
    network_plugin: Literal["terway-eniip"] = "terway-eniip"
    system_disk_gib: Annotated[int, Field(ge=40)] = 120
    # KMS key of Secret encryption: SOFTWARE keys rotate automatically (yearly); HSM keys cannot be
    # rotated automatically by KMS (rotate them by hand, docs/infra.md)
    kms_protection_level: Literal["SOFTWARE", "HSM"] = "SOFTWARE"
    deletion_protection: bool = True

    def node_count(self, cluster: Cluster) -> int:
        """Nodes for the topology's capacity, at least 2, at most ``max_nodes``."""
        wanted = math.ceil(cluster.capacity.cpu * self.node_fraction / self.cores_per_node)
        return max(2, min(self.max_nodes, wanted))


class TenantRef(Camel):
    """A tenant that gets a namespace on this cluster (its own, ``national``, failover guests)."""

    name: Annotated[str, Field(pattern=CLUSTER_NAME)]
    tier: Tier
    adcode: Annotated[str | None, Field(pattern=r"^\d{6}$")] = None
    share: Annotated[float, Field(gt=0, le=1)] | None = None

    @property
    def namespace(self) -> str:
        return f"tenant-{self.name}"


class AddressBlock(Camel):
    """An address range and the TCP ports open on it (a NetworkPolicy ipBlock rule)."""

    cidr: str
    ports: Annotated[list[Annotated[int, Field(ge=1, le=65535)]], Field(min_length=1)]

    @field_validator("cidr")
    @classmethod
    def _network(cls, value: str) -> str:
        return str(ipaddress.ip_network(value, strict=True))


class SparkOperatorSettings(Camel):
    """The Spark operator (kubeflow/spark-operator) that runs the agent's SparkApplications.

    Installed as a Helm release from ``repository`` (a chart repository URL: the government
    mirror of https://kubeflow.github.io/spark-operator), pinned to ``version``; its images come
    from ``imageRegistry`` (a mirror of ghcr.io)."""

    enabled: bool = True
    repository: str = "https://charts.yiwang.gov.cn/kubeflow"
    chart: str = "spark-operator"
    version: str = "2.5.2"
    namespace: str = "spark-operator"
    image_registry: str = "registry.yiwang.gov.cn/ghcr"
    values: dict[str, Any] = {}


class PlatformSettings(Camel):
    """What ClusterPlatform installs inside the cluster."""

    owner_share: Annotated[float, Field(gt=0, le=1)] = 0.7
    guest_share: Annotated[float, Field(gt=0, le=1)] = 0.25
    max_pods_per_tenant: Annotated[int, Field(gt=0)] = 5000
    system_namespace: str = "yiwang-system"
    monitoring_namespace: str = "yiwang-monitoring"
    agent_chart_values: dict[str, Any] = {}
    monitoring_chart_values: dict[str, Any] = {}
    # Where pods reach the Kubernetes API server (NetworkPolicy egress of the agent, the Spark
    # operator and Spark drivers). Empty: in ack mode the cluster's intranet endpoint (IP:6443)
    # and the `kubernetes` Service address (:443); in existing mode the site's reserved address
    # block on 443 and 6443 (set this to the API server's real addresses).
    api_server: list[AddressBlock] = []
    # Where Alertmanager sends notifications (webhook, mail relay): its only egress besides DNS.
    alert_receivers: list[AddressBlock] = []
    # Who may query this cluster's Prometheus on its port (Grafana, operators' networks), besides
    # the national sites' federation pull on members.
    prometheus_readers: list[AddressBlock] = []
    spark_operator: SparkOperatorSettings = SparkOperatorSettings()


class StoreKind(StrEnum):
    # Patroni + PostgreSQL on both national clusters, etcd on them and a witness, synchronous
    # replication: the design the national drills measure (docs/national.md). RPO 0.
    patroni = "patroni"
    # One RDS PostgreSQL High-availability instance at the primary site (two zones of one region);
    # the backup site's controller reads it across regions. Losing the Beijing region loses the
    # store (a cross-region RDS disaster-recovery instance replicates asynchronously: RPO of
    # seconds, manual switch-over; docs/infra.md).
    rds = "rds"


class StoreBackupSettings(Camel):
    """WAL archive and base backups of the national store (WAL-G) to object storage of the
    site's own region: an OSS bucket created by the stack in ack mode, or the S3-compatible object
    storage of the government cloud named here (``endpoint``, ``bucket``) in existing mode."""

    endpoint: str | None = None
    bucket: str | None = None
    retention_days: Annotated[int, Field(ge=1, le=3650)] = 35
    # a base backup at least this often, taken by the primary's site (``base_backup.py``); the
    # full backups kept cover retention_days
    every_hours: Annotated[int, Field(ge=1, le=24 * 31)] = 24
    # Disaster recovery (docs/national.md, "Restoring the national store from its backups"): the
    # cluster is made from this site's newest base backup and archived WAL instead of initdb
    # (``restore_backup.py``). Patroni runs it only where etcd knows no cluster yet; set it on the
    # site whose bucket holds the newest archive, then back to false once the store is up.
    restore: bool = False

    @property
    def keep_full(self) -> int:
        """How many full base backups WAL-G keeps (the WAL they need with them)."""
        return max(1, self.retention_days * 24 // self.every_hours)


class NationalStoreSettings(Camel):
    """National stacks only: the replicated national store (``kind: patroni``). Addresses are the
    names each site publishes on the government network (its intranet load balancers)."""

    kind: StoreKind = StoreKind.patroni
    # PostgreSQL (5432), Patroni REST (8008) and etcd client (2379) / peer (2380) addresses per site
    postgres: dict[Literal["beijing", "guian"], str] = {
        "beijing": "pg.beijing.yiwang.gov.internal:5432",
        "guian": "pg.guian.yiwang.gov.internal:5432",
    }
    etcd: dict[Literal["beijing", "guian", "witness"], str] = {
        "beijing": "etcd.beijing.yiwang.gov.internal",
        "guian": "etcd.guian.yiwang.gov.internal",
        "witness": "etcd.witness.yiwang.gov.internal",
    }
    # the witness site's address range (its etcd member talks to both national sites)
    witness_cidr: str = "10.250.0.0/24"
    image: str = "registry.yiwang.gov.cn/mirror/patroni:4.1.5-pg15"
    etcd_image: str = "registry.yiwang.gov.cn/mirror/etcd:v3.5.17"
    bin_dir: str = "/usr/lib/postgresql/15/bin"
    storage_gib: Annotated[int, Field(ge=20)] = 500
    storage_class: str | None = None
    max_connections: Annotated[int, Field(ge=50, le=5000)] = 400
    backup: StoreBackupSettings = StoreBackupSettings()


class ControllerSettings(Camel):
    """National stacks only: the controller deployment and its database."""

    role: ControllerRole
    url: str = "https://controller.yiwang.gov.internal"
    replicas: Annotated[int, Field(ge=1, le=9)] = 2
    # API replicas (YIWANG_ROLE=api) in front of the scheduling leader: they take submissions and
    # heartbeats and follow the database; the chart's api.replicaCount.
    api_replicas: Annotated[int, Field(ge=0, le=32)] = 0
    chart_values: dict[str, Any] = {}
    rds_instance_type: str = "pg.x8.large.2c"
    rds_storage_gib: Annotated[int, Field(ge=20)] = 500
    rds_engine_version: str = "15.0"
    primary_stack: str = "organization/yiwang-national/primary"
    store: NationalStoreSettings = NationalStoreSettings()


class FederationSettings(Camel):
    """National stacks only: the national Prometheus and the provincial ones it federates."""

    remote_write_url: str = "https://prometheus.yiwang.gov.internal/api/v1/write"
    federate_url: str = "https://prometheus.yiwang.gov.internal/federate"
    member_address_template: str = "prometheus-{cluster}.yiwang.gov.internal:443"
    members: list[str] = []


class StackConfig(Camel):
    """One stack: the topology entry of its cluster plus the settings that differ from defaults."""

    cluster: Cluster
    region: str
    mode: Mode = Mode.ack
    alicloud_region: str | None = None
    ack: AckSettings = AckSettings()
    # generated per ACK stack from the topology (network_plan.py): VPC, vSwitch, pod and Service ranges
    network: NetworkPlan | None = None
    platform: PlatformSettings = PlatformSettings()
    tenants: list[TenantRef] = []
    national_stack: str = "organization/yiwang-national/primary"
    controller_url: str | None = None
    controller: ControllerSettings | None = None
    federation: FederationSettings | None = None

    @model_validator(mode="after")
    def _consistent(self) -> StackConfig:
        if self.region != self.cluster.region:
            raise ValueError(
                f"region {self.region!r} differs from the topology's region {self.cluster.region!r} "
                f"for cluster {self.cluster.name!r}"
            )
        allowed = alicloud_regions(self.region)  # raises for a region missing from the table
        if self.mode is Mode.ack:
            if not allowed:
                raise ValueError(
                    f"{self.region} has no Alibaba Cloud region inside the province; use mode: existing"
                )
            if self.alicloud_region and self.alicloud_region not in {r.region_id for r in allowed}:
                raise ValueError(
                    f"alicloudRegion {self.alicloud_region!r} is not inside {self.region}; "
                    f"allowed: {[r.region_id for r in allowed]}"
                )
        names = [t.name for t in self.tenants]
        if len(set(names)) != len(names):
            raise ValueError("tenants lists a tenant twice")
        if self.tenants and self.cluster.tenant not in names:
            raise ValueError(f"tenants must include the cluster's own tenant {self.cluster.tenant!r}")
        if (self.cluster.tier is Tier.national) != (self.controller is not None):
            raise ValueError("the controller key is set on national stacks, and only there")
        if self.mode is Mode.ack and self.network is None:
            raise ValueError("an ACK stack needs the network key (run python -m infra.generate_stacks)")
        return self

    @property
    def alicloud(self) -> AlicloudRegion:
        """The Alibaba Cloud region of an ACK stack."""
        if self.alicloud_region:
            region = find_alicloud_region(self.alicloud_region)
        else:
            regions = alicloud_regions(self.region)
            region = regions[0] if regions else None
        if region is None:
            raise ValueError(f"{self.cluster.name} has no Alibaba Cloud region (mode {self.mode})")
        return region

    @property
    def zones(self) -> list[str]:
        return list(self.ack.zones or self.alicloud.zones)

    def tenant_refs(self) -> list[TenantRef]:
        """Tenants hosted here; by default only the cluster's own tenant."""
        if self.tenants:
            return list(self.tenants)
        return [TenantRef(name=self.cluster.tenant, tier=self.cluster.tier, adcode=self.cluster.adcode)]

    def share_of(self, tenant: TenantRef) -> float:
        if tenant.share is not None:
            return tenant.share
        return self.platform.owner_share if tenant.name == self.cluster.tenant else self.platform.guest_share


def cluster_entry(cluster: Cluster) -> dict[str, Any]:
    """The cluster's entry as written in policies/topology.yaml: absent fields absent, whole numbers int.

    This is the body of the controller's ``PUT /v1/clusters/{name}`` and the ``cluster`` config key.
    """

    def tidy(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: tidy(v) for k, v in value.items()}
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    body = tidy(cluster.model_dump(mode="json", exclude_none=True))
    if not body.get("labels"):
        body.pop("labels", None)
    return body


OBJECT_KEYS = ("cluster", "network", "ack", "platform", "tenants", "controller", "federation")
STRING_KEYS = ("region", "mode", "alicloudRegion", "nationalStack", "controllerUrl")


class ConfigError(ValueError):
    """Stack config that does not validate; the message names every wrong key."""


def parse_stack_config(raw: dict[str, Any]) -> StackConfig:
    try:
        return StackConfig.model_validate({k: v for k, v in raw.items() if v not in (None, "")})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            path = ".".join(str(p) for p in err["loc"]) or "(stack)"
            lines.append(f"  {path}: {err['msg']}")
        raise ConfigError("invalid stack configuration:\n" + "\n".join(lines)) from exc


def load_stack_config(config: pulumi.Config | None = None) -> StackConfig:
    """Read this stack's plain config keys (project namespace) and validate them."""
    config = config or pulumi.Config()
    raw: dict[str, Any] = {key: config.get_object(key) for key in OBJECT_KEYS}
    raw.update({key: config.get(key) for key in STRING_KEYS})
    return parse_stack_config(raw)


class StackSecrets:
    """Secret config keys, kept as Outputs so they stay encrypted in state."""

    def __init__(self, config: pulumi.Config | None = None) -> None:
        self._config = config or pulumi.Config()

    def admin_token(self) -> pulumi.Output[str]:
        return self._config.require_secret("adminToken")

    def controller_tls_cert(self) -> pulumi.Output[str]:
        return self._config.require_secret("controllerTlsCert")

    def controller_tls_key(self) -> pulumi.Output[str]:
        return self._config.require_secret("controllerTlsKey")

    def kubeconfig(self) -> pulumi.Output[str]:
        return self._config.require_secret("kubeconfig")

    def database_url(self) -> pulumi.Output[str] | None:
        return self._config.get_secret("databaseUrl")

    def database_password(self) -> pulumi.Output[str]:
        return self._config.require_secret("databasePassword")

    def store_password(self, role: str) -> pulumi.Output[str]:
        """The national store's ``superuser`` or ``replication`` password (the same on both
        national stacks): secrets ``storeSuperuserPassword``, ``storeReplicationPassword``."""
        return self._config.require_secret(f"store{role.capitalize()}Password")

    def store_backup_credentials(self) -> pulumi.Output[str] | None:
        """``accessKeyId:accessKeySecret`` of the identity that writes the backups (optional)."""
        return self._config.get_secret("storeBackupCredentials")
