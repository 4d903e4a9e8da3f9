"""The prometheus-operator objects the charts render on request (ServiceMonitor of the controller
and the agent, PrometheusRule of the monitoring chart), validated against the operator's CRD
schemas: the models that cloudcoil-models-prometheus-operator generates from the
monitoring.coreos.com CRDs (prometheus-operator 0.80). A round trip (validate, dump what was set)
must give the object back, so an unknown or misspelt field fails as kubernetes-validate --strict
fails it for built-in kinds."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from chart_helpers import chart_dir, find_doc, render

operator = pytest.importorskip("cloudcoil.models.prometheus_operator.v1", reason="pip install -e '.[dev]'")

CASES = [
    ("yiwang-controller", "existing-secret-values.yaml", "ServiceMonitor"),
    ("yiwang-agent", "operator-values.yaml", "ServiceMonitor"),
    ("yiwang-monitoring", "operator-values.yaml", "PrometheusRule"),
]


def validate_strict(doc: dict[str, Any]) -> None:
    model = getattr(operator, doc["kind"])
    dumped = model.model_validate(doc).model_dump(by_alias=True, exclude_unset=True, mode="json")
    assert dumped == doc, f"fields the {doc['kind']} CRD does not know: {diff(doc, dumped)}"


def diff(sent: Any, kept: Any, path: str = "") -> list[str]:
    if isinstance(sent, dict) and isinstance(kept, dict):
        return [
            p
            for k, v in sent.items()
            for p in ([f"{path}.{k}"] if k not in kept else diff(v, kept[k], f"{path}.{k}"))
        ]
    if isinstance(sent, list) and isinstance(kept, list):
        return [
            p for i, (a, b) in enumerate(zip(sent, kept, strict=False)) for p in diff(a, b, f"{path}[{i}]")
        ]
    return [] if sent == kept else [path]


@pytest.mark.parametrize(("chart", "values", "kind"), CASES, ids=[c[0] for c in CASES])
def test_operator_objects_match_the_crd_schemas(helm: str, chart: str, values: str, kind: str) -> None:
    docs = render(helm, chart, (chart_dir(chart) / "ci" / values,))
    validate_strict(find_doc(docs, kind))


def test_a_misspelt_field_is_caught() -> None:
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "x"},
        "spec": {"selector": {}, "endpoints": [{"port": "http", "honourLabels": True}]},
    }
    with pytest.raises(AssertionError, match="honourLabels"):
        validate_strict(monitor)
    monitor["spec"]["endpoints"][0] = {"port": "http", "interval": "thirty seconds"}
    with pytest.raises(ValueError):
        validate_strict(monitor)


def test_service_monitors_keep_the_controllers_cluster_label(helm: str) -> None:
    docs = render(
        helm, "yiwang-controller", (chart_dir("yiwang-controller") / "ci" / "existing-secret-values.yaml",)
    )
    (endpoint,) = find_doc(docs, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["honorLabels"] is True
    targets = {r["targetLabel"] for r in endpoint["relabelings"]}
    assert {"job", "cluster", "site"} <= targets


def test_prometheus_rule_is_the_rules_file(helm: str) -> None:
    docs = render(
        helm, "yiwang-monitoring", (chart_dir("yiwang-monitoring") / "ci" / "operator-values.yaml",)
    )
    rule = find_doc(docs, "PrometheusRule")
    rules_file = yaml.safe_load((chart_dir("yiwang-monitoring") / "rules" / "yiwang-alerts.yml").read_text())
    assert rule["spec"]["groups"] == rules_file["groups"]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_off_by_default(helm: str) -> None:
    for chart, sets in (
        (
            "yiwang-agent",
            (
                "controllerUrl=https://c",
                "cluster.name=prov-beijing",
                "cluster.adcode=110000",
                "auth.token=t",
                "cluster.capacity.cpu=1",
                "cluster.capacity.memoryGib=1",
            ),
        ),
        ("yiwang-monitoring", ("cluster.name=prov-beijing", "cluster.adcode=110000")),
    ):
        kinds = {d["kind"] for d in render(helm, chart, (), sets)}
        assert not kinds & {"ServiceMonitor", "PrometheusRule"}, chart
