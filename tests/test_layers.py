"""Layers as an allow-list: every module under controller/ belongs to exactly one layer, imports
only from its own layer or lower ones, and no import cycle exists between modules, counting
lazy (function-level) and TYPE_CHECKING imports: every Import/ImportFrom node of the file.
(Written down and checked, as kopf does with import-linter; docs/architecture.md draws it.)"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

from tests.conftest import REPO

PKG = REPO / "controller"

# (layer, rank, module prefixes), top to bottom. A module may import its own layer or a layer
# of lower rank; layers of the same rank (scheduler, store, executors) may not import each other.
LAYERS: list[tuple[str, int, list[str]]] = [
    (
        "entry",
        6,
        [
            "controller.cli",
            "controller.demo",
            "controller.drills",
            "controller.sim",
            "controller.bench",
            "controller.agent_runtime",  # one agent process (yiwang agent)
            "controller.federation",  # many agents in one process (demo, drills)
            "controller.client",  # the HTTP client of the CLI and the demo
            "controller.live",  # live controllers for the tests, drills, demo and bench
        ],
    ),
    ("api", 5, ["controller.api"]),
    (
        "services",
        4,
        [
            # the use cases, one module each: submission, jobs (queries, cancel), scheduling
            # (plan, the cycle), clusters, agents, datasets, policies, policy_files, read_model,
            # monitoring, leadership (the lease and the loops), drill_reports
            "controller.services",
            "controller.service",  # the composition root that wires them (Controller)
            "controller.follower",
            "controller.registry",
            "controller.capacity",
            "controller.history",
            "controller.metrics",
            "controller.series",
            "controller.overview",
            "controller.security",
            "controller.denials",
            "controller.audit",
        ],
    ),
    ("agent", 3, ["controller.agent", "controller.agent_metrics"]),
    ("scheduler", 2, ["controller.scheduler"]),
    ("store", 2, ["controller.store"]),
    ("executors", 2, ["controller.executors"]),
    (
        "schemas",
        1,
        [
            "controller.schemas",
            "controller.jobs",
            "controller.assignments",
            "controller.datasets",
            "controller.policies",
            "controller.topology",
            "controller.settings",
        ],
    ),
    ("domain", 0, ["controller.domain", "controller.errors", "controller.data", "controller"]),
]
RANK = {name: rank for name, rank, _ in LAYERS}


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layers_of(module: str) -> list[str]:
    """Every layer one of whose prefixes is the module or a package holding it ("controller"
    alone names the package's own __init__ only)."""
    out = []
    for name, _, prefixes in LAYERS:
        for p in prefixes:
            if module == p or (p != "controller" and module.startswith(p + ".")):
                out.append(name)
    return out


def resolve(name: str, modules: Iterable[str]) -> str | None:
    """The module an imported name lives in: the name itself, else its longest module prefix
    (``controller.jobs.JobPhase`` -> ``controller.jobs``)."""
    known = set(modules)
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(source: str, module: str, is_package: bool, modules: Iterable[str]) -> set[str]:
    """The controller modules a file imports, from every Import/ImportFrom node anywhere in it:
    at the top, inside functions (lazy) and under ``if TYPE_CHECKING:``; relative ones resolved."""
    mods = set(modules)
    out: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            # ``from pkg import sub`` imports the submodule; ``from mod import name`` the module
            targets = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in mods else origin for a in node.names]
        for t in targets:
            if t == "controller" or t.startswith("controller."):
                r = resolve(t, mods)
                if r is not None and r != module:
                    out.add(r)
    return out


def import_graph(root: Path = REPO) -> dict[str, set[str]]:
    paths = {module_name(p, root): p for p in sorted((root / "controller").rglob("*.py"))}
    return {
        m: imports_of(p.read_text(encoding="utf-8"), m, p.name == "__init__.py", paths)
        for m, p in paths.items()
    }


def layer_violations(graph: Mapping[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in sorted(graph.items()):
        (own,) = layers_of(module)
        for target in sorted(targets):
            (theirs,) = layers_of(target)
            if theirs != own and RANK[theirs] >= RANK[own]:
                bad.append(f"{module} ({own}) imports {target} ({theirs})")
    return bad


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


GRAPH = import_graph()


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_every_module_is_in_exactly_one_layer(module: str) -> None:
    found = layers_of(module)
    assert len(found) == 1, f"{module} is in layers {found}: assign it to exactly one in LAYERS"


def test_imports_point_downward() -> None:
    assert layer_violations(GRAPH) == []


def test_no_import_cycles_lazy_or_type_checking_included() -> None:
    assert cycles(GRAPH) == []


def test_the_layer_prefixes_name_existing_modules() -> None:
    """A stale prefix (a module moved away) would make the allow-list wider than it reads."""
    for _, _, prefixes in LAYERS:
        for p in prefixes:
            assert any(m == p or m.startswith(p + ".") for m in GRAPH), f"no module under {p}"


def test_the_checker_sees_lazy_and_type_checking_imports(tmp_path: Path) -> None:
    """The scan itself: a lazy import and a TYPE_CHECKING import make a cycle and an upward
    import it reports; an unassigned module is refused."""
    pkg = tmp_path / "controller"
    (pkg / "store").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "store" / "__init__.py").write_text("")
    (pkg / "store" / "lazy.py").write_text("def f():\n    from controller import service\n")
    (pkg / "service.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from controller.store.lazy import f\n"
    )
    (pkg / "jobs.py").write_text("from .store import lazy\n")  # relative, upward (schemas -> store)
    graph = import_graph(tmp_path)
    assert graph["controller.store.lazy"] == {"controller.service"}
    assert graph["controller.service"] == {"controller.store.lazy"}
    assert graph["controller.jobs"] == {"controller.store.lazy"}
    assert cycles(graph) == [["controller.service", "controller.store.lazy"]]
    assert layer_violations(graph) == [
        "controller.jobs (schemas) imports controller.store.lazy (store)",
        "controller.store.lazy (store) imports controller.service (services)",
    ]
    assert layers_of("controller.nowhere") == []
