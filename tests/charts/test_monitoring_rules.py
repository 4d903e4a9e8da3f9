"""Alert rules: promtool checks and unit tests, full coverage of the tests, and the Prometheus config."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_helpers import chart_dir, find_doc, render

CHART = "yiwang-monitoring"
RULES = chart_dir(CHART) / "rules" / "yiwang-alerts.yml"
RULES_TEST = chart_dir(CHART) / "rules" / "yiwang-alerts.test.yml"
REQUIRED_ALERTS = {
    "YiwangControllerDown",
    "YiwangControllerViewsStale",
    "YiwangClusterUnreachable",
    "YiwangClusterHeartbeatMissing",
    "YiwangClusterCapacityExhausted",
    "YiwangJobsPendingTooLong",
    "YiwangSchedulerDecisionLatencyHigh",
    "YiwangNationalStoreDegraded",
    "YiwangFencedExecutions",
    "YiwangNationalStoreNoSyncStandby",
    "YiwangNationalStoreNoPrimary",
    "YiwangNationalQuorumDegraded",
}


def run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=cwd, check=False)


def load_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_promtool_check_rules(promtool: str) -> None:
    proc = run([promtool, "check", "rules", str(RULES)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_unit_tests_pass(promtool: str) -> None:
    proc = run([promtool, "test", "rules", RULES_TEST.name], cwd=RULES_TEST.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr


def test_required_alerts_exist_with_severity_and_runbook() -> None:
    alerts = {rule["alert"]: rule for rule in load_rules() if "alert" in rule}
    assert set(alerts) == REQUIRED_ALERTS
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), name
    assert alerts["YiwangClusterCapacityExhausted"]["for"] == "10m"
    assert "0.9" in alerts["YiwangClusterCapacityExhausted"]["expr"]


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    tests = yaml.safe_load(RULES_TEST.read_text())
    assert tests["rule_files"] == [RULES.name]
    firing: set[str] = set()
    silent: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    assert firing >= REQUIRED_ALERTS, f"never shown firing: {REQUIRED_ALERTS - firing}"
    assert silent >= REQUIRED_ALERTS, f"never shown silent: {REQUIRED_ALERTS - silent}"


def test_every_recording_rule_is_tested() -> None:
    tests = yaml.safe_load(RULES_TEST.read_text())
    exprs = " ".join(check["expr"] for case in tests["tests"] for check in case.get("promql_expr_test", []))
    for rule in load_rules():
        if "record" not in rule:
            continue
        used_by = " ".join(other["expr"] for other in load_rules() if other is not rule)
        assert rule["record"] in exprs or rule["record"] in used_by, f"{rule['record']} is never tested"


def test_rules_configmap_is_the_rules_file(helm: str) -> None:
    values = chart_dir(CHART) / "ci" / "province-values.yaml"
    rules_cm = find_doc(render(helm, CHART, (values,)), "ConfigMap", "-rules")
    assert yaml.safe_load(rules_cm["data"]["yiwang-alerts.yml"]) == yaml.safe_load(RULES.read_text())


def prometheus_config(helm: str, values: Path) -> dict[str, Any]:
    config_map = find_doc(render(helm, CHART, (values,)), "ConfigMap", "-config")
    config: dict[str, Any] = yaml.safe_load(config_map["data"]["prometheus.yml"])
    return config


@pytest.mark.parametrize("values", sorted((chart_dir(CHART) / "ci").glob("*.yaml")), ids=lambda p: p.name)
def test_prometheus_config_passes_promtool(helm: str, promtool: str, values: Path, tmp_path: Path) -> None:
    config = prometheus_config(helm, values)
    # Point rule_files at the real rules so that promtool checks them as loaded by the server.
    config["rule_files"] = [str(RULES)] if config.get("rule_files") else []
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    proc = run([promtool, "check", "config", str(path)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("values", sorted((chart_dir(CHART) / "ci").glob("*.yaml")), ids=lambda p: p.name)
def test_every_local_series_carries_the_cluster_label(helm: str, values: Path) -> None:
    cluster = yaml.safe_load(values.read_text())["cluster"]["name"]
    config = prometheus_config(helm, values)
    assert config["global"]["external_labels"]["cluster"] == cluster
    for job in config["scrape_configs"]:
        if job["job_name"] == "yiwang-federate":
            continue
        assert {"target_label": "cluster", "replacement": cluster} in job["relabel_configs"], job["job_name"]
        assert {"target_label": "site", "replacement": cluster} in job["relabel_configs"], job["job_name"]
        # only the controller's labels are honoured (it names the member clusters); an agent's are not
        assert job.get("honor_labels", False) is (job["job_name"] == "yiwang-controller"), job["job_name"]


def test_province_scrapes_the_agent_and_does_not_federate(helm: str) -> None:
    config = prometheus_config(helm, chart_dir(CHART) / "ci" / "province-values.yaml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["yiwang-agent"]["static_configs"][0]["targets"] == [
        "yiwang-agent-metrics.yiwang-system.svc:9102"
    ]
    assert "yiwang-federate" not in jobs and "yiwang-controller" not in jobs


def test_national_federates_capacity_series_from_every_province(helm: str) -> None:
    values = chart_dir(CHART) / "ci" / "national-primary-values.yaml"
    config = prometheus_config(helm, values)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["yiwang-controller"]["static_configs"][0]["targets"] == [
        "yiwang-controller.yiwang-system.svc:8080"
    ]
    federate = jobs["yiwang-federate"]
    assert federate["metrics_path"] == "/federate"
    assert federate["honor_labels"] is True
    match = " ".join(federate["params"]["match[]"])
    for series in ("kube_node_status_allocatable", "kube_pod_container_resource_requests", "yiwang_"):
        assert series in match
    wanted = {t["cluster"]: t["address"] for t in yaml.safe_load(values.read_text())["federation"]["targets"]}
    got = {sc["labels"]["cluster"]: sc["targets"][0] for sc in federate["static_configs"]}
    assert got == wanted


def test_the_national_prometheus_scrapes_patroni_and_etcd_of_the_three_sites(helm: str) -> None:
    config = prometheus_config(helm, chart_dir(CHART) / "ci" / "national-primary-values.yaml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert len(jobs["yiwang-patroni"]["static_configs"][0]["targets"]) == 2
    etcd = jobs["yiwang-etcd"]["static_configs"][0]["targets"]
    assert len(etcd) == 3 and any("witness" in t for t in etcd)
    province = prometheus_config(helm, chart_dir(CHART) / "ci" / "province-values.yaml")
    assert "yiwang-patroni" not in {job["job_name"] for job in province["scrape_configs"]}
