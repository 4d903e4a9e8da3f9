"""What the charts deploy, as the Pulumi programs configure them, turned into local processes.

- :func:`stack_release_values` runs a stack's program under the Pulumi mocks (as tests/infra does)
  and returns the exact ``values`` of each Helm release, with the Kubernetes Secrets it creates.
- :func:`render` runs ``helm template`` with those values.
- :class:`PodProcess` reads a rendered Deployment's container - command, args, env (plain values,
  ``secretKeyRef`` from given Secrets, ``fieldRef``) and ConfigMap volumes mounted as files - and
  runs it as a local process. The only things changed are the ones a pod would get from the
  cluster, each listed by the caller: loopback addresses and free ports instead of the pod IP and
  Service DNS, a directory per mount path instead of the container's filesystem.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pulumi
import yaml

from infra.yiwang_infra.testing import StackRun

REPO_ROOT = Path(__file__).resolve().parents[2]
CHARTS_DIR = REPO_ROOT / "charts"
KUBE_VERSION = "1.30.0"


@dataclass
class StackValues:
    releases: dict[str, dict[str, Any]]  # release name -> values, as the program passes them
    namespaces: dict[str, str]  # release name -> namespace
    secrets: dict[str, dict[str, str]]  # Kubernetes Secret name -> stringData


def stack_release_values(project: str, stack: str) -> StackValues:
    """Run the stack's program under mocks; the Helm releases' values and the Secrets it creates."""
    run: StackRun | None = None

    @pulumi.runtime.test
    def program() -> Any:
        nonlocal run
        run = StackRun(project, stack)
        run.run()
        return run.settled()

    program()
    assert run is not None
    releases, namespaces, secrets = {}, {}, {}
    for reg in run.monitor.registrations.values():
        if reg.type == "kubernetes:helm.sh/v3:Release":
            releases[reg.inputs["name"]] = as_plain(reg.inputs["values"])
            namespaces[reg.inputs["name"]] = reg.inputs["namespace"]
        elif reg.type == "kubernetes:core/v1:Secret":
            secrets[reg.inputs["metadata"]["name"]] = dict(reg.inputs.get("stringData") or {})
    return StackValues(releases, namespaces, secrets)


def as_plain(value: Any) -> Any:
    """Mocks hand numbers over as floats: whole ones back to int, as in the program's values."""
    if isinstance(value, dict):
        return {k: as_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def helm_binary() -> str | None:
    import shutil

    found = shutil.which("helm")
    bundled = REPO_ROOT / ".tools" / "bin" / "helm"
    return found or (str(bundled) if os.access(bundled, os.X_OK) else None)


def render(
    helm: str, chart: str, values: dict[str, Any], namespace: str, workdir: Path
) -> list[dict[str, Any]]:
    """``helm template`` of a chart with exactly these values (a JSON values file)."""
    values_file = workdir / f"{chart}-values.json"
    values_file.write_text(json.dumps(values), encoding="utf-8")
    proc = subprocess.run(
        [
            helm,
            "template",
            chart,
            str(CHARTS_DIR / chart),
            "--namespace",
            namespace,
            "--kube-version",
            KUBE_VERSION,
            "-f",
            str(values_file),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


@dataclass
class PodProcess:
    """A Deployment's first container as a local process."""

    deployment: dict[str, Any]
    docs: list[dict[str, Any]]
    secrets: dict[str, dict[str, str]]
    fields: dict[str, str]
    root: Path
    arg_changes: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def spec(self) -> dict[str, Any]:
        return dict(self.deployment["spec"]["template"]["spec"])

    @property
    def container(self) -> dict[str, Any]:
        return dict(self.spec["containers"][0])

    def mounts(self) -> dict[str, Path]:
        """Each ConfigMap volume's files written under ``root``; mount path -> local directory."""
        volumes = {v["name"]: v for v in self.spec.get("volumes", [])}
        out: dict[str, Path] = {}
        for mount in self.container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            local = self.root / mount["name"]
            local.mkdir(parents=True, exist_ok=True)
            if "configMap" in volume:
                config_map = find(self.docs, "ConfigMap", volume["configMap"]["name"])
                for file_name, text in config_map["data"].items():
                    (local / file_name).write_text(text, encoding="utf-8")
            elif "emptyDir" not in volume:
                raise AssertionError(f"volume {mount['name']} of an unsupported kind: {volume}")
            out[mount["mountPath"]] = local
        return out

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for item in self.container.get("env", []):
            if "value" in item:
                env[item["name"]] = str(item["value"])
                continue
            source = item["valueFrom"]
            if "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                assert ref["name"] in self.secrets, f"{item['name']}: no Secret {ref['name']}"
                env[item["name"]] = self.secrets[ref["name"]][ref["key"]]
            elif "fieldRef" in source:
                env[item["name"]] = self.fields[source["fieldRef"]["fieldPath"]]
            else:
                raise AssertionError(f"env {item['name']}: unsupported source {source}")
        return env

    def argv(self, mounts: dict[str, Path]) -> list[str]:
        command = list(self.container["command"])
        assert command == ["yiwang"], command
        argv = [str(Path(sys.executable).parent / "yiwang")]
        for arg in self.container.get("args", []):
            value = str(arg)
            value = self.arg_changes.get(value, value)
            for mount_path, local in mounts.items():
                if value == mount_path or value.startswith(mount_path + "/"):
                    value = str(local) + value[len(mount_path) :]
                    break
            argv.append(value)
        return argv + self.extra_args

    def start(self, log: Path) -> None:
        mounts = self.mounts()
        for changed in self.arg_changes:
            assert changed in [str(a) for a in self.container.get("args", [])], f"{changed} is not an arg"
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(self.root), **self.env()}
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.argv(mounts), env=env, cwd=self.root, stdout=out, stderr=subprocess.STDOUT
            )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def wait_for(
    url: str, proc: subprocess.Popen[bytes] | None, log: Path, budget_s: float = 60.0
) -> httpx.Response:
    """Poll ``url`` until it answers 200 (bounded by ``budget_s``); fail with the process log."""
    deadline = time.monotonic() + budget_s
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
            last = f"{response.status_code} {response.text[:300]}"
        except httpx.TransportError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready within {budget_s} s: {last}\n{log.read_text()[-3000:]}")


def iter_lines(path: Path) -> Iterator[str]:
    yield from path.read_text(encoding="utf-8", errors="replace").splitlines()
