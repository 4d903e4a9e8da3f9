"""A small Kubernetes NetworkPolicy evaluator: is this connection allowed by these policies?

Pure functions over plain manifests (``networking.k8s.io/v1`` NetworkPolicy dicts, as rendered by
Helm or recorded from the Pulumi mocks), so that the platform's flows can be checked one by one
without a cluster. The semantics are the API's (kubernetes.io/docs/concepts/services-networking/
network-policies), for what a policy can say:

- A pod is isolated for ingress (egress) when some policy of its namespace selects it
  (``spec.podSelector``) and has ``Ingress`` (``Egress``) in ``policyTypes``; ``policyTypes``
  defaults to ``[Ingress]`` plus ``Egress`` when the policy has egress rules.
- A connection is allowed when the source's egress allows it (not isolated, or some rule of a
  selecting policy matches the destination and port) *and* the destination's ingress allows it.
  Only the pod ends are checked: an address outside the cluster has no policies.
- A rule without ``from``/``to`` matches every peer; without ``ports`` every port. A peer is a
  ``podSelector`` (pods of the policy's namespace), a ``namespaceSelector`` (every pod of the
  selected namespaces), both (the selected pods of the selected namespaces), or an ``ipBlock``
  (addresses in ``cidr`` minus ``except``; matched against addresses outside the cluster only, as
  the API intends: pod addresses are ephemeral and implementations differ on them).
- Selectors: ``matchLabels`` and ``matchExpressions`` (``In``, ``NotIn``, ``Exists``,
  ``DoesNotExist``); ``{}`` selects everything. Namespaces are matched on their labels, which
  include ``kubernetes.io/metadata.name`` (the API server sets it on every namespace).
- Ports: ``protocol`` (default ``TCP``), ``port`` as a number or a named container port of the
  destination pod (absent: every port of the protocol), ``endPort`` for a range.

Traffic to and from the node (kubelet probes, host-network pods) and a pod's traffic to itself are
outside what policies govern and are not modelled.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
Manifest = Mapping[str, Any]


@dataclass(frozen=True)
class Pod:
    """A pod: its namespace, labels and named container ports (``name -> (port, protocol)``)."""

    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    named_ports: Mapping[str, tuple[int, str]] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Address:
    """An address outside the cluster (the API server, a load balancer, another site's pod)."""

    ip: str
    name: str = ""

    def __str__(self) -> str:
        return f"{self.name or 'address'}({self.ip})"


Endpoint = Pod | Address


@dataclass(frozen=True)
class Flow:
    """A connection attempt: source, destination, destination port and protocol."""

    source: Endpoint
    destination: Endpoint
    port: int
    protocol: str = "TCP"

    def __str__(self) -> str:
        return f"{self.source} -> {self.destination}:{self.port}/{self.protocol}"


class PolicyError(ValueError):
    """A policy this evaluator cannot judge (an operator or field it does not know)."""


def selector_matches(selector: Manifest | None, labels: Mapping[str, str]) -> bool:
    """A ``LabelSelector`` against labels; ``None`` or ``{}`` selects everything."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = set(expression.get("values") or [])
        if operator == "In":
            ok = key in labels and labels[key] in values
        elif operator == "NotIn":
            ok = key not in labels or labels[key] not in values
        elif operator == "Exists":
            ok = key in labels
        elif operator == "DoesNotExist":
            ok = key not in labels
        else:
            raise PolicyError(f"unknown selector operator {operator!r}")
        if not ok:
            return False
    return True


@lru_cache(maxsize=4096)
def _network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(cidr, strict=False)


def policy_types(policy: Manifest) -> set[str]:
    spec = policy.get("spec") or {}
    if spec.get("policyTypes"):
        return set(spec["policyTypes"])
    return {"Ingress", "Egress"} if spec.get("egress") else {"Ingress"}


@dataclass
class Cluster:
    """Namespaces (name -> labels) and the NetworkPolicies in force."""

    namespaces: dict[str, dict[str, str]]
    policies: list[Manifest]

    def __post_init__(self) -> None:
        for name, labels in self.namespaces.items():
            labels.setdefault(NAMESPACE_NAME_LABEL, name)
        known = {"podSelector", "policyTypes", "ingress", "egress"}
        for policy in self.policies:
            if policy.get("kind") != "NetworkPolicy":
                raise PolicyError(f"not a NetworkPolicy: {policy.get('kind')}")
            unknown = set(policy.get("spec") or {}) - known
            if unknown:
                raise PolicyError(f"{_name(policy)}: unknown spec fields {sorted(unknown)}")
            if _namespace(policy) not in self.namespaces:
                raise PolicyError(f"{_name(policy)}: namespace {_namespace(policy)!r} is not declared")
        self._by_namespace: dict[str, list[Manifest]] = defaultdict(list)
        for policy in self.policies:
            self._by_namespace[_namespace(policy)].append(policy)

    @classmethod
    def from_manifests(cls, manifests: Iterable[Manifest]) -> Cluster:
        """From rendered objects: every Namespace and NetworkPolicy among them."""
        docs = list(manifests)
        namespaces = {
            d["metadata"]["name"]: dict(d["metadata"].get("labels") or {})
            for d in docs
            if d.get("kind") == "Namespace"
        }
        return cls(namespaces, [d for d in docs if d.get("kind") == "NetworkPolicy"])

    def selecting(self, pod: Pod, direction: str) -> list[Manifest]:
        """Policies of the pod's namespace that select it for ``Ingress`` or ``Egress``."""
        return [
            p
            for p in self._by_namespace.get(pod.namespace, [])
            if direction in policy_types(p)
            and selector_matches((p.get("spec") or {}).get("podSelector"), pod.labels)
        ]

    def _peer_matches(self, peer: Manifest, policy_namespace: str, other: Endpoint) -> bool:
        unknown = set(peer) - {"podSelector", "namespaceSelector", "ipBlock"}
        if unknown:
            raise PolicyError(f"unknown peer fields {sorted(unknown)}")
        if "ipBlock" in peer:
            if not isinstance(other, Address):
                return False
            block = peer["ipBlock"]
            ip = ipaddress.ip_address(other.ip)
            if ip not in _network(block["cidr"]):
                return False
            return not any(ip in _network(e) for e in block.get("except") or [])
        if not isinstance(other, Pod):
            return False
        if "namespaceSelector" in peer:
            ns_labels = self.namespaces.get(other.namespace)
            if ns_labels is None or not selector_matches(peer["namespaceSelector"], ns_labels):
                return False
        elif other.namespace != policy_namespace:
            return False
        return selector_matches(peer.get("podSelector"), other.labels)

    def _rule_allows(
        self, rule: Manifest, peers_key: str, policy_namespace: str, other: Endpoint, flow: Flow
    ) -> bool:
        peers = rule.get(peers_key)
        if peers and not any(self._peer_matches(p, policy_namespace, other) for p in peers):
            return False
        return _ports_match(rule.get("ports"), flow)

    def allows(self, flow: Flow) -> bool:
        """Whether the policies let this connection through (both ends' policies)."""
        return not self.denied_by(flow)

    def denied_by(self, flow: Flow) -> list[str]:
        """Why the connection is denied: empty when it is allowed."""
        reasons: list[str] = []
        src, dst = flow.source, flow.destination
        if isinstance(src, Pod):
            selecting = self.selecting(src, "Egress")
            if selecting and not any(
                self._rule_allows(rule, "to", _namespace(p), dst, flow)
                for p in selecting
                for rule in (p.get("spec") or {}).get("egress") or []
            ):
                reasons.append(f"egress of {src} ({', '.join(_name(p) for p in selecting)})")
        if isinstance(dst, Pod):
            selecting = self.selecting(dst, "Ingress")
            if selecting and not any(
                self._rule_allows(rule, "from", _namespace(p), src, flow)
                for p in selecting
                for rule in (p.get("spec") or {}).get("ingress") or []
            ):
                reasons.append(f"ingress of {dst} ({', '.join(_name(p) for p in selecting)})")
        return reasons


def _ports_match(ports: list[Manifest] | None, flow: Flow) -> bool:
    if not ports:
        return True
    for entry in ports:
        unknown = set(entry) - {"protocol", "port", "endPort"}
        if unknown:
            raise PolicyError(f"unknown port fields {sorted(unknown)}")
        if entry.get("protocol", "TCP") != flow.protocol:
            continue
        port = entry.get("port")
        if port is None:
            return True
        if isinstance(port, str) and not port.isdigit():
            named = flow.destination.named_ports if isinstance(flow.destination, Pod) else {}
            if named.get(port) == (flow.port, flow.protocol):
                return True
            continue
        low = int(port)
        high = int(entry.get("endPort") or low)
        if low <= flow.port <= high:
            return True
    return False


def _namespace(policy: Manifest) -> str:
    return str((policy.get("metadata") or {}).get("namespace") or "default")


def _name(policy: Manifest) -> str:
    return f"{_namespace(policy)}/{(policy.get('metadata') or {}).get('name')}"


def pods_of(manifests: Iterable[Manifest], default_namespace: str) -> list[Pod]:
    """The pods that rendered Deployments, StatefulSets, DaemonSets and Jobs would create: one per
    workload, with its pod template's labels and named container ports."""
    pods: list[Pod] = []
    for doc in manifests:
        kind = doc.get("kind")
        if kind not in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            continue
        template = doc["spec"]["template"]
        named: dict[str, tuple[int, str]] = {}
        for container in template["spec"].get("containers", []):
            for port in container.get("ports") or []:
                if port.get("name"):
                    named[port["name"]] = (int(port["containerPort"]), port.get("protocol", "TCP"))
        pods.append(
            Pod(
                namespace=doc["metadata"].get("namespace") or default_namespace,
                name=doc["metadata"]["name"],
                labels=dict((template.get("metadata") or {}).get("labels") or {}),
                named_ports=named,
            )
        )
    return pods
