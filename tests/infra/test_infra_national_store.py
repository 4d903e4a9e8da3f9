"""The national stacks deploy the replicated store the drills measure (issue 12): Patroni and an
etcd member on each national cluster with the drills' settings, published to the other site and
the witness only, backed up to object storage in the site's own region; both controllers on the
libpq multi-host URL. ``controller.store.kind: rds`` keeps the single-region RDS alternative."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from controller.store import patroni
from controller.store.store import normalise_url
from controller.topology.model import load_topology
from infra.policypack.harness import check_resource, resource_args
from infra.yiwang_infra import base_backup, restore_backup
from infra.yiwang_infra.config import Mode
from infra.yiwang_infra.network_plan import plan_for
from infra.yiwang_infra.testing import StackRun, stack_config_values
from tests.infra.test_infra_stacks import REPO_ROOT, _by_type

TOPOLOGY = load_topology(REPO_ROOT / "policies" / "topology.yaml")
NAMES = [c.name for c in TOPOLOGY.clusters]


def cidr_of(cluster: str) -> str:
    return plan_for(NAMES.index(cluster)).vpc_cidr


def _store_of(run: StackRun, kind: str) -> dict[str, Any]:
    return {r.inputs["metadata"]["name"]: r for r in _by_type(run, f"kubernetes:{kind}")}


@pytest.mark.parametrize("stack", ["primary", "backup"])
@pulumi.runtime.test
def test_each_national_site_runs_its_member_of_the_replicated_store(stack: str) -> Any:
    run = StackRun("national", stack)
    outputs = run.run()
    config = run.config
    site = {"primary": "beijing", "backup": "guian"}[stack]
    other = {"primary": "national-backup", "backup": "national-primary"}[stack]

    def check(_: Any) -> None:
        sets = _store_of(run, "apps/v1:StatefulSet")
        assert set(sets) == {"yiwang-store-etcd", "yiwang-store-patroni"}
        for s in sets.values():
            assert s.inputs["spec"]["replicas"] == 1 and s.inputs["spec"]["volumeClaimTemplates"]
        # patroni.yml: the drills' settings (one source: controller/store/patroni.py)
        (cm,) = [
            c
            for c in _by_type(run, "kubernetes:core/v1:ConfigMap")
            if c.inputs["metadata"]["name"] == "yiwang-store-patroni"
        ]
        doc = yaml.safe_load(cm.inputs["data"]["patroni.yml"])
        assert doc["name"] == site and doc["scope"] == patroni.SCOPE
        assert doc["bootstrap"]["dcs"] == patroni.dcs_settings(400)
        assert doc["bootstrap"]["dcs"]["synchronous_mode"] is True and doc["bootstrap"]["dcs"]["ttl"] == 20
        # initdb and the post-bootstrap script, not a restore, unless asked (backup.restore)
        assert "method" not in doc["bootstrap"] and "restore-from-backup.py" not in cm.inputs["data"]
        assert doc["bootstrap"]["post_bootstrap"] == "/etc/patroni/post-bootstrap.sh"
        assert len(doc["etcd3"]["hosts"]) == 3 and any("witness" in h for h in doc["etcd3"]["hosts"])
        assert "password" not in json.dumps(doc["postgresql"]["authentication"])  # from the Secret
        # the other database site may replicate; no one else
        hba = doc["postgresql"]["pg_hba"]
        assert f"host replication replicator {cidr_of(other)} scram-sha-256" in hba
        assert not any("0.0.0.0/0" in line or "trust" in line for line in hba)
        etcd_cmd = " ".join(
            sets["yiwang-store-etcd"].inputs["spec"]["template"]["spec"]["containers"][0]["command"]
        )
        assert f"--name={site}" in etcd_cmd and "witness=http://" in etcd_cmd and "guian=http://" in etcd_cmd
        # cross-site whitelist: the store's ports open to the other national site and the witness
        policies = _store_of(run, "networking.k8s.io/v1:NetworkPolicy")
        allow = policies["allow-national-store"].inputs["spec"]
        cidrs = {p["ipBlock"]["cidr"] for p in allow["ingress"][0]["from"] if "ipBlock" in p}
        assert cidrs == {cidr_of(other), config.controller.store.witness_cidr}
        assert {p["port"] for p in allow["ingress"][0]["ports"]} == {5432, 8008, 2379, 2380}
        assert "default-deny-all" in policies
        # published on the government network only
        services = _store_of(run, "core/v1:Service")
        for name in ("yiwang-store-postgres", "yiwang-store-etcd"):
            svc = services[name].inputs
            if config.mode is Mode.ack:
                assert svc["spec"]["type"] == "LoadBalancer"
                assert (
                    svc["metadata"]["annotations"][
                        "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-address-type"
                    ]
                    == "intranet"
                )
            else:
                assert svc["spec"]["type"] == "ClusterIP"
            found = check_resource(resource_args(services[name].type, svc, services[name].name))
            assert not found, found
        # backups: WAL-G to object storage of this site's region
        patroni_env = {
            e["name"]: e
            for e in sets["yiwang-store-patroni"].inputs["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert {"PATRONI_SUPERUSER_PASSWORD", "PATRONI_REPLICATION_PASSWORD", "YIWANG_DB_PASSWORD"} <= set(
            patroni_env
        )
        buckets = _by_type(run, "alicloud:oss/bucket:Bucket")
        if config.mode is Mode.ack:
            (bucket,) = buckets
            assert bucket.inputs["serverSideEncryptionRule"]["sseAlgorithm"] == "KMS"
            assert bucket.inputs["versioning"]["status"] == "Enabled" and bucket.inputs["acl"] == "private"
            assert (
                patroni_env["AWS_ENDPOINT"]["value"]
                == f"https://oss-{config.alicloud.region_id}-internal.aliyuncs.com"
            )
            assert doc["postgresql"]["parameters"]["archive_command"] == "wal-g wal-push %p"
            # base backups: the pod's second container runs the script written into the ConfigMap
            pod = sets["yiwang-store-patroni"].inputs["spec"]["template"]["spec"]
            assert [c["name"] for c in pod["containers"]] == ["patroni", "base-backup"]
            sidecar = pod["containers"][1]
            assert sidecar["command"] == ["python3", "/etc/patroni/base-backup.py"]
            assert cm.inputs["data"]["base-backup.py"] == Path(base_backup.__file__).read_text()
            side_env = {e["name"]: e for e in sidecar["env"]}
            for same in ("WALG_S3_PREFIX", "AWS_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                assert side_env[same] == patroni_env[same]
            assert side_env["PGDATA"]["value"] == doc["postgresql"]["data_dir"]
            assert side_env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "superuser-password"
            backup = config.controller.store.backup
            assert side_env["BACKUP_EVERY_S"]["value"] == str(backup.every_hours * 3600) == "86400"
            assert side_env["BACKUP_KEEP"]["value"] == str(backup.retention_days) == "35"  # daily, 35 days
            assert {m["mountPath"] for m in sidecar["volumeMounts"]} == {
                "/var/lib/postgresql/data",
                "/etc/patroni",
            }
            assert "host all postgres 127.0.0.1/32 scram-sha-256" in hba
        else:
            assert buckets == []  # the government cloud's own object storage: controller.store.backup
            # none named in this stack: no archive, so no base-backup container either
            pod = sets["yiwang-store-patroni"].inputs["spec"]["template"]["spec"]
            assert [c["name"] for c in pod["containers"]] == ["patroni"]
        # the controllers of both sites: one multi-host URL, writable site only
        (secret,) = [
            s
            for s in _by_type(run, "kubernetes:core/v1:Secret")
            if s.inputs["metadata"]["name"] == "yiwang-controller-database"
        ]
        assert (
            "stringData" in secret.secret_paths
            or "stringData.url" in secret.secret_paths
            or secret.secret_paths
        )

    def check_url(values: list[Any]) -> None:
        check(values[0])
        if stack == "primary":
            url = values[1]
            assert "pg.beijing.yiwang.gov.internal:5432,pg.guian.yiwang.gov.internal:5432" in url
            assert "target_session_attrs=read-write" in url and url.startswith("postgresql+psycopg://yiwang:")
            assert normalise_url(url).count("host=") == 2

    extra = [outputs["databaseUrl"]] if stack == "primary" else []
    return pulumi.Output.all(run.settled(), *extra).apply(check_url)


@pulumi.runtime.test
def test_the_managed_alternative_is_one_region_rds_with_both_sites_whitelisted() -> Any:
    values = stack_config_values("national", "primary")
    controller = dict(values["yiwang-national:controller"])
    controller["store"] = {"kind": "rds"}
    run = StackRun("national", "primary", overrides={"yiwang-national:controller": json.dumps(controller)})
    run.run()
    config = run.config

    def check(_: Any) -> None:
        assert _by_type(run, "yiwang:infra:NationalStoreMember") == []
        if config.mode is not Mode.ack:
            return
        (instance,) = _by_type(run, "alicloud:rds/instance:Instance")
        assert instance.inputs["engine"] == "PostgreSQL" and instance.inputs["encryptionKey"]
        assert instance.inputs["roleArn"].endswith(":role/aliyunrdsinstanceencryptiondefaultrole")
        assert instance.inputs["zoneIdSlaveA"] != instance.inputs["zoneId"]
        assert len(instance.inputs["vswitchId"].split(",")) == 2
        assert config.network is not None
        assert instance.inputs["securityIps"] == [config.network.vpc_cidr, cidr_of("national-backup")]

    return run.settled().apply(check)


@pulumi.runtime.test
def test_the_restore_switch_makes_the_cluster_from_the_sites_backups() -> Any:
    """``controller.store.backup.restore``: Patroni's bootstrap runs the restore script written
    into the ConfigMap (the one the restore drill runs: tests/drills/test_restore.py) with WAL-G's
    ``wal-fetch`` as the restore command, and no post-bootstrap (the roles come with the backup)."""
    values = stack_config_values("national", "primary")
    controller = json.loads(json.dumps(values["yiwang-national:controller"]))
    controller.setdefault("store", {}).setdefault("backup", {})["restore"] = True
    run = StackRun("national", "primary", overrides={"yiwang-national:controller": json.dumps(controller)})
    run.run()
    config = run.config
    assert config.mode is Mode.ack  # the bucket the restore reads is the stack's own

    def check(_: Any) -> None:
        (cm,) = [
            c
            for c in _by_type(run, "kubernetes:core/v1:ConfigMap")
            if c.inputs["metadata"]["name"] == "yiwang-store-patroni"
        ]
        doc = yaml.safe_load(cm.inputs["data"]["patroni.yml"])
        boot = doc["bootstrap"]
        assert boot["method"] == patroni.RESTORE_METHOD and "post_bootstrap" not in boot
        assert boot[patroni.RESTORE_METHOD] == patroni.restore_bootstrap(
            "python3 /etc/patroni/restore-from-backup.py", "wal-g wal-fetch %f %p"
        )
        assert cm.inputs["data"]["restore-from-backup.py"] == Path(restore_backup.__file__).read_text()
        assert doc["postgresql"]["parameters"]["archive_command"] == "wal-g wal-push %p"  # archiving goes on

    return run.settled().apply(check)
