"""Render -> run: the controller and agent charts, rendered with the exact values the Pulumi
programs pass (national/primary and province/guangdong under mocks), started as local processes
from their Deployments (command, args, env, mounted ConfigMap files), and the chart-configured
agent registers and heartbeats with the chart-configured controller.

What differs from a cluster, and only that (asserted to be present in the rendered args):
- the pods' addresses: the controller binds 127.0.0.1 on a free port instead of 0.0.0.0:8080,
  the agent's /metrics 127.0.0.1 on a free port instead of :9102;
- the controller URL: the agent is given http://127.0.0.1:<port> instead of
  https://controller.yiwang.gov.internal (the intranet load balancer, its TLS and the private DNS
  record exist only in the cloud);
- the database: the Secret the program creates holds the RDS URL; here a throwaway PostgreSQL 15;
- no Kubernetes API server can run here: the agent's kubernetes executor gets ``--fake-kube``.
The agent's token is issued by the controller through the same AgentToken provider the national
stack runs (POST /v1/tokens), as the Secret ``yiwang-agent-token`` would hold it.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from controller.live import free_port
from infra.yiwang_infra.registration import AgentTokenProvider
from infra.yiwang_infra.testing import NATIONAL_OUTPUTS
from tests.conftest import need
from tests.deploy.pods import PodProcess, find, helm_binary, render, stack_release_values, wait_for

CONTROLLER_URL = NATIONAL_OUTPUTS["controllerUrl"]


@pytest.mark.slow
def test_chart_configured_agent_registers_with_chart_configured_controller(
    fresh_postgres: str, tmp_path: Path
) -> None:
    helm = helm_binary()
    need(helm is not None, "helm is not installed (make tools)")
    assert helm is not None
    national = stack_release_values("national", "primary")
    province = stack_release_values("province", "guangdong")
    controller_values = national.releases["yiwang-controller"]
    agent_values = province.releases["yiwang-agent"]
    assert controller_values["environment"] == "prod"
    assert {"topology.yaml", "failover.yaml"} <= set(controller_values["policies"]["files"])
    assert agent_values["controllerUrl"] == CONTROLLER_URL

    controller_docs = render(
        helm, "yiwang-controller", controller_values, national.namespaces["yiwang-controller"], tmp_path
    )
    agent_docs = render(helm, "yiwang-agent", agent_values, province.namespaces["yiwang-agent"], tmp_path)
    deployment = next(
        d
        for d in controller_docs
        if d["kind"] == "Deployment"
        and d["spec"]["template"]["metadata"]["labels"]["yiwang.gov.cn/role"] == "all"
    )

    # the Secrets the national program creates, the database URL pointed at the real PostgreSQL
    secrets = dict(national.secrets)
    assert secrets["yiwang-controller-database"]["url"].startswith("postgresql+psycopg://")
    secrets["yiwang-controller-database"] = {"url": fresh_postgres}
    admin_token = secrets["yiwang-controller-admin-token"]["token"]
    port = free_port()
    controller = PodProcess(
        deployment,
        controller_docs,
        secrets,
        fields={"metadata.name": "yiwang-controller-0", "metadata.namespace": "yiwang-system"},
        root=tmp_path / "controller",
        arg_changes={"0.0.0.0": "127.0.0.1", "8080": str(port)},
    )
    agent: PodProcess | None = None
    controller_log = tmp_path / "controller.log"
    agent_log = tmp_path / "agent.log"
    try:
        controller.start(controller_log)
        assert controller.env()["YIWANG_ENVIRONMENT"] == "prod"
        base = f"http://127.0.0.1:{port}"
        ready = wait_for(f"{base}/readyz", controller.proc, controller_log).json()
        assert ready["auth"] != "open"  # prod: the admin token from the Secret is in force

        # the agent token, issued as the national stack's AgentToken resource issues it
        issued = AgentTokenProvider().create(
            {"url": base, "token": admin_token, "cluster": "prov-guangdong", "readyTimeoutS": 30}
        )
        agent_token = issued.outs["agent_token"]
        agent_secrets = {**province.secrets, "yiwang-agent-token": {"token": agent_token}}
        metrics_port = free_port()
        agent_deployment = find(agent_docs, "Deployment")
        agent = PodProcess(
            agent_deployment,
            agent_docs,
            agent_secrets,
            fields={"metadata.name": "yiwang-agent-0", "metadata.namespace": "yiwang-system"},
            root=tmp_path / "agent",
            arg_changes={CONTROLLER_URL: base, "9102": str(metrics_port)},
            extra_args=["--metrics-addr", "127.0.0.1", "--fake-kube"],
        )
        agent.start(agent_log)
        wait_for(f"http://127.0.0.1:{metrics_port}/metrics", agent.proc, agent_log)

        headers = {"Authorization": f"Bearer {admin_token}"}
        view: dict[str, object] = {}
        for _ in range(150):  # bounded: up to ~30 s
            view = httpx.get(f"{base}/v1/clusters/prov-guangdong", headers=headers, timeout=5).json()
            if view.get("last_heartbeat"):
                break
            assert agent.proc is not None and agent.proc.poll() is None, agent_log.read_text()[-3000:]
            import time

            time.sleep(0.2)
        assert view.get("last_heartbeat"), (view, agent_log.read_text()[-3000:])
        assert view["health"] == "Ready", view
        # the capacity the chart passes (from the topology) is what the agent reports
        reported = view["reported"]
        assert isinstance(reported, dict), view
        assert reported.get("capacity", {}).get("cpu") == agent_values["cluster"]["capacity"]["cpu"], view
        # the issued token is good for this cluster only
        other = httpx.post(
            f"{base}/v1/agents/prov-hubei/heartbeat",
            headers={"Authorization": f"Bearer {agent_token}"},
            json={},
            timeout=5,
        )
        assert other.status_code == 403, other.text
    finally:
        if agent is not None:
            agent.stop()
        controller.stop()
