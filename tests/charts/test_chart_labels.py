"""Labels, selectors and the wiring between objects: what `helm template` alone would not catch."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_helpers import (
    CHART_NAMES,
    NAMESPACE,
    RELEASE,
    chart_dir,
    ci_cases,
    ci_values_files,
    find_doc,
    render,
)

SELECTOR_KEYS = {"app.kubernetes.io/name", "app.kubernetes.io/instance"}
COMMON_KEYS = SELECTOR_KEYS | {
    "helm.sh/chart",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/component",
    "yiwang.gov.cn/tier",
    "yiwang.gov.cn/cluster",
}


def ci(chart: str, name: str) -> Path:
    return chart_dir(chart) / "ci" / name


def workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item for item in container.get("env", [])}


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Whether a matchLabels selector selects an object with these labels (a subset test)."""
    return selector.items() <= labels.items()


@pytest.mark.parametrize(("chart", "values"), ci_cases())
def test_selectors_are_stable_and_match_pods(helm: str, chart: str, values: Path) -> None:
    docs = render(helm, chart, (values,))
    pods = {w["metadata"]["name"]: w["spec"]["template"] for w in workloads(docs)}
    selectors = {w["metadata"]["name"]: w["spec"]["selector"]["matchLabels"] for w in workloads(docs)}
    assert pods
    for name, selector in selectors.items():
        assert set(selector) == SELECTOR_KEYS, "selector must hold only the stable name/instance labels"
        assert matches(selector, pods[name]["metadata"]["labels"])
    for doc in docs:
        labels = doc["metadata"]["labels"]
        assert set(labels) >= COMMON_KEYS, f"{doc['kind']}/{doc['metadata']['name']} lacks common labels"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        if doc["kind"] == "Service":
            # The pods a Service selects serve what it exposes (the controller's role=all and
            # role=api pods both serve the REST API; Prometheus and Alertmanager have one each).
            assert doc["spec"]["type"] == "ClusterIP"
            selected = [p for p in pods.values() if matches(doc["spec"]["selector"], p["metadata"]["labels"])]
            assert selected, f"Service {doc['metadata']['name']} selects no pod"
            for pod in selected:
                ports = {p["name"] for p in pod["spec"]["containers"][0]["ports"]}
                for port in doc["spec"]["ports"]:
                    assert port["targetPort"] in ports
        if doc["kind"] == "NetworkPolicy":  # the controller chart's: all its pods serve the API
            for pod in pods.values():
                assert matches(doc["spec"]["podSelector"]["matchLabels"], pod["metadata"]["labels"])
        if doc["kind"] == "PodDisruptionBudget":
            # A budget counts the pods of exactly one workload, selected as that workload does.
            assert doc["spec"]["selector"]["matchLabels"] in selectors.values()
            covered = [
                n
                for n, pod in pods.items()
                if matches(doc["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"])
            ]
            assert len(covered) == 1, f"{doc['metadata']['name']} covers {covered}"


@pytest.mark.parametrize("chart", CHART_NAMES)
def test_selector_does_not_change_with_version_or_image(helm: str, chart: str) -> None:
    for values in ci_values_files(chart):
        before = workloads(render(helm, chart, (values,)))
        sets = ("image.tag=9.9.9", "commonLabels.team=x")
        if chart == "yiwang-monitoring":  # Alertmanager's version is its own image's
            sets += ("alertmanager.image.tag=9.9.9",)
        after = workloads(render(helm, chart, (values,), sets))
        assert [w["spec"]["selector"] for w in before] == [w["spec"]["selector"] for w in after]
        for workload in after:
            assert workload["metadata"]["labels"]["app.kubernetes.io/version"] == "9.9.9"


@pytest.mark.parametrize(("chart", "values"), ci_cases())
def test_pods_are_locked_down(helm: str, chart: str, values: Path) -> None:
    found = workloads(render(helm, chart, (values,)))
    assert found
    for workload in found:
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for container in pod["containers"]:
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["capabilities"]["drop"] == ["ALL"]
            assert ctx["seccompProfile"]["type"] == "RuntimeDefault"
            assert container["resources"]["requests"], "requests must be set"
            assert container["livenessProbe"] and container["readinessProbe"]


# --- controller -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "mode"),
    [("national-primary-values.yaml", "active"), ("national-backup-standby-values.yaml", "standby")],
)
def test_controller_command_env_and_probes(helm: str, values: str, mode: str) -> None:
    docs = render(helm, "yiwang-controller", (ci("yiwang-controller", values),))
    deployment = find_doc(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert [*container["command"], *container["args"]] == [
        "yiwang",
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
        "--policies",
        "/etc/yiwang/policies",
    ]
    env = env_of(container)
    assert env["YIWANG_MODE"]["value"] == mode
    secret = find_doc(docs, "Secret")
    for var, key in (("YIWANG_DATABASE_URL", "database-url"), ("YIWANG_ADMIN_TOKEN", "admin-token")):
        ref = env[var]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": secret["metadata"]["name"], "key": key}
        assert base64.b64decode(secret["data"][key])
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/etc/yiwang/policies"] == "policies"
    policies = find_doc(docs, "ConfigMap", "-policies")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["policies"]["configMap"]["name"] == policies["metadata"]["name"]
    for name, text in policies["data"].items():
        assert name.endswith(".yaml")
        assert isinstance(yaml.safe_load(text), dict), f"{name} is not a YAML mapping"
    assert find_doc(docs, "Deployment")["metadata"]["labels"]["yiwang.gov.cn/tier"] == "national"
    assert find_doc(docs, "PodDisruptionBudget")
    assert find_doc(docs, "NetworkPolicy")
    assert not [d for d in docs if d["kind"] == "ServiceMonitor"], "ServiceMonitor must be off by default"


def test_controller_existing_secrets_and_configmap(helm: str) -> None:
    docs = render(helm, "yiwang-controller", (ci("yiwang-controller", "existing-secret-values.yaml"),))
    assert not [d for d in docs if d["kind"] in ("Secret", "ConfigMap")]
    deployment = find_doc(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = env_of(container)
    assert env["YIWANG_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "yiwang-database",
        "key": "url",
    }
    assert env["YIWANG_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "yiwang-admin", "key": "token"}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["policies"]["configMap"]["name"] == "yiwang-policies"
    assert container["image"].endswith("@sha256:" + "0123456789abcdef" * 4)
    monitor = find_doc(docs, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_controller_generates_an_admin_token_when_none_is_given(helm: str) -> None:
    docs = render(helm, "yiwang-controller", (), ("database.url=postgresql://pg/yiwang",))
    token = base64.b64decode(find_doc(docs, "Secret")["data"]["admin-token"])
    assert len(token) >= 32


def test_controller_network_policy_restricts_when_asked(helm: str) -> None:
    docs = render(helm, "yiwang-controller", (ci("yiwang-controller", "national-primary-values.yaml"),))
    policy = find_doc(docs, "NetworkPolicy")["spec"]
    (ingress,) = policy["ingress"]
    assert ingress["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}
    } in ingress["from"]
    egress_ports = {p["port"] for rule in policy["egress"] for p in rule["ports"]}
    assert egress_ports == {53, 5432}


# --- agent ------------------------------------------------------------------------------


def test_agent_command_labels_and_token(helm: str) -> None:
    docs = render(helm, "yiwang-agent", (ci("yiwang-agent", "province-values.yaml"),))
    deployment = find_doc(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert [*container["command"], *container["args"]] == [
        "yiwang",
        "agent",
        "--url",
        "https://yiwang.national.gov.cn",
        "--cluster",
        "prov-beijing",
        "--executor",
        "kubernetes",
        "--metrics-port",
        "9102",
        "--cpu",
        "2100",
        "--memory-gib",
        "8400",
        "--gpu",
        "8",
    ]
    ref = env_of(container)["YIWANG_AGENT_TOKEN"]["valueFrom"]["secretKeyRef"]
    secret = find_doc(docs, "Secret")
    assert ref == {"name": secret["metadata"]["name"], "key": "agent-token"}
    expected = {
        "yiwang.gov.cn/tier": "province",
        "yiwang.gov.cn/cluster": "prov-beijing",
        "yiwang.gov.cn/adcode": "110000",
    }
    for doc in docs:
        assert expected.items() <= doc["metadata"]["labels"].items(), doc["metadata"]["name"]
    assert expected.items() <= pod["metadata"]["labels"].items()
    service = find_doc(docs, "Service", "-metrics")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9102, "targetPort": "metrics", "protocol": "TCP"}
    ]


def test_agent_without_adcode_has_no_adcode_label(helm: str) -> None:
    docs = render(helm, "yiwang-agent", (ci("yiwang-agent", "department-values.yaml"),))
    for doc in docs:
        labels = doc["metadata"]["labels"]
        assert labels["yiwang.gov.cn/tier"] == "department"
        assert "yiwang.gov.cn/adcode" not in labels


def rules_by_group(role: dict[str, Any]) -> dict[str, dict[str, set[str]]]:
    out: dict[str, dict[str, set[str]]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault(group, {})[resource] = set(rule["verbs"])
    return out


def test_agent_rbac_one_role_per_tenant_namespace(helm: str) -> None:
    docs = render(helm, "yiwang-agent", (ci("yiwang-agent", "province-values.yaml"),))
    roles = {d["metadata"]["namespace"]: d for d in docs if d["kind"] == "Role"}
    bindings = {d["metadata"]["namespace"]: d for d in docs if d["kind"] == "RoleBinding"}
    assert set(roles) == set(bindings) == {"tenant-110000", "tenant-110000-spark"}
    account = find_doc(docs, "ServiceAccount")["metadata"]["name"]
    needed = {"create", "get", "watch", "delete"}
    for namespace, role in roles.items():
        rules = rules_by_group(role)
        assert needed <= rules["batch"]["jobs"]
        assert needed <= rules["sparkoperator.k8s.io"]["sparkapplications"]
        assert all("*" not in verbs for group in rules.values() for verbs in group.values())
        binding = bindings[namespace]
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": role["metadata"]["name"],
        }
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}]
    cluster_role = find_doc(docs, "ClusterRole")
    cluster_rules = rules_by_group(cluster_role)
    assert set(cluster_rules) == {""}, "cluster-wide the agent only reads core objects"
    assert all(verbs <= {"get", "list", "watch"} for verbs in cluster_rules[""].values())
    cluster_binding = find_doc(docs, "ClusterRoleBinding")
    assert cluster_binding["roleRef"]["name"] == cluster_role["metadata"]["name"]


def test_agent_without_spark_operator(helm: str) -> None:
    docs = render(helm, "yiwang-agent", (ci("yiwang-agent", "department-values.yaml"),))
    (role,) = [d for d in docs if d["kind"] == "Role"]
    assert "sparkoperator.k8s.io" not in rules_by_group(role)


def test_agent_existing_secret_and_service_account(helm: str) -> None:
    docs = render(helm, "yiwang-agent", (ci("yiwang-agent", "existing-secret-values.yaml"),))
    assert not [d for d in docs if d["kind"] in ("Secret", "ServiceAccount")]
    deployment = find_doc(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "yiwang-agent-preprovisioned"
    ref = env_of(pod["containers"][0])["YIWANG_AGENT_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "yiwang-agent-token", "key": "token"}
    for doc in docs:
        if doc["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            assert doc["subjects"][0]["name"] == "yiwang-agent-preprovisioned"
