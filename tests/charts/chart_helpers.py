"""Helpers for the Helm chart tests: find the tools, render charts, list ci values files.

helm comes from PATH or /work/main/.tools/bin/helm (`make tools`); promtool from PATH
(Debian `prometheus`, `make system`). A missing tool fails the run in CI as root (where
`make system`/`make tools` must have provided it) and skips with a reason elsewhere.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHARTS_DIR = REPO_ROOT / "charts"
CHART_NAMES: tuple[str, ...] = ("yiwang-controller", "yiwang-agent", "yiwang-monitoring")
KUBE_VERSION = "1.30.0"
RELEASE = "yw"
NAMESPACE = "yiwang-system"


def chart_dir(chart: str) -> Path:
    return CHARTS_DIR / chart


def ci_values_files(chart: str) -> list[Path]:
    return sorted((chart_dir(chart) / "ci").glob("*.yaml"))


def ci_cases() -> list[Any]:
    """(chart, values file) pairs for pytest parametrisation, with readable ids."""
    return [
        pytest.param(chart, path, id=f"{chart}/{path.name}")
        for chart in CHART_NAMES
        for path in ci_values_files(chart)
    ]


def must_be_present(tool: str, how: str) -> None:
    """Fail in CI as root (the tool must have been installed), skip with a reason otherwise."""
    message = f"{tool} not found on PATH: {how}"
    if os.environ.get("CI", "").lower() == "true" and os.geteuid() == 0:
        pytest.fail(f"{message} (CI=true as root, so it must be installed)", pytrace=False)
    print(f"SKIP: {message}")
    pytest.skip(message)


@functools.cache
def find_helm() -> str | None:
    found = shutil.which("helm")
    if found:
        return found
    bundled = REPO_ROOT / ".tools" / "bin" / "helm"
    return str(bundled) if os.access(bundled, os.X_OK) else None


@functools.cache
def find_promtool() -> str | None:
    return shutil.which("promtool")


def run_helm(
    helm: str, *args: str, check: bool = True, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([helm, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def template_args(chart: str, values_files: tuple[Path, ...] = (), sets: tuple[str, ...] = ()) -> list[str]:
    args = [
        "template",
        RELEASE,
        str(chart_dir(chart)),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
    ]
    for path in values_files:
        args += ["--values", str(path)]
    for item in sets:
        args += ["--set", item]
    return args


@functools.cache
def _render_cached(
    helm: str, chart: str, values_files: tuple[Path, ...], sets: tuple[str, ...]
) -> tuple[dict[str, Any], ...]:
    out = run_helm(helm, *template_args(chart, values_files, sets)).stdout
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


def render(
    helm: str, chart: str, values_files: tuple[Path, ...] = (), sets: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Rendered documents of a chart (cached per arguments; callers must not mutate them)."""
    return list(_render_cached(helm, chart, tuple(values_files), tuple(sets)))


def find_doc(docs: list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)]
    assert len(matches) == 1, f"expected one {kind} named *{name_suffix}, got {len(matches)}"
    return matches[0]
