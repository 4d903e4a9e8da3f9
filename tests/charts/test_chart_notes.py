"""NOTES.txt renders for every scenario and tells how to reach the service.

`helm template` does not render NOTES.txt and `helm install --dry-run` needs a cluster, so the
test renders it through `tpl` in a throw-away copy of the chart.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from chart_helpers import KUBE_VERSION, NAMESPACE, RELEASE, chart_dir, ci_cases, run_helm

PROBE_TEMPLATE = """apiVersion: v1
kind: ConfigMap
metadata:
  name: notes-probe
data:
  notes: {{ tpl (.Files.Get "notes-under-test.txt") . | quote }}
"""


def render_notes(
    helm: str, chart: str, tmp_path: Path, values: tuple[Path, ...] = (), sets: tuple[str, ...] = ()
) -> str:
    """NOTES.txt of a chart rendered with these values (through `tpl` in a copy of the chart)."""
    copy = tmp_path / chart
    shutil.copytree(chart_dir(chart), copy)
    shutil.copy(copy / "templates" / "NOTES.txt", copy / "notes-under-test.txt")
    (copy / "templates" / "notes-probe.yaml").write_text(PROBE_TEMPLATE)
    args = ["template", RELEASE, str(copy), "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION]
    for path in values:
        args += ["--values", str(path)]
    for item in sets:
        args += ["--set", item]
    out = run_helm(helm, *args, "--show-only", "templates/notes-probe.yaml").stdout
    notes: str = yaml.safe_load(out)["data"]["notes"]
    return notes


@pytest.mark.parametrize(("chart", "values"), ci_cases())
def test_notes_tell_how_to_reach_the_service(helm: str, chart: str, values: Path, tmp_path: Path) -> None:
    notes = render_notes(helm, chart, tmp_path, (values,))
    assert f".{NAMESPACE}.svc:" in notes, notes
    assert "kubectl --namespace" in notes and "port-forward svc/" in notes, notes
    assert "<no value>" not in notes, notes


def test_controller_notes_mention_api_replicas_only_when_enabled(helm: str, tmp_path: Path) -> None:
    base = ("database.url=postgresql://pg/yiwang",)
    without = render_notes(helm, "yiwang-controller", tmp_path / "without", (), base)
    assert "YIWANG_ROLE=all" in without, without
    assert "YIWANG_ROLE=api" not in without and "-api" not in without, without
    with_api = render_notes(helm, "yiwang-controller", tmp_path / "with", (), (*base, "api.replicaCount=3"))
    assert "3 API replica(s) (YIWANG_ROLE=api, Deployment yw-yiwang-controller-api)" in with_api, with_api
    assert "yiwang.gov.cn/role=api" in with_api, with_api
