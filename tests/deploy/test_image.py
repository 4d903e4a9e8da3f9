"""The image, built for real with podman (base made locally with mmdebstrap: tools/image-base.sh)
and run as the controller chart's pod spec says: its command and args, its env (Secrets resolved
as the national stack creates them, the database a throwaway PostgreSQL on the host's loopback),
the rendered policies ConfigMap mounted read-only at its mountPath, the pod's user, a read-only root
filesystem, /tmp as the chart's emptyDir, all capabilities dropped; then GET /readyz.

Root only (rootful podman, apt-get); the base tarball is cached under .tools/images, so a rerun
only rebuilds the layers that changed.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from controller.live import free_port
from tests.conftest import need
from tests.deploy.pods import REPO_ROOT, PodProcess, helm_binary, render, stack_release_values, wait_for

IMAGE = "localhost/yiwang:test"
HOST_LOOPBACK = "10.0.2.2"  # slirp4netns allow_host_loopback: the host's 127.0.0.1 seen from the container


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_image_runs_the_controller_as_its_chart_says(fresh_postgres: str, tmp_path: Path) -> None:
    need(os.geteuid() == 0, "building and running the image needs root (rootful podman, apt-get)")
    helm = helm_binary()
    need(helm is not None, "helm is not installed (make tools)")
    assert helm is not None
    base = subprocess.run(
        ["bash", "tools/image-base.sh"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert base.returncode == 0, base.stderr[-3000:]
    base_image = base.stdout.strip().splitlines()[-1]
    build = subprocess.run(
        ["podman", "build", "--build-arg", f"BASE={base_image}", "-t", IMAGE, "-f", "Containerfile", "."],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]

    national = stack_release_values("national", "primary")
    docs = render(
        helm, "yiwang-controller", national.releases["yiwang-controller"], "yiwang-system", tmp_path
    )
    deployment = next(
        d
        for d in docs
        if d["kind"] == "Deployment"
        and d["spec"]["template"]["metadata"]["labels"]["yiwang.gov.cn/role"] == "all"
    )
    secrets = dict(national.secrets)
    secrets["yiwang-controller-database"] = {"url": fresh_postgres.replace("127.0.0.1", HOST_LOOPBACK)}
    pod = PodProcess(
        deployment,
        docs,
        secrets,
        fields={"metadata.name": "yiwang-controller-0", "metadata.namespace": "yiwang-system"},
        root=tmp_path / "pod",
    )
    spec, container = pod.spec, pod.container
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["capabilities"]["drop"] == ["ALL"]
    user = f"{spec['securityContext']['runAsUser']}:{spec['securityContext']['runAsGroup']}"
    port = free_port()
    name = f"yiwang-image-test-{port}"
    run = [
        "podman", "run", "-d", "--name", name, "--read-only", "--user", user, "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges",
        "--network", "slirp4netns:allow_host_loopback=true",
        "-p", f"127.0.0.1:{port}:{container['ports'][0]['containerPort']}",
        "--entrypoint", container["command"][0],
    ]  # fmt: skip
    for mount_path, local in pod.mounts().items():
        volume = next(v for v in spec["volumes"] if v["name"] in str(local))
        if "emptyDir" in volume:
            run += ["--tmpfs", f"{mount_path}:rw,size=64m,mode=1777"]
        else:
            for path in local.iterdir():
                path.chmod(0o644)
            local.chmod(0o755)
            run += ["-v", f"{local}:{mount_path}:ro"]
    for key, value in pod.env().items():
        run += ["-e", f"{key}={value}"]
    run += [IMAGE, *[str(a) for a in container["args"]]]
    log = tmp_path / "container.log"
    started = subprocess.run(run, capture_output=True, text=True, timeout=120, check=False)
    assert started.returncode == 0, started.stderr
    try:
        try:
            ready = wait_for(f"http://127.0.0.1:{port}/readyz", None, log, budget_s=90).json()
        except AssertionError:
            logs = subprocess.run(["podman", "logs", name], capture_output=True, text=True, timeout=30)
            raise AssertionError(logs.stdout[-3000:] + logs.stderr[-3000:]) from None
        assert ready["status"] == "ready" and ready["auth"] != "open", ready
        whoami = subprocess.run(
            ["podman", "exec", name, "id", "-u"], capture_output=True, text=True, timeout=30, check=False
        )
        assert whoami.stdout.strip() == str(spec["securityContext"]["runAsUser"])
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "5", name], capture_output=True, timeout=60, check=False)
