"""The dashboard's time series from a real Prometheus (Debian's package, on loopback) scraping the
controller's own /metrics; when that Prometheus stops, GET /v1/metrics/series falls back to the
controller's in-memory samples and says so."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.agents.harness import LiveController, live_controller, wait_for
from tests.conftest import free_port, need


class ControllerScrape:
    """Prometheus scraping one controller's /metrics every second."""

    def __init__(self, root: Path, port: int, controller_port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "yiwang-controller",
                    "scrape_interval": "1s",
                    "scrape_timeout": "1s",
                    "static_configs": [{"targets": [f"127.0.0.1:{controller_port}"]}],
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

    def has(self, query: str) -> bool:
        try:
            r = httpx.get(f"{self.url}/api/v1/query", params={"query": query}, timeout=2)
            return bool(r.json()["data"]["result"])
        except (httpx.HTTPError, KeyError, ValueError):
            return False

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
def scraped(tmp_path: Path) -> Iterator[tuple[LiveController, ControllerScrape]]:
    need(shutil.which("prometheus") is not None, "the Debian prometheus package is not installed")
    prom_port = free_port()
    live = live_controller(
        tmp_path / "yiwang.db", series_prometheus_url=f"http://127.0.0.1:{prom_port}"
    ).start()
    prom = ControllerScrape(tmp_path, prom_port, live.port)
    try:
        yield live, prom
    finally:
        prom.stop()
        live.stop()


def series(live: LiveController) -> dict[str, Any]:
    with live.http() as c:
        r = c.get("/v1/metrics/series", params={"window_s": 300})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body


@pytest.mark.timeout(90)
def test_series_come_from_prometheus_and_fall_back_to_the_controllers_samples(
    scraped: tuple[LiveController, ControllerScrape],
) -> None:
    live, prom = scraped
    # The first scrape comes a few seconds after Prometheus starts; counters that grow after it
    # show as a rate.
    wait_for("Prometheus to scrape the controller", lambda: prom.has("yiwang_placements_total"), 30, 0.5)
    with live.http() as c:
        for name in live.controller.registry.clusters:
            assert c.post(f"/v1/agents/{name}/heartbeat").status_code == 200
        for i in range(4):  # placed on Xizang, whose agent never takes them
            body = {
                "name": f"placed-{i}",
                "tenant": "hubei",
                "constraints": {"allow_clusters": ["prov-xizang"]},
            }
            assert c.post("/v1/jobs", json=body).status_code == 201

    def placements_seen() -> dict[str, Any] | None:
        body = series(live)
        rate = {s["name"]: s for s in body["series"]}["placements_per_s"]["points"]
        return body if body["source"] == "prometheus" and any(v > 0 for _, v in rate) else None

    got = wait_for("the placements in Prometheus's series", placements_seen, 30, 0.5)
    assert got["source"] == "prometheus" and got["note"].startswith(f"from Prometheus at {prom.url}")
    by_name = {s["name"]: s for s in got["series"]}
    assert set(by_name) >= {"queue", "placements_per_s", "utilisation_cpu", "failovers", "fenced"}
    assert by_name["utilisation_cpu"]["unit"] == "%" and by_name["queue"]["points"]
    assert all(0 <= v <= 100 for _, v in by_name["utilisation_cpu"]["points"])

    prom.stop()
    fallback = series(live)
    assert fallback["source"] == "memory"
    assert fallback["note"].startswith(f"Prometheus at {prom.url} did not answer")
    assert {s["name"] for s in fallback["series"]} == set(by_name)
