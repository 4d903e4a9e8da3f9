"""Network namespaces for process drills (root only): the controller in a hub namespace behind a
bridge, each agent in its own namespace on a veth pair into that bridge, addresses from a private
test range that exists only inside these namespaces (10.213.<n>.0/24). A partition sets the hub
side of the agent's veth down: the agent's packets are dropped, so its calls hang until their
timeout instead of being refused. The runner reaches the controller through a relay on a unix
socket (``controller.drills.relay``), so nothing listens outside the namespaces.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time


def unavailable() -> str | None:
    """Why network namespaces cannot be used here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add); run as root, as CI does"
    if shutil.which("ip") is None:
        return "iproute2 (the ip command) is not installed"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


class NetLab:
    """The namespaces of one drill; ``destroy()`` kills what runs in them and removes them."""

    def __init__(self, clusters: list[str]) -> None:
        tag = secrets.token_hex(2)
        self.subnet = 1 + secrets.randbelow(250)
        self.hub = f"ywd{tag}h"
        self.hub_ip = f"10.213.{self.subnet}.1"
        self.ns = {c: f"ywd{tag}a{i}" for i, c in enumerate(clusters)}
        self.veth = {c: f"ywd{tag}v{i}" for i, c in enumerate(clusters)}
        self.addr = {c: f"10.213.{self.subnet}.{10 + i}" for i, c in enumerate(clusters)}
        self.created: list[str] = []
        self.cut: set[str] = set()

    def create(self) -> None:
        _ip("netns", "add", self.hub)
        self.created.append(self.hub)
        _ip("-n", self.hub, "link", "set", "lo", "up")
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "addr", "add", f"{self.hub_ip}/24", "dev", "br0")
        _ip("-n", self.hub, "link", "set", "br0", "up")
        for c, ns in self.ns.items():
            _ip("netns", "add", ns)
            self.created.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip(
                "-n",
                self.hub,
                "link",
                "add",
                self.veth[c],
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                ns,
            )
            _ip("-n", self.hub, "link", "set", self.veth[c], "master", "br0")
            _ip("-n", self.hub, "link", "set", self.veth[c], "up")
            _ip("-n", ns, "addr", "add", f"{self.addr[c]}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")

    def exec_prefix(self, cluster: str | None) -> list[str]:
        """Run a command in the cluster's namespace (None: the hub's)."""
        return ["ip", "netns", "exec", self.hub if cluster is None else self.ns[cluster]]

    def partition(self, cluster: str) -> None:
        _ip("-n", self.hub, "link", "set", self.veth[cluster], "down")
        self.cut.add(cluster)

    def heal(self, cluster: str) -> None:
        """Bring the link back and return once it carries packets: the hub side up with its
        carrier (bounded wait), and the neighbour entries the cut left unresolved flushed on both
        sides, so the next connect resolves afresh instead of failing with "No route to host"
        while an address resolution begun during the cut runs out (seen once in CI)."""
        _ip("-n", self.hub, "link", "set", self.veth[cluster], "up")
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            r = subprocess.run(
                ["ip", "-n", self.hub, "-o", "link", "show", "dev", self.veth[cluster]],
                capture_output=True,
                text=True,
                timeout=20,
            )
            if "LOWER_UP" in r.stdout:
                break
            time.sleep(0.02)
        _ip("-n", self.ns[cluster], "neigh", "flush", "dev", "eth0")
        _ip("-n", self.hub, "neigh", "flush", "dev", "br0", "to", self.addr[cluster])
        self.cut.discard(cluster)

    def pids(self, ns: str) -> list[int]:
        r = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=20)
        return [int(p) for p in r.stdout.split() if p.isdigit()]

    def destroy(self) -> None:
        for ns in reversed(self.created):
            for pid in self.pids(ns):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
        self.created.clear()
