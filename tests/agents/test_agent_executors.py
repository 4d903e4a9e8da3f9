"""The agent with the Kubernetes executor (fake API at our client boundary, calls in worker
threads) and the simulated executor: an unavailable backend never kills the loop; starts and
stops are retried until they go through. Plus the agent's /metrics and the `yiwang agent` CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from controller.agent_metrics import agent_registry
from controller.executors.base import ResourceAmounts
from controller.executors.kube_fake import FakeKubeClient
from controller.executors.kube_manifests import object_name
from controller.executors.kubernetes import KubernetesExecutor
from controller.executors.simulated import SimNode, SimulatedExecutor
from controller.federation import EmbeddedFederation
from tests.agents.harness import LiveController, wait_for
from tests.conftest import REPO, free_port

Fed = Callable[..., EmbeddedFederation]
BJ = "prov-beijing"
YIWANG = str(Path(sys.executable).parent / "yiwang")
ONLY_BJ = {"constraints": {"allow_clusters": [BJ]}}


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def test_kubernetes_backend_outage_is_retried_not_fatal(live: LiveController, federation: Fed) -> None:
    kube = FakeKubeClient()
    kube.unavailable = True
    executor = KubernetesExecutor(kube, capacity=ResourceAmounts(32, 128, 4))
    fed = federation([BJ], lambda name: executor)
    agent = fed.agents[BJ]
    assert agent.offload, "network-bound executor calls run in worker threads"

    job_id = live.submit(
        "k8s", ["python", "-c", "print(1)"], resources={"cpu": 2, "memory_gib": 4}, **ONLY_BJ
    )
    wait_for("start attempts against the down API", lambda: agent.stats.executor_unavailable >= 3)
    assert live.job(job_id)["phase"] == "Scheduled"
    assert agent.lease_valid(), "the loop goes on renewing while the executor is down"

    kube.unavailable = False
    ns, name = "tenant-beijing", object_name(job_id, 1)
    wait_for("the Job to be created", lambda: (ns, name) in {(k[1], k[2]) for k in kube._objects})
    kube.job_running(ns, name)
    live.wait_job(job_id, lambda j: j["phase"] == "Running", "running")

    # /metrics while it runs: allocatable of the cluster and the attempt's requests
    text = generate_latest(agent_registry(agent)).decode()
    got = samples(text)
    alloc = {lab["resource"]: v for n, lab, v in got if n == "kube_node_status_allocatable"}
    assert alloc == {"cpu": 32.0, "memory": 128 * 2**30, "nvidia_com_gpu": 4.0}
    req = {lab["resource"]: v for n, lab, v in got if n == "kube_pod_container_resource_requests"}
    assert req == {"cpu": 2.0, "memory": 4 * 2**30}
    assert ("yiwang_agent_lease_valid", {}, 1.0) in got
    assert ("yiwang_agent_active_attempts", {}, 1.0) in got

    # cancel while the API is down: the stop is kept and retried until the Job is deleted
    kube.unavailable = True
    with live.http() as c:
        assert c.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    wait_for("the stop to be pending", lambda: (job_id, 1) in agent.pending_stops)
    kube.unavailable = False
    wait_for("the Job to be deleted", lambda: any(d[2] == name for d in kube.deletions))
    wait_for("no stop left", lambda: not agent.pending_stops)


def test_a_withdrawn_grant_stops_the_running_job_on_its_cluster(
    live: LiveController, federation: Fed
) -> None:
    """End to end: Beijing runs a job of Hubei's that reads Guangdong's data set under an approved
    grant (a Kubernetes Job, fake API); Guangdong withdraws the grant; the job is cancelled with
    a message naming the data set, its attempt leaves Beijing's assignments and the agent
    deletes the Job."""
    kube = FakeKubeClient()
    fed = federation([BJ], lambda name: KubernetesExecutor(kube, capacity=ResourceAmounts(32, 128, 4)))
    agent = fed.agents[BJ]
    with live.http() as c:
        ds = {"id": "gd-tax", "owner": "guangdong", "size_bytes": 10**6, "classification": "general"}
        assert c.post("/v1/datasets", json={**ds, "locations": [BJ]}).status_code == 201
        grant = c.post("/v1/datasets/gd-tax/grants", json={"tenant": "hubei"}).json()["id"]
        assert c.post(f"/v1/datasets/gd-tax/grants/{grant}/approve").json()["status"] == "approved"
    job_id = live.submit("reads", ["python", "-c", "print(1)"], tenant="hubei", inputs=["gd-tax"], **ONLY_BJ)
    ns, name = "tenant-hubei", object_name(job_id, 1)
    wait_for("the Job to be created", lambda: (ns, name) in {(k[1], k[2]) for k in kube._objects})
    kube.job_running(ns, name)
    live.wait_job(job_id, lambda j: j["phase"] == "Running", "running")

    with live.http() as c:
        withdrawn = c.post(f"/v1/datasets/gd-tax/grants/{grant}/reject").json()
    assert withdrawn["stopped_jobs"] == {job_id: "Cancelled"}
    got = live.job(job_id)
    assert got["phase"] == "Cancelled" and "gd-tax" in got["message"]
    wait_for("the Job to be deleted", lambda: any(d[2] == name for d in kube.deletions))
    assert agent.stats.stops.get("Revoked", 0) >= 1


def test_simulated_cluster_failure_does_not_kill_the_agent(live: LiveController, federation: Fed) -> None:
    sim = SimulatedExecutor([SimNode("n1", 16, 64), SimNode("n2", 16, 64)])
    fed = federation([BJ], lambda name: sim)
    agent = fed.agents[BJ]
    fed.pause(BJ)
    sim.fail_cluster()  # the controller still has the last heartbeat's capacity: it places the job
    job_id = live.submit("sim", [], expected_runtime_s=1, **ONLY_BJ)
    live.wait_job(job_id, lambda j: j["phase"] == "Scheduled", "scheduled")
    fed.resume(BJ)
    wait_for("refused starts", lambda: agent.stats.executor_unavailable >= 2)
    assert live.job(job_id)["phase"] == "Scheduled"
    sim.recover_cluster()
    j = live.wait_job(job_id, lambda j: j["phase"] == "Succeeded", "succeeded")
    assert j["attempt"] == 1 and agent.stats.starts == 1


def test_yiwang_agent_cli_runs_a_simulated_cluster_with_metrics(live: LiveController, tmp_path: Path) -> None:
    port = free_port()
    cmd = [
        YIWANG, "agent", "--cluster", "prov-tianjin",
        "--controller-url", live.url, "--executor", "simulated", "--nodes", "2", "--cpu", "8",
        "--memory-gib", "16", "--metrics-port", str(port), "--metrics-addr", "127.0.0.1",
        "--poll-interval", "0.2",
    ]  # fmt: skip
    env = {**os.environ, "YIWANG_AGENT_TOKEN": "unused-in-dev"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for("the cluster to be Ready", lambda: live.cluster("prov-tianjin")["health"] == "Ready", 30)

        def scraped() -> list[tuple[str, dict[str, str], float]] | None:
            try:
                return samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text)
            except httpx.HTTPError:
                return None

        got = wait_for("/metrics", scraped, 20)
        alloc = {lab["resource"]: v for n, lab, v in got if n == "kube_node_status_allocatable"}
        assert alloc["cpu"] == 8.0 and alloc["memory"] == 16 * 2**30
        view = live.cluster("prov-tianjin")
        assert view["capacity_source"] == "heartbeat"
        assert view["effective_capacity"]["cpu"] == 8.0
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out.decode()[-2000:]


def test_yiwang_agent_cli_says_what_kubernetes_needs() -> None:
    cmd = [YIWANG, "agent", "--cluster", "prov-tianjin", "--executor", "kubernetes"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIWANG_AGENT_")}
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "--cpu" in r.stdout + r.stderr
