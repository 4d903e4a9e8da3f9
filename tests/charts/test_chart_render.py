"""Every chart lints strictly and renders to valid Kubernetes 1.30 objects with every ci values file."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
from chart_helpers import KUBE_VERSION, chart_dir, ci_cases, ci_values_files, render, run_helm

# API groups served by CRDs, which the Kubernetes schemas cannot know.
CRD_GROUPS = ("monitoring.coreos.com/",)


def test_every_chart_has_scenarios() -> None:
    for chart in ("yiwang-controller", "yiwang-agent", "yiwang-monitoring"):
        assert len(ci_values_files(chart)) >= 3, f"{chart}: want at least 3 scenario files under ci/"


@pytest.mark.parametrize(("chart", "values"), ci_cases())
def test_lint_strict(helm: str, chart: str, values: Path) -> None:
    proc = run_helm(helm, "lint", "--strict", str(chart_dir(chart)), "--values", str(values), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[ERROR]" not in proc.stdout and "[WARNING]" not in proc.stdout, proc.stdout


@pytest.mark.parametrize(("chart", "values"), ci_cases())
def test_rendered_documents_are_valid_kubernetes(helm: str, chart: str, values: Path) -> None:
    docs = render(helm, chart, (values,))
    assert docs, "nothing rendered"
    for doc in docs:
        where = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if doc["apiVersion"].startswith(CRD_GROUPS):
            print(f"SKIP schema validation of {where}: {doc['apiVersion']} is a CRD type")
            continue
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{chart} with {values.name}: {where} is invalid: {exc}")


@pytest.mark.parametrize("chart", ["yiwang-controller", "yiwang-agent", "yiwang-monitoring"])
def test_defaults_render_no_crd_types(helm: str, chart: str) -> None:
    """With a minimal install (only the required values), nothing needs a CRD."""
    required = {
        "yiwang-controller": ("database.url=postgresql://yiwang@pg:5432/yiwang",),
        "yiwang-agent": (
            "controllerUrl=https://yiwang.example",
            "cluster.name=prov-beijing",
            "cluster.adcode=110000",
            "cluster.capacity.cpu=2100",
            "cluster.capacity.memoryGib=8400",
            "auth.token=t0ken",
        ),
        "yiwang-monitoring": ("cluster.name=prov-beijing",),
    }[chart]
    docs = render(helm, chart, (), required)
    assert not [d for d in docs if d["apiVersion"].startswith(CRD_GROUPS)]
    for doc in docs:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


@pytest.mark.parametrize(("chart", "values"), ci_cases())
def test_resource_names_fit_63_characters(helm: str, chart: str, values: Path) -> None:
    for doc in render(helm, chart, (values,)):
        name = doc["metadata"]["name"]
        assert len(name) <= 63, f"{doc['kind']} name too long ({len(name)}): {name}"
        for key, value in doc["metadata"].get("labels", {}).items():
            assert len(str(value)) <= 63, f"{doc['kind']}/{name}: label {key} value too long"
