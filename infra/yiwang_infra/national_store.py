"""NationalStoreMember: this national site's member of the replicated national store.

The same design the national drills start from empty folders (``controller/drills/national.py``)
and measure, with the same Patroni settings (``controller/store/patroni.py``): PostgreSQL 15 under
Patroni on both national clusters, replicated synchronously, and an etcd member on each of them
(the third member runs at the witness site). docs/national.md says what happens in each failure.

Per national cluster, in namespace ``yiwang-store``:
- an etcd member (StatefulSet, one replica, its own volume) and Patroni + PostgreSQL
  (StatefulSet, one replica, its own volume); Patroni's ``patroni.yml`` in a ConfigMap, the
  passwords in a Secret (``PATRONI_*`` environment variables, never in the ConfigMap);
- two intranet load balancers (ack mode) publishing PostgreSQL + Patroni's REST API and the etcd
  member to the other national site and the witness (the addresses of ``controller.store``);
- NetworkPolicies: deny by default; the store's ports open to this cluster's controllers and
  Prometheus and to the **other national site and the witness only** (cross-site whitelist by
  address range); the controllers may reach the store of both sites;
- backups: WAL-G archives the WAL and base backups to object storage **in this site's region**:
  an OSS bucket created here (KMS-encrypted with the cluster's key, versioned, old versions
  expire) in ack mode, the government cloud's S3-compatible object storage named in
  ``controller.store.backup`` in existing mode. The WAL through Patroni's ``archive_command``;
  the base backups by a second container of the Patroni pod (``base_backup.py``: on the primary,
  one when the newest is older than ``backup.everyHours``, the full backups kept covering
  ``backup.retentionDays``), over loopback as the superuser; with ``backup.restore``, Patroni
  makes the cluster from this site's newest backup and archived WAL (``restore_backup.py``)
  instead of ``initdb`` (disaster recovery: docs/national.md).

Why one module of this length: one Pulumi component for one site's member of the store; its etcd,
Patroni, load balancers, network policies and backups are declared together and read each
other's outputs (addresses, secrets), so a reader checks the site's whole wiring in one place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pulumi_alicloud as alicloud
import pulumi_kubernetes as k8s
import yaml

from controller.store import patroni
from infra.yiwang_infra import base_backup, restore_backup
from infra.yiwang_infra import labels as L
from infra.yiwang_infra.config import Mode, NationalStoreSettings, StackConfig, StoreBackupSettings
from infra.yiwang_infra.member_cluster import MemberCluster
from infra.yiwang_infra.platform import PLATFORM_PRIORITY

TYPE = "yiwang:infra:NationalStoreMember"
NAMESPACE = "yiwang-store"
SITE_OF = {"national-primary": "beijing", "national-backup": "guian"}
CREDENTIALS = "yiwang-store-credentials"
PG_PORT, REST_PORT, ETCD_CLIENT, ETCD_PEER = 5432, 8008, 2379, 2380
LB = "service.beta.kubernetes.io/alibaba-cloud-loadbalancer"
DATA = "/var/lib/postgresql/data"
PGDATA = f"{DATA}/pgdata"


def site_of(cluster_name: str) -> str:
    try:
        return SITE_OF[cluster_name]
    except KeyError:
        raise ValueError(f"{cluster_name} is not a national database site") from None


def etcd_initial_cluster(store: NationalStoreSettings) -> str:
    return ",".join(f"{site}=http://{host}:{ETCD_PEER}" for site, host in sorted(store.etcd.items()))


def patroni_yaml(
    config: StackConfig, peer_cidrs: list[str], own_cidr: str, archive: bool, restore: bool = False
) -> str:
    """This site's patroni.yml: the shared settings with this site's published addresses;
    ``restore``: the cluster bootstrapped from this site's backups (``restore_backup.py``)."""
    assert config.controller is not None
    store = config.controller.store
    site = site_of(config.cluster.name)
    pg_host = store.postgres[site]  # type: ignore[index]
    host = pg_host.rsplit(":", 1)[0]
    hba = ["local all all peer"]
    for cidr in [own_cidr, *peer_cidrs]:  # this cluster's controllers and the other site's
        hba.append(f"host all all {cidr} scram-sha-256")
    for cidr in peer_cidrs:  # the other database site streams from here when it is the standby
        hba.append(f"host replication replicator {cidr} scram-sha-256")
    if archive:  # the base-backup container, beside PostgreSQL in the pod
        hba.append("host all postgres 127.0.0.1/32 scram-sha-256")
    config_doc = patroni.member_config(
        site=site,
        rest_listen=f"0.0.0.0:{REST_PORT}",
        rest_connect=f"{host}:{REST_PORT}",
        pg_listen=f"0.0.0.0:{PG_PORT}",
        pg_connect=pg_host,
        etcd_hosts=[f"{h}:{ETCD_CLIENT}" for _, h in sorted(store.etcd.items())],
        data_dir=PGDATA,
        bin_dir=store.bin_dir,
        pg_hba=hba,
        # passwords come from PATRONI_SUPERUSER_PASSWORD / PATRONI_REPLICATION_PASSWORD
        authentication={
            "superuser": {"username": "postgres"},
            "replication": {"username": "replicator"},
            "rewind": {"username": "postgres"},
        },
        parameters={"password_encryption": "scram-sha-256"},
        max_connections=store.max_connections,
        archive_command=patroni.ARCHIVE_COMMAND if archive else None,
        post_bootstrap="/etc/patroni/post-bootstrap.sh",
        restore=patroni.restore_bootstrap("python3 /etc/patroni/restore-from-backup.py") if restore else None,
    )
    return yaml.safe_dump(config_doc, sort_keys=False)


POST_BOOTSTRAP = """#!/bin/sh
# Patroni runs this once, on the first primary: the controllers' role and database.
set -eu
psql "$1" -v ON_ERROR_STOP=1 -v pw="$YIWANG_DB_PASSWORD" \\
  -c "CREATE ROLE yiwang LOGIN PASSWORD :'pw'" -c "CREATE DATABASE yiwang OWNER yiwang"
"""


class NationalStoreMember(pulumi.ComponentResource):
    """This national site's etcd member and Patroni/PostgreSQL node (see the module docstring)."""

    def __init__(
        self,
        name: str,
        config: StackConfig,
        cluster: MemberCluster,
        *,
        superuser_password: pulumi.Input[str],
        replication_password: pulumi.Input[str],
        database_password: pulumi.Input[str],
        peer_cidrs: list[str],
        own_cidr: str,
        backup_credentials: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        if config.controller is None:
            raise ValueError("the national store runs on national stacks only")
        store = config.controller.store
        site = site_of(config.cluster.name)
        super().__init__(TYPE, name, {"site": site}, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = {**L.system_labels(config.cluster, "store"), L.MANAGED_BY: L.MANAGER}
        ns = k8s.core.v1.Namespace(
            f"{name}-ns", metadata=k8s.meta.v1.ObjectMetaArgs(name=NAMESPACE, labels=labels), opts=child
        )
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[ns])

        def meta(obj: str, component: str) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(
                name=obj,
                namespace=NAMESPACE,
                labels={L.PART_OF: "yiwang", L.MANAGED_BY: L.MANAGER, "yiwang.gov.cn/component": component},
            )

        # -- backups to object storage in this site's region
        self.backup_bucket: pulumi.Output[str] | None = None
        backup_env: list[k8s.core.v1.EnvVarArgs] = []
        if config.mode is Mode.ack and cluster.alicloud_provider is not None:
            region = config.alicloud.region_id
            bucket = alicloud.oss.Bucket(
                f"{name}-backup",
                bucket=f"yiwang-national-store-{site}",
                acl="private",
                versioning=alicloud.oss.BucketVersioningArgs(status="Enabled"),
                server_side_encryption_rule=alicloud.oss.BucketServerSideEncryptionRuleArgs(
                    sse_algorithm="KMS", kms_master_key_id=cluster.kms_key_id
                ),
                lifecycle_rules=[
                    alicloud.oss.BucketLifecycleRuleArgs(
                        id="expire-old-backups",
                        enabled=True,
                        prefix="",
                        noncurrent_version_expirations=[
                            alicloud.oss.BucketLifecycleRuleNoncurrentVersionExpirationArgs(
                                days=store.backup.retention_days
                            )
                        ],
                    )
                ],
                tags=L.cluster_labels(config.cluster),
                opts=pulumi.ResourceOptions(parent=self, provider=cluster.alicloud_provider, protect=True),
            )
            self.backup_bucket = bucket.bucket
            endpoint: pulumi.Input[str] = f"https://oss-{region}-internal.aliyuncs.com"
            prefix: pulumi.Input[str] = bucket.bucket.apply(lambda b: f"s3://{b}/{patroni.SCOPE}")
        elif store.backup.endpoint and store.backup.bucket:
            endpoint = store.backup.endpoint
            prefix = f"s3://{store.backup.bucket}/{patroni.SCOPE}"
        else:
            endpoint = prefix = ""
        archive = bool(endpoint) and backup_credentials is not None
        restore = store.backup.restore
        if restore and not archive:
            raise ValueError(
                "controller.store.backup.restore reads this site's backups: it needs the backup "
                "bucket (ack mode, or endpoint and bucket in existing mode) and its credentials"
            )
        if archive:
            backup_env = [
                k8s.core.v1.EnvVarArgs(name="WALG_S3_PREFIX", value=prefix),
                k8s.core.v1.EnvVarArgs(name="AWS_ENDPOINT", value=endpoint),
                k8s.core.v1.EnvVarArgs(
                    name="AWS_ACCESS_KEY_ID", value_from=_secret_ref("backup-access-key-id")
                ),
                k8s.core.v1.EnvVarArgs(
                    name="AWS_SECRET_ACCESS_KEY", value_from=_secret_ref("backup-access-key-secret")
                ),
            ]

        # -- credentials and configuration
        secret_data: dict[str, pulumi.Input[str]] = {
            "superuser-password": pulumi.Output.secret(superuser_password),
            "replication-password": pulumi.Output.secret(replication_password),
            "yiwang-password": pulumi.Output.secret(database_password),
        }
        if archive and backup_credentials is not None:
            creds = pulumi.Output.secret(backup_credentials)
            secret_data["backup-access-key-id"] = creds.apply(lambda c: c.split(":", 1)[0])
            secret_data["backup-access-key-secret"] = creds.apply(lambda c: c.split(":", 1)[-1])
        secret = k8s.core.v1.Secret(
            f"{name}-credentials",
            metadata=meta(CREDENTIALS, "store"),
            type="Opaque",
            string_data=secret_data,
            opts=in_ns,
        )
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-patroni-config",
            metadata=meta("yiwang-store-patroni", "store"),
            data={
                "patroni.yml": patroni_yaml(config, peer_cidrs, own_cidr, archive, restore),
                "post-bootstrap.sh": POST_BOOTSTRAP,
                **({"base-backup.py": BASE_BACKUP} if archive else {}),
                **({"restore-from-backup.py": RESTORE} if restore else {}),
            },
            opts=in_ns,
        )

        # -- etcd member and Patroni node
        storage = k8s.core.v1.PersistentVolumeClaimSpecArgs(
            access_modes=["ReadWriteOnce"],
            storage_class_name=store.storage_class,
            resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                requests={"storage": f"{store.storage_gib}Gi"}
            ),
        )
        etcd_host = store.etcd[site]  # type: ignore[index]
        self.etcd = _stateful_set(
            f"{name}-etcd",
            meta("yiwang-store-etcd", "etcd"),
            "etcd",
            image=store.etcd_image,
            command=[
                "etcd",
                f"--name={site}",
                "--data-dir=/var/lib/etcd/data",
                f"--listen-client-urls=http://0.0.0.0:{ETCD_CLIENT}",
                f"--advertise-client-urls=http://{etcd_host}:{ETCD_CLIENT}",
                f"--listen-peer-urls=http://0.0.0.0:{ETCD_PEER}",
                f"--initial-advertise-peer-urls=http://{etcd_host}:{ETCD_PEER}",
                f"--initial-cluster={etcd_initial_cluster(store)}",
                f"--initial-cluster-token={patroni.SCOPE}",
                "--initial-cluster-state=new",
            ],
            ports=[("client", ETCD_CLIENT), ("peer", ETCD_PEER)],
            env=[],
            mounts=[k8s.core.v1.VolumeMountArgs(name="data", mount_path="/var/lib/etcd")],
            volumes=[],
            storage=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                access_modes=["ReadWriteOnce"],
                storage_class_name=store.storage_class,
                resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": "20Gi"}),
            ),
            probe_path="/health",
            probe_port=ETCD_CLIENT,
            opts=in_ns,
        )
        env = [
            k8s.core.v1.EnvVarArgs(
                name="PATRONI_SUPERUSER_PASSWORD", value_from=_secret_ref("superuser-password")
            ),
            k8s.core.v1.EnvVarArgs(
                name="PATRONI_REPLICATION_PASSWORD", value_from=_secret_ref("replication-password")
            ),
            k8s.core.v1.EnvVarArgs(
                name="PATRONI_REWIND_PASSWORD", value_from=_secret_ref("superuser-password")
            ),
            k8s.core.v1.EnvVarArgs(name="YIWANG_DB_PASSWORD", value_from=_secret_ref("yiwang-password")),
            *backup_env,
        ]
        self.patroni = _stateful_set(
            f"{name}-patroni",
            meta("yiwang-store-patroni", "patroni"),
            "patroni",
            image=store.image,
            command=["patroni", "/etc/patroni/patroni.yml"],
            ports=[("postgres", PG_PORT), ("patroni", REST_PORT)],
            env=env,
            mounts=[
                k8s.core.v1.VolumeMountArgs(name="data", mount_path=DATA),
                k8s.core.v1.VolumeMountArgs(name="config", mount_path="/etc/patroni", read_only=True),
            ],
            volumes=[
                k8s.core.v1.VolumeArgs(
                    name="config",
                    config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                        name="yiwang-store-patroni", default_mode=0o755
                    ),
                )
            ],
            storage=storage,
            probe_path="/readiness",
            probe_port=REST_PORT,
            sidecars=[_base_backup_container(store.image, backup_env, store.backup)] if archive else [],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ns, secret, config_map]),
        )

        # -- published to the other sites (intranet load balancers in ack mode)
        for svc, component, ports in (
            ("yiwang-store-postgres", "patroni", [("postgres", PG_PORT), ("patroni", REST_PORT)]),
            ("yiwang-store-etcd", "etcd", [("client", ETCD_CLIENT), ("peer", ETCD_PEER)]),
        ):
            service_meta = meta(svc, component)
            if config.mode is Mode.ack:
                service_meta.annotations = {
                    f"{LB}-address-type": "intranet",
                    f"{LB}-vswitch-id": cluster.vswitch_ids[0],
                }
            k8s.core.v1.Service(
                f"{name}-{component}-svc",
                metadata=service_meta,
                spec=k8s.core.v1.ServiceSpecArgs(
                    type="LoadBalancer" if config.mode is Mode.ack else "ClusterIP",
                    selector={"yiwang.gov.cn/component": component, L.PART_OF: "yiwang"},
                    ports=[
                        k8s.core.v1.ServicePortArgs(name=n, port=p, target_port=n, protocol="TCP")
                        for n, p in ports
                    ],
                    external_traffic_policy="Local" if config.mode is Mode.ack else None,
                ),
                opts=in_ns,
            )

        # -- who may talk to the store: this cluster's controllers and Prometheus, the other
        # national site and the witness, nobody else
        store_ports = [
            k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=p)
            for p in (PG_PORT, REST_PORT, ETCD_CLIENT, ETCD_PEER)
        ]
        peers = [
            k8s.networking.v1.NetworkPolicyPeerArgs(ip_block=k8s.networking.v1.IPBlockArgs(cidr=c))
            for c in peer_cidrs
        ]
        platform_peers = [
            k8s.networking.v1.NetworkPolicyPeerArgs(
                namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                    match_labels={"kubernetes.io/metadata.name": n}
                )
            )
            for n in (config.platform.system_namespace, config.platform.monitoring_namespace, NAMESPACE)
        ]
        k8s.networking.v1.NetworkPolicy(
            f"{name}-np-default-deny",
            metadata=meta("default-deny-all", "store"),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(), policy_types=["Ingress", "Egress"]
            ),
            opts=in_ns,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-np-cross-site",
            metadata=meta("allow-national-store", "store"),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(),
                policy_types=["Ingress", "Egress"],
                ingress=[
                    k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                        from_=[*peers, *platform_peers], ports=store_ports
                    )
                ],
                egress=[
                    k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                        to=[*peers, *platform_peers[2:]], ports=store_ports
                    ),
                    _dns_egress(),
                    # WAL-G to object storage
                    k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                        ports=[k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=443)]
                    ),
                ],
            ),
            opts=in_ns,
        )
        # the controllers (yiwang-system) reach the store of both sites (the multi-host URL)
        k8s.networking.v1.NetworkPolicy(
            f"{name}-np-controller-egress",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name="allow-national-store-egress",
                namespace=config.platform.system_namespace,
                labels={L.PART_OF: "yiwang", L.MANAGED_BY: L.MANAGER},
            ),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(
                    match_labels={"app.kubernetes.io/component": "controller"}
                ),
                policy_types=["Egress"],
                egress=[
                    k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                        to=[
                            *peers[:1],
                            k8s.networking.v1.NetworkPolicyPeerArgs(
                                ip_block=k8s.networking.v1.IPBlockArgs(cidr=own_cidr)
                            ),
                            platform_peers[2],
                        ],
                        ports=[k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=PG_PORT)],
                    )
                ],
            ),
            opts=child,
        )
        self.register_outputs({"site": site, "backupBucket": self.backup_bucket})


BASE_BACKUP = Path(base_backup.__file__).read_text()  # the script, as it is
RESTORE = Path(restore_backup.__file__).read_text()  # the restore bootstrap's script, as it is


def _base_backup_container(
    image: str, backup_env: list[k8s.core.v1.EnvVarArgs], backup: StoreBackupSettings
) -> k8s.core.v1.ContainerArgs:
    """The Patroni pod's second container: base backups while this member is the primary
    (``base_backup.py``), with WAL-G's settings, the data volume and loopback to PostgreSQL."""
    return k8s.core.v1.ContainerArgs(
        name="base-backup",
        image=image,
        command=["python3", "/etc/patroni/base-backup.py"],
        env=[
            *backup_env,
            k8s.core.v1.EnvVarArgs(name="PGDATA", value=PGDATA),
            k8s.core.v1.EnvVarArgs(name="PGHOST", value="127.0.0.1"),
            k8s.core.v1.EnvVarArgs(name="PGPORT", value=str(PG_PORT)),
            k8s.core.v1.EnvVarArgs(name="PGUSER", value="postgres"),
            k8s.core.v1.EnvVarArgs(name="PGPASSWORD", value_from=_secret_ref("superuser-password")),
            k8s.core.v1.EnvVarArgs(name="PATRONI_URL", value=f"http://127.0.0.1:{REST_PORT}"),
            k8s.core.v1.EnvVarArgs(name="BACKUP_EVERY_S", value=str(backup.every_hours * 3600)),
            k8s.core.v1.EnvVarArgs(name="BACKUP_KEEP", value=str(backup.keep_full)),
        ],
        volume_mounts=[
            k8s.core.v1.VolumeMountArgs(name="data", mount_path=DATA),
            k8s.core.v1.VolumeMountArgs(name="config", mount_path="/etc/patroni", read_only=True),
        ],
        security_context=_restricted(),
    )


def _restricted() -> k8s.core.v1.SecurityContextArgs:
    """Every container of the store's pods: no privilege escalation, no capabilities."""
    return k8s.core.v1.SecurityContextArgs(
        allow_privilege_escalation=False, capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"])
    )


def _secret_ref(key: str) -> k8s.core.v1.EnvVarSourceArgs:
    return k8s.core.v1.EnvVarSourceArgs(
        secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=CREDENTIALS, key=key)
    )


def _dns_egress() -> k8s.networking.v1.NetworkPolicyEgressRuleArgs:
    return k8s.networking.v1.NetworkPolicyEgressRuleArgs(
        to=[
            k8s.networking.v1.NetworkPolicyPeerArgs(
                namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                    match_labels={"kubernetes.io/metadata.name": "kube-system"}
                ),
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels={"k8s-app": "kube-dns"}),
            )
        ],
        ports=[
            k8s.networking.v1.NetworkPolicyPortArgs(protocol="UDP", port=53),
            k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=53),
        ],
    )


def _stateful_set(
    name: str,
    metadata: k8s.meta.v1.ObjectMetaArgs,
    container: str,
    *,
    image: str,
    command: list[str],
    ports: list[tuple[str, int]],
    env: list[k8s.core.v1.EnvVarArgs],
    mounts: list[k8s.core.v1.VolumeMountArgs],
    volumes: list[k8s.core.v1.VolumeArgs],
    storage: k8s.core.v1.PersistentVolumeClaimSpecArgs,
    probe_path: str,
    probe_port: int,
    opts: pulumi.ResourceOptions,
    sidecars: list[k8s.core.v1.ContainerArgs] | None = None,
) -> k8s.apps.v1.StatefulSet:
    """One replica with its own volume (a site's member: the other member is another cluster);
    ``sidecars``: more containers of the pod, after the member's."""
    labels: dict[str, Any] = dict(metadata.labels or {})  # type: ignore[arg-type]
    selector = {"yiwang.gov.cn/component": labels["yiwang.gov.cn/component"], L.PART_OF: "yiwang"}
    return k8s.apps.v1.StatefulSet(
        name,
        metadata=metadata,
        spec=k8s.apps.v1.StatefulSetSpecArgs(
            replicas=1,
            service_name=metadata.name,
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                spec=k8s.core.v1.PodSpecArgs(
                    priority_class_name=PLATFORM_PRIORITY,
                    security_context=k8s.core.v1.PodSecurityContextArgs(
                        run_as_non_root=True, run_as_user=999, fs_group=999
                    ),
                    containers=[
                        k8s.core.v1.ContainerArgs(
                            name=container,
                            image=image,
                            command=command,
                            ports=[k8s.core.v1.ContainerPortArgs(name=n, container_port=p) for n, p in ports],
                            env=env,
                            volume_mounts=mounts,
                            readiness_probe=k8s.core.v1.ProbeArgs(
                                http_get=k8s.core.v1.HTTPGetActionArgs(path=probe_path, port=probe_port),
                                period_seconds=5,
                            ),
                            security_context=_restricted(),
                        ),
                        *(sidecars or []),
                    ],
                    volumes=volumes,
                ),
            ),
            volume_claim_templates=[
                k8s.core.v1.PersistentVolumeClaimArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(name="data"), spec=storage
                )
            ],
        ),
        opts=opts,
    )
