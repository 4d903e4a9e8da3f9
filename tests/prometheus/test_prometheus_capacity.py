"""Capacity from a real Prometheus (Debian's package, on loopback) scraping two real agents'
/metrics with `cluster` labels; the scheduler uses it; when Prometheus stops, the controller falls
back to heartbeat capacity and the cluster status says so."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from controller.capacity import (
    SOURCE_HEARTBEAT,
    SOURCE_PROMETHEUS,
    SOURCE_TOPOLOGY,
    CapacityTracker,
    HeartbeatCapacitySource,
    PrometheusCapacitySource,
)
from controller.executors.simulated import SimNode, SimulatedExecutor
from controller.federation import EmbeddedFederation
from tests.agents.harness import LiveController, live_controller, wait_for
from tests.conftest import free_port, need

BJ, TJ = "prov-beijing", "prov-tianjin"
GIB = 2**30
NODES = {
    BJ: [SimNode("bj-1", 8, 32, 1), SimNode("bj-2", 8, 32, 1)],  # 16 cpu, 64 GiB, 2 gpu
    TJ: [SimNode("tj-1", 4, 8, 0)],  # 4 cpu, 8 GiB: far less than the topology declares
}


class Prometheus:
    def __init__(self, root: Path, port: int, targets: dict[str, int]) -> None:
        self.url = f"http://127.0.0.1:{port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "yiwang-agents",
                    "scrape_interval": "1s",
                    "scrape_timeout": "1s",
                    "static_configs": [
                        {"targets": [f"127.0.0.1:{p}"], "labels": {"cluster": c}} for c, p in targets.items()
                    ],
                }
            ],
        }
        (root / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = (root / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={root / 'prometheus.yml'}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def query(self, q: str) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": q}, timeout=2)
        result: list[dict[str, Any]] = r.json()["data"]["result"]
        return result

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited with {self.proc.returncode}")
            try:
                return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for("Prometheus /-/ready", ready, 20)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[LiveController, EmbeddedFederation, Prometheus]]:
    need(shutil.which("prometheus") is not None, "the Debian prometheus package is not installed")
    prom_port = free_port()
    live = live_controller(
        tmp_path / "yiwang.db",
        prometheus_url=f"http://127.0.0.1:{prom_port}",
        capacity_refresh_s=0.3,
        capacity_max_age_s=10.0,
        prometheus_timeout_s=1.0,
    ).start()
    live.set_failover(4.0, 2.0)
    metrics_ports = {BJ: free_port(), TJ: free_port()}
    fed = EmbeddedFederation(
        live.url,
        [BJ, TJ],
        lambda name: SimulatedExecutor(NODES[name]),
        poll_interval_s=0.1,
        metrics_ports=metrics_ports,
    )
    fed.start()
    prom = Prometheus(tmp_path, prom_port, metrics_ports)
    try:
        yield live, fed, prom
    finally:
        prom.stop()
        fed.stop()
        live.stop()


def plan(live: LiveController, cpu: float, allow: list[str]) -> dict[str, Any]:
    body = {
        "name": "probe",
        "tenant": "beijing",
        "resources": {"cpu": cpu, "memory_gib": 1},
        "constraints": {"allow_clusters": allow},
        "runtime": {"command": ["true"]},
    }
    with live.http() as c:
        r = c.post("/v1/plan", json=body)
        assert r.status_code == 200, r.text
        decision: dict[str, Any] = r.json()
        return decision


def test_prometheus_capacity_then_heartbeat_fallback(
    setup: tuple[LiveController, EmbeddedFederation, Prometheus],
) -> None:
    live, _fed, prom = setup
    prom.wait_ready()
    wait_for(
        "the first scrape of both agents",
        lambda: {r["metric"]["cluster"] for r in prom.query("kube_node_status_allocatable")} == {BJ, TJ},
        30,
    )
    source = PrometheusCapacitySource(prom.url, timeout_s=2.0)
    obs, reasons = source.observe()
    assert not reasons
    np.testing.assert_allclose(obs[BJ].allocatable, [16, 64, 2])
    np.testing.assert_allclose(obs[TJ].allocatable, [4, 8, 0])

    job_id = live.submit(
        "holds-3-cpu",
        [],
        resources={"cpu": 3, "memory_gib": 6},
        expected_runtime_s=600,
        constraints={"allow_clusters": [TJ]},
    )
    live.wait_job(job_id, lambda j: j["phase"] == "Running", "running")

    def requests_seen() -> bool:
        o, _ = source.observe()
        return TJ in o and o[TJ].requested is not None and list(o[TJ].requested) == [3.0, 6.0, 0.0]

    wait_for("the attempt's requests in Prometheus", requests_seen, 20)
    wait_for(
        "the controller to use Prometheus",
        lambda: (
            live.cluster(TJ)["capacity_source"] == SOURCE_PROMETHEUS
            and live.cluster(TJ)["observed"]["requested"]["cpu"] == 3.0
        ),
        20,
    )
    view = live.cluster(TJ)
    assert view["effective_capacity"] == {"cpu": 4.0, "memory_gib": 8.0, "gpu": 0.0}
    assert view["capacity"]["cpu"] > 4, "the topology declares more than the cluster really offers"
    assert live.cluster("prov-hebei")["capacity_source"] == SOURCE_TOPOLOGY  # no agent there

    def scheduler_sees_observed_capacity() -> None:
        too_big = plan(live, 8, [TJ])  # fits the topology's capacity, not the observed one
        assert too_big["cluster"] is None, too_big
        # 8 cores exceed the observed 4 even when empty: the gang filter (before capacity) says so
        assert (
            "1 gang (the gang of all replicas does not fit the cluster even when empty)" in too_big["summary"]
        ), too_big["summary"]
        assert plan(live, 2, [TJ])["cluster"] is None  # 4 - 3 in use = 1 free
        assert plan(live, 1, [TJ])["cluster"] == TJ
        assert plan(live, 8, [TJ, BJ])["cluster"] == BJ

    scheduler_sees_observed_capacity()

    prom.stop()  # Prometheus is gone: heartbeats carry the same numbers, and the status says so
    wait_for(
        "the fallback to heartbeats", lambda: live.cluster(TJ)["capacity_source"] == SOURCE_HEARTBEAT, 20
    )
    view = live.cluster(TJ)
    assert "did not answer" in view["capacity_note"], view["capacity_note"]
    assert view["effective_capacity"]["cpu"] == 4.0
    scheduler_sees_observed_capacity()


class _Fake:
    def __init__(self, results: dict[str, list[dict[str, Any]]]) -> None:
        self.results = results

    def custom_query(self, query: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        for key, value in self.results.items():
            if key in query:
                return value
        return []


def _series(cluster: str, resource: str, value: float) -> dict[str, Any]:
    return {"metric": {"cluster": cluster, "resource": resource}, "value": [0, str(value)]}


def test_outside_usage_counts_and_down_targets_fall_back() -> None:
    import time

    now = time.time()
    fake = _Fake(
        {
            "min by (cluster) (up)": [
                {"metric": {"cluster": "a"}, "value": [now, "1"]},
                {"metric": {"cluster": "b"}, "value": [now, "0"]},
            ],
            "timestamp": [
                {"metric": {"cluster": "a"}, "value": [now, str(now)]},
                {"metric": {"cluster": "b"}, "value": [now, str(now)]},
            ],
            "kube_node_status_allocatable": [
                _series("a", "cpu", 10),
                _series("a", "memory", 20 * GIB),
                _series("b", "cpu", 10),
            ],
            "kube_pod_container_resource_requests": [_series("a", "cpu", 7)],
        }
    )
    prom = PrometheusCapacitySource("http://fake", connect=lambda: fake)
    tracker = CapacityTracker(HeartbeatCapacitySource(lambda: {}, lambda: 10.0), prom)
    tracker.refresh()
    declared = np.array([[100.0, 100.0, 0.0], [100.0, 100.0, 0.0]])
    reserved = np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    cap, used = tracker.effective(["a", "b"], [None, None], declared, reserved)  # type: ignore[list-item]
    np.testing.assert_allclose(cap, [[10, 20, 0], [100, 100, 0]])
    np.testing.assert_allclose(used, [[7, 1, 0], [0, 0, 0]])  # outside usage (7 cpu) respected
    b = tracker.capacity_of("b", None)
    assert b.source == SOURCE_TOPOLOGY and "up == 0" in b.note
