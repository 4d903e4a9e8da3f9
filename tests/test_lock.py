"""The lock (requirements/constraints.txt, `make lock`): every dependency pyproject.toml declares
is pinned exactly there, the exact pins of pyproject.toml agree with it, and the Makefile installs
with it (the slim base install as well as the test install)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from tools.lock import LOCK, canonical, read

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(.*)$")


def declared() -> dict[str, str]:
    """name -> version specifier of every base, dev and infra dependency."""
    project = PYPROJECT["project"]
    found: dict[str, str] = {}
    for requirement in [*project["dependencies"], *project["optional-dependencies"]["dev"],
                        *project["optional-dependencies"]["infra"]]:  # fmt: skip
        match = REQUIREMENT.match(requirement)
        assert match, requirement
        found[canonical(match[1])] = match[3].strip()
    return found


def test_every_declared_dependency_is_locked_exactly() -> None:
    pins = read()
    assert pins, f"{LOCK} is empty"
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        assert line.startswith("#") or re.fullmatch(r"[a-z0-9-]+==[A-Za-z0-9.+!-]+", line), line
    missing = sorted(set(declared()) - set(pins))
    assert not missing, f"not in the lock (run make lock): {missing}"


def test_exact_pins_of_pyproject_agree_with_the_lock() -> None:
    pins = read()
    for name, spec in declared().items():
        if spec.startswith("=="):
            assert pins[name] == spec[2:], f"{name}: pyproject {spec}, lock {pins[name]} (run make lock)"


def test_lower_bounds_of_pyproject_hold_in_the_lock() -> None:
    pins = read()
    for name, spec in declared().items():
        for bound in re.findall(r">=\s*([0-9][0-9.]*)", spec):
            have = tuple(int(p) for p in re.findall(r"\d+", pins[name])[:3])
            want = tuple(int(p) for p in bound.split("."))
            assert have[: len(want)] >= want, f"{name} {pins[name]} is below {spec}"


def test_the_makefile_installs_with_the_lock() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    installs = [line for line in makefile.splitlines() if "pip install" in line and "-e " in line]
    assert len(installs) == 2, installs  # the base (make demo/up) and the test install
    assert all("-c $(LOCK)" in line for line in installs), installs
    assert "LOCK := requirements/constraints.txt" in makefile
