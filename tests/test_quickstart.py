"""The README's quick start, run as written: `yiwang up` in the background, then every command of
the README's quick-start block in one bash session, each output checked against the one shown.

Matching: job ids are masked; the README's port 8080 becomes the test's port; every line the
README shows for a command (whitespace collapsed; a line `...` elides) must appear in the real
output, in order. The banner of `yiwang up` is checked the same way.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port

README = REPO / "README.md"
JOB_ID = re.compile(r"\b[0-9a-f]{22}\b")


def blocks(marker: str) -> list[tuple[str, list[str]]]:
    """(command, output lines) of the ```console block after ``marker`` in the README."""
    text = README.read_text(encoding="utf-8")
    start = text.index(marker)
    body = text[text.index("```console\n", start) + len("```console\n") :]
    body = body[: body.index("```")]
    steps: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
    return steps


def norm(line: str, port: int) -> str:
    return " ".join(JOB_ID.sub("ID", line.replace("8080", str(port))).split())


def check(expected: list[str], actual: str, port: int, what: str) -> None:
    got = [norm(x, port) for x in actual.splitlines()]
    i = 0
    for want in (norm(x, port) for x in expected):
        if want in ("", "..."):
            continue
        while i < len(got) and got[i] != want:
            i += 1
        assert i < len(got), f"{what}: expected line {want!r} not found in order in:\n{actual}"
        i += 1


def test_every_file_the_readme_names_in_examples_exists_and_is_used() -> None:
    text = README.read_text(encoding="utf-8")
    named = set(re.findall(r"examples/[\w.-]+\.(?:ya?ml|json)", text))
    present = {f"examples/{p.name}" for p in (REPO / "examples").iterdir()}
    assert named == present
    commands = " ".join(cmd for cmd, _ in blocks("<!-- quickstart:steps -->"))
    assert all(name in commands for name in present), "every example is exercised by the quick start"


def test_the_readme_quick_start_runs_as_shown(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    env.pop("YIWANG_ADMIN_TOKEN", None)
    env.pop("YIWANG_URL", None)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    log = tmp_path / "up.log"
    with log.open("w") as out:
        up = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "controller.cli",
                "up",
                "--port",
                str(port),
                "--workdir",
                str(tmp_path / "up"),
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        for _ in range(600):  # bounded: at most about 120 s for 42 agents to register
            if "Ctrl-C to stop." in log.read_text() or up.poll() is not None:
                break
            time.sleep(0.2)
        banner = log.read_text()
        assert "Ctrl-C to stop." in banner, banner
        (start_cmd, shown_banner) = blocks("<!-- quickstart:up -->")[0]
        assert start_cmd in ("make up", "yiwang up")
        check([x for x in shown_banner if "state" not in x], banner, port, "banner")

        steps = blocks("<!-- quickstart:steps -->")
        script = ["set -o pipefail"]
        for n, (cmd, _) in enumerate(steps):
            script += [f"echo '@@step {n}'", cmd.replace("8080", str(port)) + " 2>&1", 'echo "@@rc $?"']
        r = subprocess.run(
            ["bash", "--noprofile", "--norc", "-c", "\n".join(script)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        parts = re.split(r"^@@step \d+\n", r.stdout, flags=re.M)[1:]
        assert len(parts) == len(steps), r.stdout + r.stderr
        for (cmd, shown), part in zip(steps, parts, strict=True):
            output, rc = part.rsplit("@@rc ", 1)
            expect_fail = any(line.startswith("error:") for line in shown)
            assert (int(rc) != 0) == expect_fail, f"{cmd}: exit {rc.strip()}\n{output}"
            check(shown, output, port, cmd)
    finally:
        up.send_signal(signal.SIGINT)
        try:
            code = up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            up.kill()
            pytest.fail("yiwang up did not stop on Ctrl-C (SIGINT)")
    assert code == 0, log.read_text()
    assert "stopping" in log.read_text()
