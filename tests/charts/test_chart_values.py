"""values.yaml is documented and values.schema.json covers it, closes it, and rejects bad values."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_helpers import CHART_NAMES, chart_dir, run_helm, template_args

KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.\"'-]+):(?:\s|$)")


def load_schema(chart: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((chart_dir(chart) / "values.schema.json").read_text())
    return schema


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref:
        target: dict[str, Any] = schema
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        return resolve(schema, target)
    return node


def is_passthrough(node: dict[str, Any]) -> bool:
    """An object the chart hands to Kubernetes or Prometheus as is (labels, affinity, ...)."""
    return node.get("type") == "object" and "properties" not in node


def walk_values(
    schema: dict[str, Any], node: dict[str, Any], values: Any, path: str
) -> list[tuple[str, dict[str, Any]]]:
    """(dotted path, schema node) for every value under a schema-controlled object."""
    found: list[tuple[str, dict[str, Any]]] = []
    node = resolve(schema, node)
    if isinstance(values, dict) and "properties" in node:
        for key, value in values.items():
            child_path = f"{path}.{key}" if path else key
            child = node["properties"].get(key)
            assert child is not None, f"value {child_path} is not described in values.schema.json"
            found.append((child_path, resolve(schema, child)))
            found += walk_values(schema, child, value, child_path)
    return found


@pytest.mark.parametrize("chart", CHART_NAMES)
def test_schema_covers_every_value(chart: str) -> None:
    schema = load_schema(chart)
    values = yaml.safe_load((chart_dir(chart) / "values.yaml").read_text())
    covered = walk_values(schema, schema, values, "")
    assert len(covered) > 20


@pytest.mark.parametrize("chart", CHART_NAMES)
def test_schema_closes_every_object_it_controls(chart: str) -> None:
    schema = load_schema(chart)
    open_objects: list[str] = []

    def visit(node: dict[str, Any], path: str) -> None:
        if "properties" in node:
            if node.get("additionalProperties") is not False:
                open_objects.append(path or "<root>")
            for key, child in node["properties"].items():
                visit(child, f"{path}.{key}" if path else key)
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                visit(node[key], f"{path}[{key}]")
        for key in ("anyOf", "oneOf", "allOf"):
            for i, child in enumerate(node.get(key, [])):
                visit(child, f"{path}<{key}{i}>")

    visit(schema, "")
    for name, definition in schema.get("definitions", {}).items():
        visit(definition, f"#/definitions/{name}")
    assert not open_objects, f"objects without additionalProperties: false: {open_objects}"


def documented_keys(values_file: Path, schema: dict[str, Any]) -> list[str]:
    """Keys of schema-controlled objects that have no comment on the line(s) right above."""
    missing: list[str] = []
    lines = values_file.read_text().splitlines()
    stack: list[tuple[int, str]] = []  # (indent, key) of the enclosing mappings
    for number, line in enumerate(lines):
        match = KEY_LINE.match(line)
        if not match or line.lstrip().startswith("#") or line.lstrip().startswith("- "):
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent_path = [key for _, key in stack]
        stack.append((indent, match["key"]))
        node = resolve(schema, schema)
        controlled = True
        for key in parent_path:
            node = resolve(schema, node.get("properties", {}).get(key, {}))
            if "properties" not in node:
                controlled = False
                break
        if not controlled:
            continue  # inside a pass-through object: documented at its parent
        previous = lines[number - 1].strip() if number else ""
        if not previous.startswith("#") and "#" not in line.split(":", 1)[1]:
            missing.append(".".join([*parent_path, match["key"]]))
    return missing


@pytest.mark.parametrize("chart", CHART_NAMES)
def test_every_value_is_documented_where_defined(chart: str) -> None:
    missing = documented_keys(chart_dir(chart) / "values.yaml", load_schema(chart))
    assert not missing, f"values without a comment: {missing}"


BAD_VALUES: list[Any] = [
    pytest.param(
        "yiwang-controller",
        ("database.url=postgresql://pg/yiwang", "mode=bogus"),
        "mode",
        id="controller-mode-bogus",
    ),
    pytest.param(
        "yiwang-controller",
        ("database.url=mysql://db/yiwang",),
        "database.url",
        id="controller-database-not-postgres",
    ),
    pytest.param(
        "yiwang-controller",
        ("database.url=postgresql://pg/yiwang", "replicas=2"),
        "replicas",
        id="controller-unknown-top-level-key",
    ),
    pytest.param(
        "yiwang-controller",
        ("database.url=postgresql://pg/yiwang", "service.type=LoadBalancer"),
        "service",
        id="controller-service-type-not-allowed",
    ),
    pytest.param(
        "yiwang-agent",
        ("controllerUrl=https://c.example", "cluster.name=prov-beijing", "auth.token=t"),
        "adcode",
        id="agent-province-without-adcode",
    ),
    pytest.param(
        "yiwang-agent",
        ("controllerUrl=https://c.example", "cluster.name=x", "cluster.tier=city", "auth.token=t"),
        "tier",
        id="agent-tier-bogus",
    ),
    pytest.param(
        "yiwang-agent",
        (
            "controllerUrl=https://c.example",
            "cluster.name=prov-beijing",
            "cluster.adcode=11",
            "auth.token=t",
        ),
        "adcode",
        id="agent-adcode-not-six-digits",
    ),
    pytest.param(
        "yiwang-agent",
        ("controllerUrl=ftp://c.example", "cluster.name=d", "cluster.tier=department", "auth.token=t"),
        "controllerUrl",
        id="agent-controller-url-scheme",
    ),
    pytest.param(
        "yiwang-agent",
        (
            "controllerUrl=https://c.example",
            "cluster.name=d",
            "cluster.tier=department",
            "auth.token=t",
            "tenantNamespaces[0]=Bad_NS",
        ),
        "tenantNamespaces",
        id="agent-namespace-not-dns-label",
    ),
    pytest.param(
        "yiwang-monitoring",
        ("cluster.name=national-primary", "federation.enabled=true", "federation.targets[0].cluster=p"),
        "address",
        id="monitoring-federation-target-without-address",
    ),
    pytest.param(
        "yiwang-monitoring",
        ("cluster.name=prov-beijing", "prometheus.retention=forever"),
        "retention",
        id="monitoring-retention-not-a-duration",
    ),
    pytest.param(
        "yiwang-monitoring",
        ("cluster.name=prov-beijing", "prometheus.extraExternalLabels.cluster=other"),
        "extraExternalLabels",
        id="monitoring-cluster-external-label-not-overridable",
    ),
]


@pytest.mark.parametrize(("chart", "sets", "mentions"), BAD_VALUES)
def test_schema_rejects_bad_values(helm: str, chart: str, sets: tuple[str, ...], mentions: str) -> None:
    proc = run_helm(helm, *template_args(chart, (), sets), check=False)
    assert proc.returncode != 0, f"helm template accepted {sets}"
    assert mentions in proc.stderr, proc.stderr


REQUIRED_VALUES: list[Any] = [
    pytest.param("yiwang-controller", (), "database.url or database.existingSecret", id="controller-db"),
    pytest.param(
        "yiwang-agent",
        ("cluster.name=prov-beijing", "cluster.adcode=110000", "auth.token=t"),
        "set controllerUrl",
        id="agent-controller-url",
    ),
    pytest.param(
        "yiwang-agent",
        (
            "controllerUrl=https://c.example",
            "cluster.name=prov-beijing",
            "cluster.adcode=110000",
            "cluster.capacity.cpu=2100",
            "cluster.capacity.memoryGib=8400",
        ),
        "auth.token or auth.existingSecret",
        id="agent-token",
    ),
    pytest.param(
        "yiwang-agent",
        (
            "controllerUrl=https://c.example",
            "cluster.name=prov-beijing",
            "cluster.adcode=110000",
            "auth.token=t",
        ),
        "set cluster.capacity.cpu and cluster.capacity.memoryGib",
        id="agent-capacity",
    ),
    pytest.param("yiwang-monitoring", (), "set cluster.name", id="monitoring-cluster-name"),
    pytest.param(
        "yiwang-monitoring",
        ("cluster.name=national-primary", "federation.enabled=true"),
        "federation.targets",
        id="monitoring-federation-without-targets",
    ),
]


@pytest.mark.parametrize(("chart", "sets", "message"), REQUIRED_VALUES)
def test_missing_required_values_fail_with_a_clear_message(
    helm: str, chart: str, sets: tuple[str, ...], message: str
) -> None:
    proc = run_helm(helm, *template_args(chart, (), sets), check=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


def test_controller_chart_ships_the_repositorys_policies(helm: str) -> None:
    """The policy files the controller chart mounts by default are the repository's own
    (policies/*.yaml, every one of them: topology, failover, placement, residency, quota), so a Helm
    install schedules exactly as the tests and the benchmarks do; each validates as its policy kind,
    and the rendered ConfigMap carries them all."""
    from controller.policies import validate_kind
    from controller.services.policy_files import load_policy_set

    repo = Path(__file__).resolve().parents[2]
    repo_files = {p.name: p for p in (repo / "policies").glob("*.yaml")}
    chart_files = {p.name: p for p in (chart_dir("yiwang-controller") / "policies").glob("*.yaml")}
    assert {"topology.yaml", "failover.yaml"} <= set(repo_files)
    assert set(chart_files) == set(repo_files), "cp policies/*.yaml charts/yiwang-controller/policies/"
    for name, path in repo_files.items():
        assert chart_files[name].read_bytes() == path.read_bytes(), (
            f"{name} differs: cp policies/*.yaml charts/yiwang-controller/policies/"
        )
        if name != "topology.yaml":
            validate_kind(name.removesuffix(".yaml"), yaml.safe_load(path.read_text()))
    proc = run_helm(
        helm, *template_args("yiwang-controller", (), ("database.url=postgresql+psycopg://u@h/d",))
    )
    (config_map,) = [d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "ConfigMap"]
    assert set(config_map["data"]) == set(repo_files)
    for name, text in config_map["data"].items():
        assert yaml.safe_load(text) == yaml.safe_load(repo_files[name].read_text()), name
    load_policy_set(repo / "policies")  # the set the chart ships loads as the controller loads it


@pytest.mark.parametrize(
    ("sets", "missing"),
    [
        pytest.param(("policies.shipped=false",), "", id="nothing"),
        pytest.param(
            ("policies.shipped=false", "policies.files.topology\\.yaml=x: 1"),
            "failover.yaml",
            id="no-failover",
        ),
        pytest.param(
            ("policies.shipped=false", "policies.files.failover\\.yaml=x: 1"),
            "topology.yaml",
            id="no-topology",
        ),
    ],
)
def test_controller_chart_refuses_to_render_without_topology_and_failover(
    helm: str, sets: tuple[str, ...], missing: str
) -> None:
    proc = run_helm(
        helm,
        *template_args("yiwang-controller", (), ("database.url=postgresql+psycopg://u@h/d", *sets)),
        check=False,
    )
    assert proc.returncode != 0
    assert (f"the policies have no {missing}" if missing else "set policies.files") in proc.stderr, (
        proc.stderr
    )


def test_deployed_controllers_run_in_prod(helm: str) -> None:
    """The default environment is prod (open auth, the shared agent token and SQLite refused)."""
    proc = run_helm(
        helm, *template_args("yiwang-controller", (), ("database.url=postgresql+psycopg://u@h/d",))
    )
    (deployment,) = [d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "Deployment"]
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["YIWANG_ENVIRONMENT"] == "prod"
