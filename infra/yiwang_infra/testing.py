"""Run a stack's program under Pulumi mocks: no cloud, no CLI (it cannot be installed here).

Mocks and config are process-global, so :class:`StackRun` sets both for one stack, runs the
program function (never re-imports ``__main__``) and records every registration with its parent,
inputs and provider, for assertions and for the policy pack's validate functions.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.rpc import _special_secret_sig as _SECRET_SIG
from pulumi.runtime.rpc import _special_sig_key as _SIG_KEY

from controller.topology.model import Tier, load_topology
from infra.yiwang_infra.charts import POLICIES_DIR as REPO_POLICIES
from infra.yiwang_infra.config import StackConfig, StackSecrets, load_stack_config
from infra.yiwang_infra.network_plan import plan_for
from infra.yiwang_infra.programs import member_main, national_main
from infra.yiwang_infra.regions import ALICLOUD_REGIONS

INFRA_DIR = Path(__file__).resolve().parents[1]
PROJECT_TIERS = {"national": Tier.national, "province": Tier.province, "department": Tier.department}
TEST_KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n"
NATIONAL_OUTPUTS = {
    "controllerUrl": "https://controller.yiwang.gov.internal",
    "prometheusRemoteWriteUrl": "https://prometheus.yiwang.gov.internal/api/v1/write",
    "prometheusFederateUrl": "https://prometheus.yiwang.gov.internal/federate",
    "databaseUrl": "postgresql+psycopg://yiwang:pw@pg.internal:5432/yiwang",
}
TEST_SECRETS = {
    "adminToken": "test-admin-token",
    "databasePassword": "test-db-password",
    "storeSuperuserPassword": "test-store-superuser",
    "storeReplicationPassword": "test-store-replication",
    "storeBackupCredentials": "LTAI-test:test-backup-secret",
    "controllerTlsCert": "-----BEGIN CERTIFICATE-----\ntest\n-----END CERTIFICATE-----\n",
    "controllerTlsKey": "-----BEGIN PRIVATE KEY-----\ntest\n-----END PRIVATE KEY-----\n",
}
# What ACK offers in the mocks (cs.get_kubernetes_version); the newest is chosen by default.
ACK_VERSIONS = ["1.31.9-aliyun.1", "1.32.7-aliyun.1", "1.33.3-aliyun.1"]
LB_ADDRESS = "10.0.0.200"


@functools.cache
def _cluster_names() -> list[str]:
    return [c.name for c in load_topology(REPO_POLICIES / "topology.yaml").clusters]


def ack_api_server_ip(cluster: str) -> str:
    """The intranet API server address the mocked ACK reports for a cluster: an address of its
    first node vSwitch (where ACK puts the API server's intranet load balancer)."""
    names = _cluster_names()
    first_switch = ipaddress.ip_network(plan_for(names.index(cluster)).vswitch_cidrs[0])
    return str(first_switch.network_address + 10)


def agent_token_of(cluster: str) -> str:
    """The agent token the mocked controller 'issues' for a cluster (national agentTokens output)."""
    return f"test-agent-token-{cluster}"


def unwrap_secrets(value: Any, path: str, found: set[str]) -> Any:
    """Replace secret envelopes by their values, noting where they were."""
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            found.add(path)
            return unwrap_secrets(value.get("value"), path, found)
        return {k: unwrap_secrets(v, f"{path}.{k}" if path else k, found) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v, f"{path}[{i}]", found) for i, v in enumerate(value)]
    return value


@dataclass
class Registration:
    urn: str
    type: str
    name: str
    inputs: dict[str, Any]
    parent: str
    provider: str
    custom: bool
    secret_paths: set[str]


@dataclass
class RecordingMonitor(MockMonitor):
    """MockMonitor that also keeps each registration's parent and provider."""

    registrations: dict[str, Registration] = field(default_factory=dict)

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.registrations = {}

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            secret_paths: set[str] = set()
            raw = pulumi.runtime.rpc.deserialize_properties(request.object)
            self.registrations[response.urn] = Registration(
                urn=response.urn,
                type=request.type,
                name=request.name,
                inputs=unwrap_secrets(raw, "", secret_paths),
                secret_paths=secret_paths,
                parent=request.parent,
                provider=request.provider,
                custom=request.custom,
            )
        return response


class FederationMocks(pulumi.runtime.Mocks):
    """Outputs as a real deployment would give them: ids, RDS endpoint, national stack outputs."""

    def __init__(self, ack_versions: list[str] | None = None) -> None:
        self.ack_versions = list(ACK_VERSIONS if ack_versions is None else ack_versions)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        outputs = dict(args.inputs)
        if args.typ == "pulumi:pulumi:StackReference":
            clusters = load_topology(REPO_POLICIES / "topology.yaml").clusters
            tokens = {c.name: agent_token_of(c.name) for c in clusters if c.tier is not Tier.national}
            return args.name, {
                "name": args.name,
                "outputs": {**NATIONAL_OUTPUTS, "agentTokens": tokens},
                "secretOutputNames": ["databaseUrl", "agentTokens"],
            }
        if args.typ == "pulumi-python:dynamic/yiwang:AgentToken":
            outputs.update(
                {
                    "token_id": f"id-{args.inputs['cluster']}",
                    "agent_token": agent_token_of(args.inputs["cluster"]),
                }
            )
        if (
            args.typ == "kubernetes:core/v1:Service"
            and (args.inputs.get("spec") or {}).get("type") == "LoadBalancer"
        ):
            outputs["status"] = {"loadBalancer": {"ingress": [{"ip": LB_ADDRESS}]}}
        if args.typ == "alicloud:cs/managedKubernetes:ManagedKubernetes":
            address = ack_api_server_ip(args.inputs["name"])
            outputs["connections"] = [
                {
                    "apiServerIntranet": f"https://{address}:6443",
                    "serviceDomain": "*.test.cn-test.alicontainer.com",
                }
            ]
        if args.typ == "alicloud:rds/instance:Instance":
            outputs.update({"connectionString": "pgm-test.pg.rds.aliyuncs.com", "port": "5432"})
        if args.typ.startswith("kubernetes:helm.sh/v3:Release"):
            outputs["status"] = {"name": args.inputs.get("name"), "status": "deployed"}
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        if args.token == "alicloud:cs/getClusterCredential:getClusterCredential":
            return {"kubeConfig": TEST_KUBECONFIG, "clusterId": args.args.get("clusterId")}, []
        if args.token == "alicloud:index/getZones:getZones":
            ids = sorted({z for rs in ALICLOUD_REGIONS.values() for r in rs or () for z in r.zones})
            return {"ids": ids, "zones": [{"id": z} for z in ids]}, []
        if args.token == "alicloud:cs/getKubernetesVersion:getKubernetesVersion":
            return {
                "clusterType": "ManagedKubernetes",
                "metadatas": [{"version": v, "runtimes": []} for v in self.ack_versions],
            }, []
        if args.token == "alicloud:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": "1234567890123456",
                "arn": "acs:ram::1234567890123456:root",
                "identityType": "Account",
            }, []
        return {}, []


def project_name(project: str) -> str:
    return str(yaml.safe_load((INFRA_DIR / project / "Pulumi.yaml").read_text(encoding="utf-8"))["name"])


def stack_names(project: str) -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in (INFRA_DIR / project).glob("Pulumi.*.yaml"))


def stack_config_values(project: str, stack: str) -> dict[str, Any]:
    """Project defaults overlaid with the stack file, as the Pulumi CLI would resolve them."""
    project_doc = yaml.safe_load((INFRA_DIR / project / "Pulumi.yaml").read_text(encoding="utf-8"))
    name = project_doc["name"]
    values: dict[str, Any] = {
        f"{name}:{key}": decl["default"]
        for key, decl in (project_doc.get("config") or {}).items()
        if "default" in decl
    }
    stack_doc = yaml.safe_load((INFRA_DIR / project / f"Pulumi.{stack}.yaml").read_text(encoding="utf-8"))
    values.update((stack_doc or {}).get("config") or {})
    return values


def as_pulumi_config(values: dict[str, Any]) -> dict[str, str]:
    """Config as the engine passes it: strings, with objects and arrays JSON-encoded."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


def unwrap_dynamic_pickler() -> None:
    """Undo the pickler patches that Pulumi's dynamic providers leave behind.

    ``pulumi.dynamic.serialize_provider`` wraps ``pickle._Pickler._batch_setitems`` in a sorting
    wrapper every time it serializes a provider and never restores it, so each dynamic resource
    created in a process adds a call level; a test process that runs the national primary (82
    dynamic resources) a dozen times ends in a RecursionError. One ``pulumi up`` is one short
    process and never gets there; tests unwrap the chain before each run.
    """
    method: Any = pickle._Pickler._batch_setitems  # type: ignore[attr-defined]
    while method.__name__.startswith("batch_set_items_sorted") and method.__closure__:
        method = method.__closure__[0].cell_contents
    pickle._Pickler._batch_setitems = method  # type: ignore[attr-defined]


class StackRun:
    """One stack's program under mocks; :attr:`monitor` holds the registrations."""

    def __init__(
        self,
        project: str,
        stack: str,
        overrides: dict[str, Any] | None = None,
        ack_versions: list[str] | None = None,
    ) -> None:
        unwrap_dynamic_pickler()
        self.project = project
        self.stack = stack
        self.name = project_name(project)
        values = stack_config_values(project, stack)
        # member stacks hold no controller secrets (no admin token): only the national ones get them
        secrets = TEST_SECRETS if project == "national" else {}
        values.update({f"{self.name}:{k}": v for k, v in secrets.items()})
        values[f"{self.name}:kubeconfig"] = TEST_KUBECONFIG
        values.update(overrides or {})
        mocks = FederationMocks(ack_versions)
        self.monitor = RecordingMonitor(mocks)
        pulumi.runtime.set_mocks(mocks, project=self.name, stack=stack, preview=False, monitor=self.monitor)
        secret_keys = [f"{self.name}:{k}" for k in (*secrets, "kubeconfig")]
        pulumi.runtime.set_all_config(as_pulumi_config(values), secret_keys=secret_keys)
        self.resources: list[pulumi.Resource] = []
        pulumi.runtime.register_stack_transformation(self._collect)

    def _collect(self, args: pulumi.ResourceTransformationArgs) -> None:
        self.resources.append(args.resource)
        return None

    @property
    def config(self) -> StackConfig:
        return load_stack_config()

    def run(self) -> dict[str, Any]:
        """Run the program; returns its outputs (Outputs)."""
        config = self.config
        secrets = StackSecrets()
        tier = PROJECT_TIERS[self.project]
        if tier is Tier.national:
            return national_main(config, secrets)
        return member_main(config, secrets, tier)

    def settled(self) -> pulumi.Output[list[str]]:
        """Resolves once every resource the program created is registered."""
        return pulumi.Output.all(*[r.urn for r in self.resources])

    def of_type(self, prefix: str) -> list[Registration]:
        return [r for r in self.monitor.registrations.values() if r.type.startswith(prefix)]
