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


@pytest.mark.parametrize(("chart", "values"), ci_cases())
def test_notes_tell_how_to_reach_the_service(helm: str, chart: str, values: Path, tmp_path: Path) -> None:
    copy = tmp_path / chart
    shutil.copytree(chart_dir(chart), copy)
    shutil.copy(copy / "templates" / "NOTES.txt", copy / "notes-under-test.txt")
    (copy / "templates" / "notes-probe.yaml").write_text(PROBE_TEMPLATE)
    out = run_helm(
        helm,
        "template",
        RELEASE,
        str(copy),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
        "--values",
        str(values),
        "--show-only",
        "templates/notes-probe.yaml",
    ).stdout
    notes = yaml.safe_load(out)["data"]["notes"]
    assert f".{NAMESPACE}.svc:" in notes, notes
    assert "kubectl --namespace" in notes and "port-forward svc/" in notes, notes
    assert "<no value>" not in notes, notes
