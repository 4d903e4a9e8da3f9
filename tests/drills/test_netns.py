"""The network lab of the partition drill (root only, as in CI): a cut drops packets, so a
connect from the cut namespace hangs until its timeout instead of being refused; healing restores
it; destroy() leaves no namespace behind."""

from __future__ import annotations

import subprocess
import sys

import pytest

from controller.drills.netns import NetLab, unavailable

CONNECT = "import socket, sys; socket.create_connection((sys.argv[1], 8080), timeout=2); print('connected')"


@pytest.mark.timeout(60)
def test_a_cut_drops_packets_and_a_heal_restores_them() -> None:
    why = unavailable()
    if why:
        print(f"skipping: {why}")
        pytest.skip(why)
    lab = NetLab(["prov-a"])
    server = None
    try:
        lab.create()
        server = subprocess.Popen(
            [*lab.exec_prefix(None), sys.executable, "-m", "http.server", "--bind", lab.hub_ip, "8080"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def connect() -> str:
            r = subprocess.run(
                [*lab.exec_prefix("prov-a"), sys.executable, "-c", CONNECT, lab.hub_ip],
                capture_output=True,
                text=True,
                timeout=30,
            )
            return r.stdout.strip() or r.stderr.strip().splitlines()[-1]

        for _ in range(50):  # the server is up once a connect succeeds (bounded)
            if connect() == "connected":
                break
        assert connect() == "connected"
        lab.partition("prov-a")
        assert connect().startswith("TimeoutError")  # dropped, not ConnectionRefusedError
        lab.heal("prov-a")
        assert connect() == "connected"
    finally:
        if server is not None:
            server.kill()
            server.wait(10)
        names = set(lab.created)
        lab.destroy()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=20).stdout
    assert not any(n in listed for n in names)
