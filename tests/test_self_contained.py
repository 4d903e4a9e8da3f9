"""The repository runs with nothing beside it: no code path opens the reference folder outside it.

Three checks: no file in the repository names that folder; the session-wide audit hook installed
by conftest refuses any open under it (so every other test is also a check); and the main entry
points, run in a fresh interpreter with the same hook, complete.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from controller.data import DATA_DIR
from tests.conftest import OUTSIDE, REPO

# Built from parts so this file does not match itself.
PATTERN = re.compile(
    "|".join([r"\.\./" + "shared", r"""["']""" + "shared" + r"""["']\s*/""", r"/\s*" + r"""["']shared["']"""])
)
SCANNED = ["controller", "tests", "infra", "tools", "policies", "charts", "docs"]
TOP = ["Makefile", "pyproject.toml", "README.md"]
GUARD = {"tests/conftest.py"}  # names the folder once, to refuse it (OUTSIDE)


def repo_files() -> list[Path]:
    files = [REPO / name for name in TOP]
    for top in SCANNED:
        files += [p for p in (REPO / top).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return [
        p
        for p in files
        if p.suffix not in (".csv", ".pyc", ".png", ".ttc") and str(p.relative_to(REPO)) not in GUARD
    ]


def test_no_file_names_the_outside_reference_folder() -> None:
    hits = []
    for path in repo_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        hits += [f"{path.relative_to(REPO)}: {m.group(0)}" for m in PATTERN.finditer(text)]
    assert hits == []
    assert len(repo_files()) > 100  # the scan saw the tree


def test_the_guard_refuses_opens_under_the_outside_folder(tmp_path: Path) -> None:
    with pytest.raises(PermissionError, match="self-contained"):
        open(OUTSIDE / "data" / "china_provinces_32.csv")  # noqa: SIM115 - the open is the test
    with pytest.raises(PermissionError, match="self-contained"):
        Path(OUTSIDE / "data").read_text()
    assert (DATA_DIR / "china_provinces_32.csv").read_text(encoding="utf-8").startswith("adcode")


GUARDED = f"""
import os, sys
OUTSIDE = {str(OUTSIDE)!r}
def hook(event, args):
    if event in ("open", "os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes, os.PathLike)):
        p = os.path.abspath(os.fsdecode(args[0]))
        if p == OUTSIDE or p.startswith(OUTSIDE + os.sep):
            raise SystemExit("OPENED OUTSIDE THE REPOSITORY: " + p)
sys.addaudithook(hook)
"""

ENTRY_POINTS = {
    "policy generate + check": """
from controller.cli import main
import tempfile, shutil, pathlib
with tempfile.TemporaryDirectory() as tmp:
    d = pathlib.Path(tmp)
    for f in ("residency.yaml", "placement.yaml", "quota.yaml"):
        shutil.copy(pathlib.Path("policies") / f, d / f)
    assert main(["policy", "generate", "--out", str(d)]) == 0
    assert main(["policy", "check", str(d)]) == 0
""",
    "simulated federation, trace, replay setup, DR levels": """
from controller.sim.federation import federation
from controller.sim.replay import setup
from controller.drills.gbt20988 import LEVELS
assert len(federation().clusters) == 98
jobs, snap, meta = setup(limit=50)
assert len(jobs) == 50 and LEVELS
""",
    "demo": """
from controller.cli import main
import tempfile
with tempfile.TemporaryDirectory() as d:
    assert main(["demo", "--workdir", d]) == 0
""",
}


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_entry_points_never_open_the_outside_folder(name: str) -> None:
    r = subprocess.run(
        [sys.executable, "-c", GUARDED + ENTRY_POINTS[name]],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "OPENED OUTSIDE" not in r.stderr


def test_the_venv_is_made_with_the_interpreter_the_image_runs() -> None:
    """``make`` makes ``.venv`` with Debian's python3.11 where it can make a venv (the image's
    interpreter, Containerfile: PGO and LTO; docs/benchmarks.md, the interpreter), else with
    ``python3``; and this suite runs on the interpreter ``make`` chose."""
    repo = Path(__file__).resolve().parents[1]
    chosen = subprocess.run(
        ["make", "-s", "--no-print-directory", "python"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    debian = Path("/usr/bin/python3.11")
    usable = (
        debian.exists()
        and subprocess.run([str(debian), "-c", "import ensurepip, venv"], capture_output=True).returncode == 0
    )
    assert chosen == (str(debian) if usable else "python3")
    assert "python3-venv" in (repo / "Containerfile").read_text()  # the image's is Debian's too
    if usable and Path(sys.prefix) == repo / ".venv":
        assert os.path.realpath(sys._base_executable) == str(debian)
