"""Alertmanager as the monitoring chart configures it: amtool checks the configuration and its
routes, and a real Alertmanager (Debian's prometheus-alertmanager, on loopback) delivers alerts
posted to it to the receiver each route names, through webhooks served by this test.

The configuration is the chart's own (defaults, the national ci values and what the national
Pulumi stacks pass); the only change for the live run is each receiver's integration (a webhook
to this test) and shorter group waits.
"""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from chart_helpers import chart_dir, find_doc, must_be_present, render

from tests.conftest import free_port

CHART = "yiwang-monitoring"
NATIONAL = chart_dir(CHART) / "ci" / "national-primary-values.yaml"
SETS = ("cluster.name=national-primary", "cluster.tier=national", "alertmanager.enabled=true")

# alert labels -> the receiver the routes must pick
ROUTES = [
    ({"alertname": "YiwangNationalStoreDegraded", "severity": "critical", "site": "national-primary"}, "national-oncall"),
    ({"alertname": "YiwangClusterUnreachable", "severity": "critical", "cluster": "prov-beijing"}, "federation-oncall"),
    ({"alertname": "YiwangClusterHeartbeatMissing", "severity": "warning", "cluster": "prov-tibet"}, "federation-oncall"),
    ({"alertname": "YiwangFencedExecutions", "severity": "warning", "site": "national-primary"}, "scheduling-team"),
    ({"alertname": "YiwangControllerDown", "severity": "critical", "cluster": "national-primary"}, "national-oncall"),
    ({"alertname": "YiwangJobsPendingTooLong", "severity": "warning"}, "platform-team"),
    # the national store's own state (Patroni and etcd): the national on-call, warnings too
    ({"alertname": "YiwangNationalStoreNoSyncStandby", "severity": "critical", "component": "national-store"}, "national-oncall"),
    ({"alertname": "YiwangNationalStoreNoPrimary", "severity": "critical", "component": "national-store"}, "national-oncall"),
    ({"alertname": "YiwangNationalQuorumDegraded", "severity": "warning", "component": "national-store"}, "national-oncall"),
]  # fmt: skip
# posted together with YiwangNationalStoreNoPrimary, which inhibits it (page once)
INHIBITED_LIVE = {"YiwangNationalStoreNoSyncStandby"}


@pytest.fixture(scope="module")
def amtool() -> str:
    path = shutil.which("amtool")
    if path is None:
        must_be_present(
            "amtool", "apt-get install -y --no-install-recommends prometheus-alertmanager (make system)"
        )
    assert path is not None
    return path


def alertmanager_config(
    helm: str, values: tuple[Path, ...] = (), sets: tuple[str, ...] = SETS
) -> dict[str, Any]:
    docs = render(helm, CHART, values, sets)
    config_map = find_doc(docs, "ConfigMap", "-alertmanager")
    config: dict[str, Any] = yaml.safe_load(config_map["data"]["alertmanager.yml"])
    return config


def write(config: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.mark.parametrize("values", [(), (NATIONAL,)], ids=["defaults", "national-primary-values"])
def test_amtool_checks_the_configuration_and_its_routes(
    helm: str, amtool: str, values: tuple[Path, ...], tmp_path: Path
) -> None:
    path = write(alertmanager_config(helm, values), tmp_path / "alertmanager.yml")
    proc = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for labels, receiver in ROUTES:
        args = [f"{k}={v}" for k, v in labels.items()]
        proc = subprocess.run(
            [
                amtool,
                "config",
                "routes",
                "test",
                f"--config.file={path}",
                f"--verify.receivers={receiver}",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 0, f"{labels} -> {proc.stdout.strip()} (want {receiver}) {proc.stderr}"


def test_prometheus_sends_to_the_charts_alertmanager(helm: str) -> None:
    docs = render(helm, CHART, (NATIONAL,))
    config = yaml.safe_load(find_doc(docs, "ConfigMap", "-config")["data"]["prometheus.yml"])
    (targets,) = [sc["targets"] for am in config["alerting"]["alertmanagers"] for sc in am["static_configs"]]
    service = find_doc(docs, "Service", "-alertmanager")
    assert f"{service['metadata']['name']}.yiwang-system.svc:9093" in targets
    assert "alertmanager.monitoring.svc:9093" in targets  # the configured one stays
    deployment = find_doc(docs, "Deployment", "-alertmanager")
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    prometheus = find_doc(docs, "Deployment", "yw-yiwang-monitoring")
    assert (
        not service["spec"]["selector"].items()
        <= prometheus["spec"]["template"]["metadata"]["labels"].items()
    )


def test_no_alertmanager_unless_enabled(helm: str) -> None:
    docs = render(helm, CHART, (), ("cluster.name=prov-beijing", "cluster.adcode=110000"))
    assert not [d for d in docs if d["metadata"]["name"].endswith("-alertmanager")]
    config = yaml.safe_load(find_doc(docs, "ConfigMap", "-config")["data"]["prometheus.yml"])
    assert "alerting" not in config


# --- a real Alertmanager ------------------------------------------------------------------------


class Hooks(http.server.ThreadingHTTPServer):
    """Webhook receivers: POST /<receiver> records the alert names delivered there."""

    def __init__(self, port: int) -> None:
        self.delivered: dict[str, list[str]] = {}
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.delivered.setdefault(self.path.strip("/"), []).extend(
                        a["labels"]["alertname"] for a in body["alerts"]
                    )
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        super().__init__(("127.0.0.1", port), Handler)


@pytest.fixture
def live_alertmanager(helm: str, tmp_path: Path) -> Iterator[tuple[str, Hooks]]:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        must_be_present(
            "prometheus-alertmanager", "apt-get install -y --no-install-recommends prometheus-alertmanager"
        )
    assert binary is not None
    hooks = Hooks(free_port())
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    config = alertmanager_config(helm)
    # local differences: each receiver posts to this test; groups are sent after 1 s, not 10-30 s
    for receiver in config["receivers"]:
        receiver["webhook_configs"] = [{"url": f"http://127.0.0.1:{hooks.server_port}/{receiver['name']}"}]

    def quick(route: dict[str, Any]) -> None:
        route["group_wait"] = "1s"
        for child in route.get("routes", []):
            quick(child)

    quick(config["route"])
    port = free_port()
    log = (tmp_path / "alertmanager.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={write(config, tmp_path / 'alertmanager.yml')}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, (tmp_path / "alertmanager.log").read_text()
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "Alertmanager not ready in 20 s"
            time.sleep(0.1)
        yield url, hooks
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
        hooks.shutdown()
        hooks.server_close()


def test_a_real_alertmanager_routes_each_alert_to_its_receiver(live_alertmanager: tuple[str, Hooks]) -> None:
    url, hooks = live_alertmanager
    alerts = [{"labels": labels} for labels, _ in ROUTES]
    # stale views of the controller whose database is down: inhibited by the store alert
    alerts.append(
        {"labels": {"alertname": "YiwangControllerViewsStale", "severity": "warning", "instance": "c1"}}
    )
    alerts[0]["labels"]["instance"] = "c1"
    r = httpx.post(f"{url}/api/v2/alerts", json=alerts, timeout=5)
    assert r.status_code == 200, r.text
    want: dict[str, list[str]] = {}
    for labels, receiver in ROUTES:
        if labels["alertname"] in INHIBITED_LIVE:
            continue
        want.setdefault(receiver, []).append(labels["alertname"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with hooks.lock:
            got = {k: sorted(v) for k, v in hooks.delivered.items()}
        if got == {k: sorted(v) for k, v in want.items()}:
            break
        time.sleep(0.2)
    assert got == {k: sorted(v) for k, v in want.items()}
    time.sleep(1.5)  # nothing more arrives: the inhibited alert stays silent
    with hooks.lock:
        delivered = [a for v in hooks.delivered.values() for a in v]
        assert "YiwangControllerViewsStale" not in delivered
        assert not INHIBITED_LIVE & set(delivered)
