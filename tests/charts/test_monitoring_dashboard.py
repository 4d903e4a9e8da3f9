"""The Grafana dashboard: valid JSON, the panels operators need, PromQL over known metrics only."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml
from chart_helpers import chart_dir, find_doc, render

CHART = "yiwang-monitoring"
DASHBOARD = chart_dir(CHART) / "dashboards" / "yiwang-federation.json"

# The series the controller and agents export (see docs/charts.md), plus histogram parts.
KNOWN_METRICS = {
    "yiwang_cluster_up",
    "yiwang_cluster_heartbeat_age_seconds",
    "kube_node_status_allocatable",
    "kube_pod_container_resource_requests",
    "yiwang_jobs",
    "yiwang_job_pending_age_seconds_max",
    "yiwang_scheduler_decision_seconds_bucket",
    "yiwang_scheduler_decision_seconds_sum",
    "yiwang_scheduler_decision_seconds_count",
    "up",
}
PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
}
# Grafana's own variables, replaced by plausible values before promtool parses the expression.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h", "$cluster": ".*"}


def panels() -> list[dict[str, Any]]:
    dashboard = json.loads(DASHBOARD.read_text())
    out: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out += panel.get("panels", [])
    return out


def expressions() -> list[str]:
    return [target["expr"] for panel in panels() for target in panel.get("targets", [])]


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords or labels."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", text)
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    names = set()
    call = r"(\s*(?:\(|\b(?:by|without)\b))?"  # a function call or an aggregation with a clause
    for match in re.finditer(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b" + call, text):
        word, is_call = match.group(1), match.group(2)
        if is_call or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def test_dashboard_parses_and_has_the_required_panels() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "yiwang-federation"
    titles = " | ".join(p["title"].lower() for p in panels())
    for wanted in ("jobs by phase", "cluster health", "cpu allocated vs allocatable", "latency p95"):
        assert wanted in titles, f"missing panel: {wanted}"
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_metric_name_extraction_sees_through_promql() -> None:
    expr = 'histogram_quantile(0.95, sum by (le) (rate(foo_bucket{job="x", le!="1"}[5m]))) / on (a) bar'
    assert metric_names(expr) == {"foo_bucket", "bar"}


def test_every_expression_uses_known_metrics_only() -> None:
    exprs = expressions()
    assert len(exprs) >= 6
    used: set[str] = set()
    for expr in exprs:
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= KNOWN_METRICS, f"unknown metric(s) {names - KNOWN_METRICS} in {expr!r}"
        used |= names
    assert {"yiwang_jobs", "yiwang_cluster_up", "yiwang_scheduler_decision_seconds_bucket"} <= used


def test_every_expression_parses(promtool: str, tmp_path: Path) -> None:
    """promtool has no PromQL parse command; it parses each expression as a recording rule."""
    rules = []
    for i, expr in enumerate(expressions()):
        for variable, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"unhandled Grafana variable in {expr!r}"
        rules.append({"record": f"dashboard:panel_expr_{i}", "expr": expr})
    path = tmp_path / "dashboard-exprs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dashboard_configmap_for_the_grafana_sidecar(helm: str) -> None:
    values = chart_dir(CHART) / "ci" / "national-primary-values.yaml"
    config_map = find_doc(render(helm, CHART, (values,)), "ConfigMap", "-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["namespace"] == "grafana"
    assert config_map["metadata"]["annotations"]["grafana_folder"] == "Yiwang"
    assert json.loads(config_map["data"]["yiwang-federation.json"]) == json.loads(DASHBOARD.read_text())
