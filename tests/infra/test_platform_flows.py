"""The platform's NetworkPolicies, flow by flow: each flow the platform needs is allowed, every
other one denied.

Per stack (one of each tier and mode): the program runs under the Pulumi mocks; its NetworkPolicy
and Namespace objects are taken as registered; the agent, monitoring and controller charts are
rendered with ``helm template`` and the exact values of their Helm releases, which gives the
pods' real labels and ports and the controller chart's own policy. The Spark operator's pods carry
the labels its pinned chart (kubeflow/spark-operator 2.5.2) gives them; tenant pods are a batch
job and a Spark driver and executor. Then every (source, destination, port) among those pods and a
set of addresses (the API server, the controller endpoints, another site, the internet, ...) is
judged by the evaluator (infra/yiwang_infra/netpol.py) and compared with the table of required
flows below, written from the platform's design, not from the policies.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pytest

from controller.executors.kube_manifests import KubeOptions, labels_for
from controller.topology.model import Tier, load_topology
from infra.yiwang_infra.config import StackConfig
from infra.yiwang_infra.netpol import Address, Cluster, Flow, Pod, pods_of
from infra.yiwang_infra.network_plan import plan_for
from infra.yiwang_infra.testing import LB_ADDRESS, StackRun, ack_api_server_ip
from tests.conftest import need
from tests.deploy.pods import as_plain, helm_binary, render

REPO_ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = load_topology(REPO_ROOT / "policies" / "topology.yaml")
NAMES = [c.name for c in TOPOLOGY.clusters]
STACKS = [
    ("national", "primary"),  # ack, controller active, federates every member
    ("national", "backup"),  # existing mode, controller standby
    ("province", "guangdong"),  # ack member
    ("province", "tianjin"),  # existing-mode member
    ("department", "mps"),
]
PORTS = [(53, "UDP"), (53, "TCP"), (22, "TCP"), (443, "TCP"), (5432, "TCP"), (6443, "TCP"), (8080, "TCP"),
         (9090, "TCP"), (9093, "TCP"), (9102, "TCP"), (9443, "TCP")]  # fmt: skip
SLB_HEALTH_CHECK = "100.64.0.0/10"


def block(name: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(plan_for(NAMES.index(name)).vpc_cidr)


def address_in(name: str, offset: int) -> str:
    return str(block(name).network_address + offset)


NATIONAL = [c.name for c in TOPOLOGY.clusters if c.tier is Tier.national]
MEMBERS = [c.name for c in TOPOLOGY.clusters if c.tier is not Tier.national]


@dataclass
class Platform:
    """One stack's rendered platform: the evaluator's cluster, its pods by role, the addresses."""

    config: StackConfig
    cluster: Cluster
    pods: dict[str, Pod]
    addresses: dict[str, Address]
    docs: list[dict[str, Any]]


def _run(project: str, stack: str) -> tuple[StackRun, StackConfig]:
    run: StackRun | None = None
    config: StackConfig | None = None

    @pulumi.runtime.test
    def program() -> Any:
        nonlocal run, config
        run = StackRun(project, stack)
        config = run.config
        run.run()
        return run.settled()

    program()
    assert run is not None and config is not None
    return run, config


@functools.cache
def platform(project: str, stack: str, workdir: Path) -> Platform:
    helm = helm_binary()
    need(helm is not None, "helm is not installed (make tools)")
    assert helm is not None
    run, config = _run(project, stack)
    manifests: list[dict[str, Any]] = [
        {"kind": "Namespace", "metadata": {"name": "kube-system", "labels": {}}},
    ]
    rendered: list[dict[str, Any]] = []
    for reg in run.monitor.registrations.values():
        if reg.type in ("kubernetes:core/v1:Namespace", "kubernetes:networking.k8s.io/v1:NetworkPolicy"):
            manifests.append(as_plain(reg.inputs))
        elif reg.type == "kubernetes:helm.sh/v3:Release" and reg.inputs["name"].startswith("yiwang-"):
            docs = render(
                helm, reg.inputs["name"], as_plain(reg.inputs["values"]), reg.inputs["namespace"], workdir
            )
            for doc in docs:
                doc["metadata"].setdefault("namespace", reg.inputs["namespace"])
            rendered += docs
    manifests += [d for d in rendered if d["kind"] == "NetworkPolicy"]
    cluster = Cluster.from_manifests(manifests)

    pods = {p.name: p for p in pods_of(rendered, "default")}
    roles = {
        "agent": pods.pop("yiwang-agent"),
        "prometheus": pods.pop("yiwang-monitoring"),
        "kube-dns": Pod("kube-system", "coredns", {"k8s-app": "kube-dns"}, {"dns": (53, "UDP")}),
        # kubeflow/spark-operator 2.5.2, release spark-operator: both Deployments' pod labels
        "spark-operator": Pod("spark-operator", "spark-operator-controller", {
            "app.kubernetes.io/name": "spark-operator", "app.kubernetes.io/instance": "spark-operator",
            "app.kubernetes.io/component": "controller"}, {"metrics": (8080, "TCP")}),
        "spark-webhook": Pod("spark-operator", "spark-operator-webhook", {
            "app.kubernetes.io/name": "spark-operator", "app.kubernetes.io/instance": "spark-operator",
            "app.kubernetes.io/component": "webhook"}, {"webhook": (9443, "TCP"), "metrics": (8080, "TCP")}),
    }  # fmt: skip
    for role, name in (("alertmanager", "yiwang-monitoring-alertmanager"), ("controller", "yiwang-controller"),
                       ("controller-api", "yiwang-controller-api")):  # fmt: skip
        if name in pods:
            roles[role] = pods.pop(name)
    assert not pods, f"pods without a role in this test: {sorted(pods)}"
    options = KubeOptions()
    for tenant in config.tenant_refs()[:2]:  # the cluster's own tenant and one guest (or national)
        base = labels_for(_assignment(tenant.name, config.cluster.name), options)
        ns = tenant.namespace
        roles[f"{ns}:job"] = Pod(ns, "job", base)
        roles[f"{ns}:driver"] = Pod(
            ns, "driver", {**base, "spark-role": "driver"}, {"spark-ui": (4040, "TCP")}
        )
        roles[f"{ns}:executor"] = Pod(ns, "executor", {**base, "spark-role": "executor"})

    own = config.cluster.name
    if config.network is not None:  # ack: the endpoints ACK reports
        api = {"api-server": Address(ack_api_server_ip(own), "api-server"),
               "kubernetes-service": Address(str(next(ipaddress.IPv4Network(config.network.service_cidr).hosts())),
                                             "kubernetes-service")}  # fmt: skip
    else:  # existing mode: somewhere in the site's block
        api = {"api-server": Address(address_in(own, 10), "api-server")}
    other_member = next(m for m in MEMBERS if m != own)
    addresses = {
        **api,
        "controller-primary": Address(LB_ADDRESS, "controller-lb-primary"),
        "controller-backup": Address(address_in("national-backup", 200), "controller-lb-backup"),
        "national-prometheus": Address(address_in("national-primary", 2**16 + 5), "national-prometheus-pod"),
        "member-endpoint": Address(address_in(other_member, 200), f"{other_member}-endpoint"),
        "slb-health-check": Address("100.64.3.4", "slb-health-check"),
        "internet": Address("203.0.113.9", "internet"),
        "database": Address(address_in("national-primary", 50), "rds"),
    }
    assert ipaddress.ip_address(LB_ADDRESS) in block("national-primary")
    return Platform(config, cluster, roles, addresses, rendered)


def _assignment(tenant: str, cluster: str) -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(
        job_id="00000000-0000-0000-0000-000000000001", attempt=1, tenant=tenant, cluster=cluster
    )


# --- the required flows, from the design -------------------------------------------------------


def in_blocks(ip: str, blocks: list[str]) -> bool:
    return any(ipaddress.ip_address(ip) in ipaddress.ip_network(b) for b in blocks)


def api_server(p: Platform) -> list[tuple[str, set[int]]]:
    """Where the API server is, as the design says: ACK's intranet endpoint (6443) and the
    `kubernetes` Service address (443); on an existing site, its reserved block (443, 6443)."""
    own = p.config.cluster.name
    if p.config.network is not None:
        service = next(ipaddress.IPv4Network(p.config.network.service_cidr).hosts())
        return [(f"{ack_api_server_ip(own)}/32", {6443}), (f"{service}/32", {443})]
    return [(str(block(own)), {443, 6443})]


def to_api_server(p: Platform, dst: Address, port: int) -> bool:
    return any(in_blocks(dst.ip, [cidr]) and port in ports for cidr, ports in api_server(p))


def required(p: Platform, src: str, dst: str, port: int, protocol: str) -> bool:
    """Whether the platform needs this flow (src/dst are roles or address names)."""
    national = p.config.cluster.tier is Tier.national
    controllers = ("controller", "controller-api")
    ours = src in p.pods and src != "kube-dns"
    national_blocks = [str(block(n)) for n in NATIONAL]
    if src in p.addresses:  # from outside the cluster: only what a pod accepts from anywhere/there
        ip = p.addresses[src].ip
        if dst in controllers:  # the API is served to the government network (and the SLB checks)
            return port == 8080 and protocol == "TCP"
        if dst == "spark-webhook":  # the API server's admission calls
            return port == 9443 and protocol == "TCP"
        if dst == "prometheus" and not national:  # the national federation pull, the SLB's checks
            return (port, protocol) == (9090, "TCP") and in_blocks(ip, [*national_blocks, SLB_HEALTH_CHECK])
        return False
    if dst in p.addresses:
        target = p.addresses[dst]
        if protocol != "TCP":
            return False
        if src == "agent":
            return to_api_server(p, target, port) or (port == 443 and in_blocks(target.ip, national_blocks))
        if src in ("spark-operator", "spark-webhook") or src.endswith(":driver"):
            return to_api_server(p, target, port)
        if src == "prometheus" and national:  # /federate of every member, through its endpoint
            return port == 443 and in_blocks(target.ip, [str(block(m)) for m in MEMBERS])
        if src in controllers:  # the national store: PostgreSQL at either national site
            return port == 5432 and in_blocks(target.ip, national_blocks)  # (the multi-host URL)
        return src == "kube-dns"  # kube-system is not the platform's: no policy there
    # pod to pod
    if dst == "kube-dns":
        return port == 53 and (ours or src == "kube-dns")
    if src == "prometheus" and dst == "agent":
        return (port, protocol) == (9102, "TCP")
    if src == "prometheus" and dst in controllers:
        return national and (port, protocol) == (8080, "TCP")
    if src == "prometheus" and dst == "alertmanager":
        return (port, protocol) == (9093, "TCP")
    if src == "kube-dns" and dst in controllers:  # open egress meets the open API port
        return (port, protocol) == (8080, "TCP")
    if src == "kube-dns" and dst == "spark-webhook":
        return (port, protocol) == (9443, "TCP")
    if ":" in src and ":" in dst:  # tenant pods: their own namespace, any port
        return src.split(":")[0] == dst.split(":")[0]
    return False


def mismatches(p: Platform) -> list[str]:
    endpoints: dict[str, Pod | Address] = {**p.pods, **p.addresses}
    found = []
    for src, source in endpoints.items():
        for dst, destination in endpoints.items():
            if src == dst or (src in p.addresses and dst in p.addresses):
                continue
            if "kube-dns" in (src, dst) and (src in p.addresses or dst in p.addresses):
                continue  # neither end is the platform's
            for port, protocol in PORTS:
                flow = Flow(source, destination, port, protocol)
                allowed = p.cluster.allows(flow)
                if allowed != required(p, src, dst, port, protocol):
                    why = "; ".join(p.cluster.denied_by(flow)) or "allowed"
                    found.append(f"{'allowed' if allowed else 'denied'} but {'not ' if allowed else ''}"
                                 f"required: {src} -> {dst}:{port}/{protocol} ({why})")  # fmt: skip
    return found


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("flows")


@pytest.mark.parametrize(("project", "stack"), STACKS, ids=[f"{p}/{s}" for p, s in STACKS])
def test_exactly_the_platform_flows_are_allowed(project: str, stack: str, workdir: Path) -> None:
    p = platform(project, stack, workdir)
    problems = mismatches(p)
    assert not problems, f"{len(problems)} flows differ from the design:\n" + "\n".join(problems[:60])


FlowCheck = Callable[[Platform], Flow]


def named_flows(p: Platform) -> dict[str, Flow]:
    """The flows the issue names, spelled out (the matrix above covers them too)."""
    pods, addr = p.pods, p.addresses
    flows = {
        "Prometheus scrapes the agent's /metrics": Flow(pods["prometheus"], pods["agent"], 9102),
        "the agent reaches the API server": Flow(pods["agent"], addr["api-server"], 6443),
        "the agent reaches the controller endpoint": Flow(pods["agent"], addr["controller-primary"], 443),
        "the agent reaches the backup controller endpoint": Flow(
            pods["agent"], addr["controller-backup"], 443
        ),
        "the agent resolves names": Flow(pods["agent"], pods["kube-dns"], 53, "UDP"),
        "a Spark driver reaches the API server": Flow(
            pods[f"{p.config.tenant_refs()[0].namespace}:driver"], addr["api-server"], 6443
        ),
    }
    if p.config.cluster.tier is Tier.national:
        flows["Prometheus scrapes the controller"] = Flow(pods["prometheus"], pods["controller"], 8080)
        flows["the national Prometheus pulls a member's /federate"] = Flow(
            pods["prometheus"], addr["member-endpoint"], 443
        )
        flows["an agent of another site reaches the controller"] = Flow(
            addr["member-endpoint"], pods["controller"], 8080
        )
    else:
        flows["the national Prometheus's pull reaches this one"] = Flow(
            addr["national-prometheus"], pods["prometheus"], 9090
        )
    return flows


def denied_flows(p: Platform) -> dict[str, Flow]:
    pods, addr = p.pods, p.addresses
    own, guest = (t.namespace for t in p.config.tenant_refs()[:2])
    return {
        "a tenant job reads the agent's metrics": Flow(pods[f"{own}:job"], pods["agent"], 9102),
        "a tenant job calls the API server": Flow(pods[f"{own}:job"], addr["api-server"], 6443),
        "a Spark executor calls the API server": Flow(pods[f"{own}:executor"], addr["api-server"], 6443),
        "a tenant job reaches another tenant": Flow(pods[f"{own}:job"], pods[f"{guest}:job"], 8080),
        "a tenant job reaches the internet": Flow(pods[f"{own}:job"], addr["internet"], 443),
        "the agent reaches the internet": Flow(pods["agent"], addr["internet"], 443),
        "the agent reaches another member": Flow(pods["agent"], addr["member-endpoint"], 443),
        "the internet reaches the agent's metrics": Flow(addr["internet"], pods["agent"], 9102),
        "Prometheus reaches a tenant pod": Flow(pods["prometheus"], pods[f"{own}:driver"], 4040),
        "another member pulls this Prometheus": Flow(addr["member-endpoint"], pods["prometheus"], 9090),
    }


@pytest.mark.parametrize(("project", "stack"), STACKS, ids=[f"{p}/{s}" for p, s in STACKS])
def test_the_named_flows(project: str, stack: str, workdir: Path) -> None:
    p = platform(project, stack, workdir)
    for what, flow in named_flows(p).items():
        assert p.cluster.allows(flow), f"{what}: {flow} denied by {p.cluster.denied_by(flow)}"
    for what, flow in denied_flows(p).items():
        assert not p.cluster.allows(flow), f"{what}: {flow} is allowed"
