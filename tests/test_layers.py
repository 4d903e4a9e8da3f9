"""Layers import downward only: api -> service -> scheduler/store/registry -> topology/policies/models.
(Written down and checked, as kopf does with import-linter.)"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

PKG = REPO / "controller"
# module prefix -> prefixes it must never import
FORBIDDEN = {
    "controller.store": ["controller.api", "controller.service", "controller.scheduler", "controller.agent"],
    "controller.scheduler": ["controller.api", "controller.service", "controller.store", "controller.agent"],
    "controller.topology": [
        "controller.api",
        "controller.service",
        "controller.scheduler",
        "controller.store",
    ],
    "controller.executors": [
        "controller.api",
        "controller.service",
        "controller.scheduler",
        "controller.store",
    ],
    "controller.jobs": ["controller.api", "controller.service", "controller.scheduler", "controller.store"],
    "controller.datasets": [
        "controller.api",
        "controller.service",
        "controller.scheduler",
        "controller.store",
    ],
    "controller.service": ["controller.api"],
    "controller.agent": ["controller.api", "controller.service", "controller.store"],
}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


MODULES = sorted(PKG.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(REPO)))
def test_imports_point_downward(path: Path) -> None:
    module = ".".join(path.relative_to(REPO).with_suffix("").parts)
    for prefix, banned in FORBIDDEN.items():
        if module == prefix or module.startswith(prefix + "."):
            bad = {i for i in imports(path) for b in banned if i == b or i.startswith(b + ".")}
            assert not bad, f"{module} imports {sorted(bad)}"
