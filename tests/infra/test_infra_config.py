"""Typed stack config: wrong stack files fail before anything is planned; the generator keeps secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from infra import generate_stacks
from infra.yiwang_infra.config import AddressBlock, ConfigError, Mode, parse_stack_config
from infra.yiwang_infra.regions import ALICLOUD_REGIONS
from infra.yiwang_infra.testing import StackRun, stack_config_values

REPO_ROOT = Path(__file__).resolve().parents[2]


def raw(project: str, stack: str, **changes: Any) -> dict[str, Any]:
    prefix = generate_stacks.PROJECTS[["national", "province", "department"].index(project)].name + ":"
    values = {k.removeprefix(prefix): v for k, v in stack_config_values(project, stack).items()}
    values = {
        k: v
        for k, v in values.items()
        if k in {"cluster", "region", "mode", "tenants", "controller", "network"}
    }
    values.update(changes)
    return values


def test_stack_files_parse() -> None:
    config = parse_stack_config(raw("province", "guangdong"))
    assert config.mode is Mode.ack and config.alicloud.region_id == "cn-shenzhen"
    assert parse_stack_config(raw("province", "tianjin")).mode is Mode.existing


@pytest.mark.parametrize(
    ("project", "stack", "changes", "message"),
    [
        ("province", "guangdong", {"region": "cn-beijing"}, "differs from the topology's region"),
        ("province", "tianjin", {"mode": "ack"}, "use mode: existing"),
        ("province", "guangdong", {"alicloudRegion": "cn-hangzhou"}, "is not inside cn-guangdong"),
        ("province", "guangdong", {"mode": "cloud"}, "mode"),
        ("province", "guangdong", {"tenants": [{"name": "national", "tier": "national"}]}, "own tenant"),
        ("national", "primary", {"controller": None}, "controller key is set on national stacks"),
        ("province", "hebei", {"controller": {"role": "active"}}, "controller key is set on national stacks"),
        ("province", "guangdong", {"network": None}, "needs the network key"),
        ("province", "hebei", {"ack": {"coresPerNode": 0}}, "ack.coresPerNode"),
    ],
)
def test_invalid_stack_config_names_the_key(
    project: str, stack: str, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_stack_config(raw(project, stack, **changes))


def test_region_table_covers_every_topology_region() -> None:
    regions = {
        c["region"] for c in yaml.safe_load((REPO_ROOT / "policies/topology.yaml").read_text())["clusters"]
    }
    assert regions <= set(ALICLOUD_REGIONS)
    for topology_region, cloud in ALICLOUD_REGIONS.items():
        for region in cloud or ():
            assert all(zone.startswith(region.region_id + "-") for zone in region.zones), topology_region


@pulumi.runtime.test
def test_existing_mode_needs_the_kubeconfig_secret() -> Any:
    run = StackRun("province", "tianjin")
    pulumi.runtime.set_all_config(
        {k: v for k, v in pulumi.runtime.config.CONFIG.get().items() if not k.endswith(":kubeconfig")}
    )
    with pytest.raises(pulumi.ConfigMissingError):
        run.run()


def test_generator_keeps_secrets_and_rewrites_generated_keys(tmp_path: Path) -> None:
    topology, failover = generate_stacks.load_sources(REPO_ROOT / "policies")
    for project in ("national", "province", "department"):
        (tmp_path / project).mkdir()
    stack_file = tmp_path / "province" / "Pulumi.guangdong.yaml"
    stack_file.write_text(
        yaml.safe_dump(
            {
                "encryptionsalt": "v1:abc",
                "config": {
                    "yiwang-province:adminToken": {"secure": "v1:xyz"},
                    "yiwang-province:region": "cn-beijing",  # hand-edited: the generator owns it
                    "yiwang-province:alicloudRegion": "cn-guangzhou",  # a local override: kept
                },
            }
        )
    )
    files = generate_stacks.render(topology, failover, infra_dir=tmp_path)
    assert len(files) == 3 + 2 + 32 + 8
    doc = yaml.safe_load(files[stack_file])
    assert doc["encryptionsalt"] == "v1:abc"
    assert doc["config"]["yiwang-province:adminToken"] == {"secure": "v1:xyz"}
    assert doc["config"]["yiwang-province:region"] == "cn-guangdong"
    assert doc["config"]["yiwang-province:alicloudRegion"] == "cn-guangzhou"
    assert doc["config"]["yiwang-province:cluster"]["adcode"] == "440000"


def test_failover_guests_get_namespaces_where_they_fail_over() -> None:
    topology, failover = generate_stacks.load_sources(REPO_ROOT / "policies")
    by_name = topology.by_name()
    for source, backups in failover.backups.items():
        for backup in backups:
            hosted = {t["name"] for t in generate_stacks.hosted_tenants(by_name[backup], topology, failover)}
            assert by_name[source].tenant in hosted, (source, backup)


# -- the address plan: generated per ACK stack from the topology, no overlap anywhere


def test_every_ack_stack_has_a_network_plan_and_no_two_overlap() -> None:
    from infra.yiwang_infra.network_plan import NetworkPlan, check
    from infra.yiwang_infra.testing import stack_names

    plans: dict[str, NetworkPlan] = {}
    for project in ("national", "province", "department"):
        for stack in stack_names(project):
            config = parse_stack_config(raw(project, stack))
            if config.mode is Mode.ack:
                assert config.network is not None, f"{project}/{stack}"
                plans[config.cluster.name] = config.network
    assert len(plans) >= 10
    assert check(plans) == []


def test_the_overlap_check_finds_overlaps() -> None:
    from infra.yiwang_infra.network_plan import check, plan_for

    a, b = plan_for(3), plan_for(4)
    assert check({"a": a, "b": b}) == []
    clash = b.model_copy(update={"vpc_cidr": "10.13.0.0/16", "service_cidr": a.service_cidr})
    problems = check({"a": a, "b": clash})
    assert any("VPCs of a" in p for p in problems) and any("Service ranges of a and b" in p for p in problems)
    assert any("outside VPC" in p for p in problems)  # b's vSwitches are no longer inside its VPC
    inside = a.model_copy(update={"service_cidr": "10.12.64.0/20"})
    assert any("overlaps the VPC of a" in p for p in check({"a": inside}))


# -- cloud inputs resolved at plan time


def test_kubernetes_version_newest_offered_or_a_clear_error() -> None:
    from infra.yiwang_infra.member_cluster import CloudInputError, check_zones, choose_kubernetes_version

    offered = ["1.31.9-aliyun.1", "1.33.3-aliyun.1", "1.32.7-aliyun.1"]
    assert choose_kubernetes_version(offered, None, "x") == "1.33.3-aliyun.1"
    assert choose_kubernetes_version(offered, "1.32.7-aliyun.1", "x") == "1.32.7-aliyun.1"
    with pytest.raises(CloudInputError, match=r"no longer creates Kubernetes 1.30.7-aliyun.1; offered"):
        choose_kubernetes_version(offered, "1.30.7-aliyun.1", "prov-guangdong (cn-shenzhen)")
    with pytest.raises(CloudInputError, match="offers no Kubernetes version"):
        choose_kubernetes_version([], None, "x")
    assert check_zones(["cn-shenzhen-e", "cn-shenzhen-f"], ["cn-shenzhen-e"], "x") == ["cn-shenzhen-e"]
    with pytest.raises(CloudInputError, match=r"zones \['cn-shenzhen-z'\] cannot create vSwitches"):
        check_zones(["cn-shenzhen-e"], ["cn-shenzhen-z"], "x")


def test_a_stale_ack_version_fails_the_plan() -> None:
    """The program asks ACK for its versions at plan time; a pinned version it no longer offers
    fails the run, naming the versions on offer."""

    @pulumi.runtime.test
    def plan() -> Any:
        run = StackRun(
            "province",
            "guangdong",
            overrides={"yiwang-province:ack": {"kubernetesVersion": "1.30.7-aliyun.1"}},
            ack_versions=["1.32.7-aliyun.1", "1.33.3-aliyun.1"],
        )
        run.run()
        return run.settled()

    with pytest.raises(Exception, match=r"ACK no longer creates Kubernetes 1.30.7-aliyun.1; offered"):
        plan()


def _registrations(overrides: dict[str, Any]) -> list[Any]:
    found: list[Any] = []

    @pulumi.runtime.test
    def plan() -> Any:
        run = StackRun("province", "guangdong", overrides=overrides)
        run.run()

        def keep(_: Any) -> None:
            found.extend(run.monitor.registrations.values())

        return run.settled().apply(keep)

    plan()
    return found


def test_the_spark_operator_follows_its_config() -> None:
    """Pinned version and mirror from platform.sparkOperator; disabled: no release, no namespace,
    and the agent's Role no longer grants SparkApplications (their CRD would be missing)."""
    custom = {
        "sparkOperator": {
            "repository": "https://mirror.example/spark-operator",
            "version": "2.4.0",
            "imageRegistry": "mirror.example/ghcr",
        }
    }
    regs = _registrations({"yiwang-province:platform": custom})
    (release,) = [
        r for r in regs if r.type.startswith("kubernetes:helm.sh") and r.inputs["name"] == "spark-operator"
    ]
    assert release.inputs["version"] == "2.4.0"
    assert release.inputs["repositoryOpts"] == {"repo": "https://mirror.example/spark-operator"}
    assert release.inputs["values"]["image"]["registry"] == "mirror.example/ghcr"

    regs = _registrations({"yiwang-province:platform": {"sparkOperator": {"enabled": False}}})
    assert not [
        r for r in regs if r.type.startswith("kubernetes:helm.sh") and r.inputs["name"] == "spark-operator"
    ]
    namespaces = {r.inputs["metadata"]["name"] for r in regs if r.type == "kubernetes:core/v1:Namespace"}
    assert "spark-operator" not in namespaces
    roles = [r for r in regs if r.type == "kubernetes:rbac.authorization.k8s.io/v1:Role"]
    assert roles and all(
        "sparkoperator.k8s.io" not in rule.get("apiGroups", [])
        for role in roles
        for rule in role.inputs["rules"]
    )
    policies = {r.inputs["metadata"]["name"] for r in regs if r.type.endswith("NetworkPolicy")}
    assert "allow-spark-driver-api-server" not in policies


def test_platform_api_server_overrides_the_endpoint() -> None:
    """platform.apiServer replaces the ACK endpoints in the policies that reach the API server."""
    blocks = [{"cidr": "192.0.2.10/32", "ports": [6443]}]
    regs = _registrations({"yiwang-province:platform": {"apiServer": blocks}})
    (agent,) = [
        r for r in regs if r.type.endswith("NetworkPolicy") and r.inputs["metadata"]["name"] == "yiwang-agent"
    ]
    api_rules = [rule for rule in agent.inputs["spec"]["egress"] if rule["ports"][0]["port"] == 6443]
    assert [rule["to"] for rule in api_rules] == [[{"ipBlock": {"cidr": "192.0.2.10/32"}}]]
    with pytest.raises(ValueError, match="host bits set"):
        AddressBlock(cidr="192.0.2.10/24", ports=[6443])
    with pytest.raises(ValueError):
        AddressBlock(cidr="192.0.2.0/24", ports=[])


def test_runs_in_one_process_do_not_pile_up_pickler_wrappers() -> None:
    """Pulumi's serialize_provider wraps the pickler once per dynamic resource, for good; StackRun
    unwraps it, or a long test process hits a RecursionError (the national primary has 82)."""
    import inspect
    import pickle

    from pulumi.dynamic.dynamic import serialize_provider

    from infra.yiwang_infra.registration import AgentTokenProvider
    from infra.yiwang_infra.testing import unwrap_dynamic_pickler

    unwrap_dynamic_pickler()
    original = pickle._Pickler._batch_setitems  # type: ignore[attr-defined]
    for _ in range(3):
        serialize_provider(AgentTokenProvider())
    assert pickle._Pickler._batch_setitems is not original  # type: ignore[attr-defined]
    unwrap_dynamic_pickler()
    assert pickle._Pickler._batch_setitems is original  # type: ignore[attr-defined]
    # every stack run starts unwrapped (a StackRun outside a run would leave its mocks behind)
    assert "unwrap_dynamic_pickler()" in inspect.getsource(StackRun.__init__)
