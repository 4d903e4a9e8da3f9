"""Monitoring that tells the truth: the `cluster` label the controller puts on its series survives
the national Prometheus's scrape and the federation, with real Prometheus servers (Debian's, on
loopback) configured by the yiwang-monitoring chart exactly as the Pulumi programs render it.

- a real controller (its /metrics names each member cluster: ``yiwang_cluster_up{cluster=...}``);
- a member Prometheus (province/guangdong's rendered configuration) scraping that province's agent
  metrics (a fixed text here: the agent has its own tests);
- the national Prometheus (national/primary's rendered configuration, with the chart's rules)
  scraping the controller and federating the member.

Local differences, each applied to the rendered configuration: loopback targets instead of the
Service names and intranet addresses, http instead of https for /federate, one federated member
instead of forty, 1 s intervals. A third server runs the national configuration with the
controller job's ``honor_labels`` removed, to show what the test would catch: the controller's
``cluster`` lands in ``exported_cluster`` there.
"""

from __future__ import annotations

import copy
import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from controller.topology.model import load_topology
from tests.agents.harness import live_controller, wait_for
from tests.conftest import free_port, need
from tests.deploy.pods import find, helm_binary, render, stack_release_values

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "charts" / "yiwang-monitoring" / "rules" / "yiwang-alerts.yml"
TOPOLOGY = REPO / "policies" / "topology.yaml"
MEMBER = "prov-guangdong"
AGENT_METRICS = f"""\
# TYPE kube_node_status_allocatable gauge
kube_node_status_allocatable{{node="{MEMBER}-kubernetes",resource="cpu",unit="core"}} 6400
# TYPE yiwang_agent_lease_valid gauge
yiwang_agent_lease_valid 1
"""


class Prometheus:
    def __init__(self, root: Path, name: str, config: dict[str, Any]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        folder = root / name
        folder.mkdir()
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log_path = folder / "prometheus.log"
        self.log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def query(self, q: str) -> list[dict[str, Any]]:
        assert self.proc.poll() is None, self.log_path.read_text()
        try:
            r = httpx.get(f"{self.url}/api/v1/query", params={"query": q}, timeout=2)
        except httpx.HTTPError:
            return []
        if r.status_code != 200:
            return []
        result: list[dict[str, Any]] = r.json()["data"]["result"]
        return result

    def series(self, q: str) -> list[dict[str, str]]:
        return [s["metric"] for s in self.query(q)]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()


def serve_text(text: str) -> http.server.ThreadingHTTPServer:
    body = text.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def rendered_config(project: str, stack: str, workdir: Path) -> dict[str, Any]:
    """prometheus.yml of the stack's yiwang-monitoring release, rendered with its exact values."""
    helm = helm_binary()
    need(helm is not None, "helm is not installed (make tools)")
    assert helm is not None
    values = stack_release_values(project, stack)
    docs = render(helm, "yiwang-monitoring", values.releases["yiwang-monitoring"],
                  values.namespaces["yiwang-monitoring"], workdir)  # fmt: skip
    config_map = find(docs, "ConfigMap", "yiwang-monitoring-config")
    config: dict[str, Any] = yaml.safe_load(config_map["data"]["prometheus.yml"])
    return config


def local(config: dict[str, Any], targets: dict[str, str]) -> dict[str, Any]:
    """The local differences: loopback targets per job, http, 1 s intervals, the real rules file."""
    config = copy.deepcopy(config)
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config.pop("alerting", None)
    if config.get("rule_files"):
        config["rule_files"] = [str(RULES)]
    jobs = []
    for job in config["scrape_configs"]:
        if job["job_name"] not in targets:
            continue
        job.update(scrape_interval="1s", scrape_timeout="1s")
        if job["job_name"] == "yiwang-federate":
            job["scheme"] = "http"
            (member,) = [sc for sc in job["static_configs"] if sc["labels"]["cluster"] == MEMBER]
            job["static_configs"] = [{**member, "targets": [targets["yiwang-federate"]]}]
        else:
            job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
        jobs.append(job)
    config["scrape_configs"] = jobs
    return config


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Prometheus, Prometheus, Prometheus]]:
    need(shutil.which("prometheus") is not None, "the Debian prometheus package is not installed")
    tmp_path = tmp_path_factory.mktemp("federation")
    national_config = rendered_config("national", "primary", tmp_path)
    member_config = rendered_config("province", "guangdong", tmp_path)
    live = live_controller(tmp_path / "yiwang.db").start()
    agent = serve_text(AGENT_METRICS)
    started: list[Prometheus] = []
    try:
        member = Prometheus(
            tmp_path, "member", local(member_config, {"yiwang-agent": f"127.0.0.1:{agent.server_port}"})
        )
        started.append(member)
        controller = live.url.removeprefix("http://")
        national_local = local(
            national_config, {"yiwang-controller": controller, "yiwang-federate": f"127.0.0.1:{member.port}"}
        )
        national = Prometheus(tmp_path, "national", national_local)
        started.append(national)
        without = copy.deepcopy(national_local)
        for job in without["scrape_configs"]:
            job.pop("honor_labels", None)
        careless = Prometheus(tmp_path, "careless", without)
        started.append(careless)
        yield national, member, careless
    finally:
        for server in started:
            server.stop()
        agent.shutdown()
        agent.server_close()
        live.stop()


def test_the_controllers_cluster_label_survives_scrape_and_federation(
    servers: tuple[Prometheus, Prometheus, Prometheus],
) -> None:
    national, _, _ = servers
    # the controller's own view of each member: yiwang_cluster_up{cluster=<member>}, site = who scraped
    up = wait_for(
        "the controller's series", lambda: national.series('yiwang_cluster_up{job="yiwang-controller"}'), 30
    )
    # one series per cluster of the topology, each still naming its cluster
    assert sorted(s["cluster"] for s in up) == sorted(c.name for c in load_topology(TOPOLOGY).clusters)
    assert all(s["site"] == "national-primary" for s in up)
    assert not national.series('{exported_cluster!=""}'), "a cluster label was overwritten"
    # series without a cluster label are about the site that scraped them
    (store,) = wait_for("yiwang_store_up", lambda: national.series("yiwang_store_up"), 10)
    assert (store["cluster"], store["site"], store["job"]) == (
        "national-primary",
        "national-primary",
        "yiwang-controller",
    )
    # the rule names the right cluster: pending Unreachable alerts carry the members' names
    pending = wait_for(
        "pending YiwangClusterUnreachable alerts",
        lambda: national.series('ALERTS{alertname="YiwangClusterUnreachable"}'),
        20,
    )
    assert {"prov-beijing", "prov-guangdong"} <= {a["cluster"] for a in pending}
    assert {a["site"] for a in pending} == {"national-primary"}


def test_federated_series_keep_the_members_labels(servers: tuple[Prometheus, Prometheus, Prometheus]) -> None:
    national, member, _ = servers
    (local_series,) = wait_for(
        "the member's scrape", lambda: member.series("kube_node_status_allocatable"), 30
    )
    assert (local_series["cluster"], local_series["site"]) == (MEMBER, MEMBER)
    (federated,) = wait_for(
        "the federated series",
        lambda: national.series(f'kube_node_status_allocatable{{cluster="{MEMBER}"}}'),
        30,
    )
    assert federated["site"] == MEMBER and federated["job"] == "yiwang-agent"
    assert federated["resource"] == "cpu"
    capacity = wait_for(
        "sum by cluster", lambda: national.query("sum by (cluster) (kube_node_status_allocatable)"), 10
    )
    assert [(c["metric"]["cluster"], c["value"][1]) for c in capacity] == [(MEMBER, "6400")]


def test_without_honor_labels_the_cluster_is_lost(servers: tuple[Prometheus, Prometheus, Prometheus]) -> None:
    """What the chart's honor_labels prevents (the issue's finding), shown on a real server."""
    _, _, careless = servers
    up = wait_for(
        "the controller's series", lambda: careless.series('yiwang_cluster_up{job="yiwang-controller"}'), 30
    )
    assert {s["cluster"] for s in up} == {"national-primary"}
    assert "prov-beijing" in {s["exported_cluster"] for s in up}
