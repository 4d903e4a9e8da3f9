"""ControllerRegistration's provider against a real controller (create_app + uvicorn on loopback)."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pulumi
import pytest
from pulumi.dynamic.dynamic import serialize_provider

from controller.live import LiveController
from controller.topology.model import load_topology
from infra.yiwang_infra.config import cluster_entry
from infra.yiwang_infra.registration import ControllerRegistration, RegistrationError, RegistrationProvider

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKEN = "infra-test-admin-token"
TOPOLOGY = load_topology(REPO_ROOT / "policies" / "topology.yaml")


@pytest.fixture(scope="module")
def controller_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("controller") / "yiwang.db"
    with LiveController(db, policies_dir=REPO_ROOT / "policies", admin_token=TOKEN, background=False) as live:
        yield live.url


def _entry(name: str, **changes: Any) -> dict[str, Any]:
    """A new cluster modelled on prov-hainan, under another name."""
    body = cluster_entry(TOPOLOGY.by_name()["prov-hainan"])
    body.update(name=name, **changes)
    return body


def _get(url: str, name: str) -> httpx.Response:
    return httpx.get(f"{url}/v1/clusters/{name}", headers={"Authorization": f"Bearer {TOKEN}"})


def test_create_update_recreate_delete(controller_url: str) -> None:
    provider = RegistrationProvider()
    props = {"url": controller_url, "token": TOKEN, "cluster": _entry("prov-infra-test")}
    assert _get(controller_url, "prov-infra-test").status_code == 404

    created = provider.create(props)
    assert created.id == "prov-infra-test"
    seen = _get(controller_url, "prov-infra-test").json()
    assert seen["capacity"]["cpu"] == props["cluster"]["capacity"]["cpu"]
    assert provider.read(created.id, created.outs).id == "prov-infra-test"

    # idempotent: the same body again is fine and changes nothing
    assert provider.create(props).id == "prov-infra-test"
    assert provider.diff(created.id, created.outs, props).changes is False

    # a changed body is an in-place update
    bigger = {
        **props,
        "cluster": _entry("prov-infra-test", capacity={"cpu": 999, "memory_gib": 3996, "gpu": 2}),
    }
    diff = provider.diff(created.id, created.outs, bigger)
    assert diff.changes is True and not diff.replaces
    provider.update(created.id, created.outs, bigger)
    assert _get(controller_url, "prov-infra-test").json()["capacity"]["cpu"] == 999

    # a new name replaces the registration
    renamed = {**props, "cluster": _entry("prov-infra-renamed")}
    assert provider.diff(created.id, created.outs, renamed).replaces == ["cluster"]

    provider.delete(created.id, bigger)
    assert _get(controller_url, "prov-infra-test").status_code == 404
    assert provider.read(created.id, bigger).id == ""  # gone: refresh drops it from the state
    provider.delete(created.id, bigger)  # deleting what is gone is not an error


def test_register_a_topology_cluster_verbatim(controller_url: str) -> None:
    provider = RegistrationProvider()
    body = cluster_entry(TOPOLOGY.by_name()["prov-guangdong"])
    provider.create({"url": controller_url, "token": TOKEN, "cluster": body})
    seen = _get(controller_url, "prov-guangdong").json()
    assert (seen["name"], seen["adcode"], seen["region"]) == ("prov-guangdong", "440000", "cn-guangdong")


def test_rejected_calls_raise(controller_url: str) -> None:
    provider = RegistrationProvider()
    with pytest.raises(RegistrationError, match=r"401|403"):
        provider.create({"url": controller_url, "token": "wrong", "cluster": _entry("prov-infra-denied")})
    invalid = _entry("prov-infra-invalid", capacity={"cpu": -1, "memory_gib": 1, "gpu": 0})
    with pytest.raises(RegistrationError, match="422"):
        provider.create({"url": controller_url, "token": TOKEN, "cluster": invalid})


def test_provider_survives_the_trip_to_the_dynamic_provider_process(
    controller_url: str, tmp_path: Path
) -> None:
    """Pulumi pickles the provider; its process cannot import this repository, so it must not need to."""
    blob = serialize_provider(RegistrationProvider())
    script = (
        "import base64, sys, dill\n"
        "assert not any('work/main' in p and 'site-packages' not in p for p in sys.path), sys.path\n"
        f"provider = dill.loads(base64.b64decode({blob!r}))\n"
        "props = {'url': sys.argv[1], 'token': sys.argv[2], 'cluster': __import__('json').loads(sys.argv[3])}\n"
        "print(provider.create(props).id)\n"
        "provider.delete('x', props)\n"
    )
    import json

    body = json.dumps(_entry("prov-infra-pickled"))
    result = subprocess.run(
        [sys.executable, "-c", script, controller_url, TOKEN, body],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "prov-infra-pickled"
    assert base64.b64decode(blob).find(b"infra.yiwang_infra") == -1


@pulumi.runtime.test
def test_registration_resource_keeps_the_token_secret() -> Any:
    from infra.yiwang_infra.testing import FederationMocks, RecordingMonitor

    monitor = RecordingMonitor(FederationMocks())
    pulumi.runtime.set_mocks(FederationMocks(), project="p", stack="s", preview=False, monitor=monitor)
    resource = ControllerRegistration("r", url="http://controller", token="t0ken", cluster=_entry("prov-x"))

    def check(_: Any) -> None:
        (registration,) = monitor.registrations.values()
        assert registration.type == "pulumi-python:dynamic/yiwang:ControllerRegistration"
        assert "token" in registration.secret_paths and "__provider" in registration.secret_paths
        assert registration.inputs["cluster"]["name"] == "prov-x"

    return resource.urn.apply(check)
