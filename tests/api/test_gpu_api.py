"""Fractional GPUs through the API: ``gpu_milli`` in a job, fractional GPUs in agents' reports."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient


def job(**resources: Any) -> dict[str, Any]:
    return {"name": "train", "tenant": "guangdong", "resources": {"cpu": 2, "memory_gib": 4, **resources}}


def test_a_job_may_ask_for_thousandths_of_a_gpu(ready: TestClient) -> None:
    r = ready.post("/v1/jobs", json=job(gpu_milli=250))
    assert r.status_code == 201, r.text
    assert r.json()["spec"]["resources"]["gpu_milli"] == 250
    r = ready.post("/v1/jobs", json=job(gpu=2))  # whole GPUs are still accepted
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    "resources",
    [
        {"gpu": 1, "gpu_milli": 500},  # both forms, disagreeing
        {"gpu_milli": 64_001},  # more than 64 GPUs per replica
        {"gpu_milli": -1},
        {"gpu_milli": 0.5},  # thousandths are whole numbers
        {"gpu": 0.5},  # whole GPUs are whole
    ],
)
def test_bad_gpu_demands_are_422(ready: TestClient, resources: dict[str, Any]) -> None:
    r = ready.post("/v1/jobs", json=job(**resources))
    assert r.status_code == 422, r.text
    assert any("resources" in e["path"] for e in r.json()["errors"])


def test_the_plan_puts_a_shared_gpu_job_where_gpus_are(ready: TestClient) -> None:
    r = ready.post("/v1/plan", json=job(gpu_milli=500))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["cluster"] is not None
    clusters = {c["name"]: c for c in ready.get("/v1/clusters").json()["items"]}
    assert clusters[body["cluster"]]["capacity"]["gpu"] >= 1


def test_agents_report_fractional_gpus_and_bad_numbers_are_422(ready: TestClient) -> None:
    cap = {"cpu": 64.0, "memory_gib": 256.0, "gpu": 4}
    r = ready.post(
        "/v1/agents/prov-hubei/heartbeat",
        json={"capacity": cap, "allocated": {"cpu": 2.0, "memory_gib": 4.0, "gpu": 0.75}},
    )
    assert r.status_code == 200, r.text
    for bad in (-0.5, "1e999", True):
        r = ready.post(
            "/v1/agents/prov-hubei/heartbeat",
            json={"capacity": cap, "allocated": {"cpu": 2.0, "memory_gib": 4.0, "gpu": bad}},
        )
        assert r.status_code == 422, (bad, r.text)
