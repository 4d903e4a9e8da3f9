"""The NetworkPolicy evaluator (infra/yiwang_infra/netpol.py), case by case against the API's
documented semantics."""

from __future__ import annotations

from typing import Any

import pytest

from infra.yiwang_infra.netpol import (
    Address,
    Cluster,
    Flow,
    Pod,
    PolicyError,
    pods_of,
    policy_types,
    selector_matches,
)

NAMESPACES = {"a": {"team": "x"}, "b": {"team": "y"}, "c": {}}
WEB = Pod("a", "web", {"app": "web", "tier": "front"}, {"http": (8080, "TCP"), "dns": (53, "UDP")})
API = Pod("a", "api", {"app": "api"})
OTHER_NS = Pod("b", "client", {"app": "client"})
THIRD = Pod("c", "job", {"app": "client"})
OUTSIDE = Address("203.0.113.7", "outside")
INSIDE_BLOCK = Address("10.1.2.3", "in-block")
EXCEPTED = Address("10.1.9.9", "excepted")


def np(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def cluster(*policies: dict[str, Any]) -> Cluster:
    return Cluster({k: dict(v) for k, v in NAMESPACES.items()}, list(policies))


DENY_ALL_A = np("deny", "a", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        (None, {}, True),
        ({}, {"x": "1"}, True),
        ({"matchLabels": {"app": "web"}}, {"app": "web", "z": "1"}, True),
        ({"matchLabels": {"app": "web"}}, {"app": "api"}, False),
        ({"matchLabels": {"app": "web"}}, {}, False),
        (
            {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]},
            {"app": "api"},
            True,
        ),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}, {}, False),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}, {}, True),
        (
            {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]},
            {"app": "web"},
            False,
        ),
        ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, {"app": ""}, True),
        ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, {}, False),
        ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, {}, True),
        ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, {"app": "x"}, False),
        # matchLabels and matchExpressions are ANDed
        (
            {"matchLabels": {"tier": "front"}, "matchExpressions": [{"key": "app", "operator": "Exists"}]},
            {"tier": "front"},
            False,
        ),
    ],
)
def test_selectors(selector: dict[str, Any] | None, labels: dict[str, str], expected: bool) -> None:
    assert selector_matches(selector, labels) is expected


def test_unknown_selector_operator_is_refused() -> None:
    with pytest.raises(PolicyError):
        selector_matches({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}, {"a": "2"})


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"podSelector": {}}, {"Ingress"}),
        ({"podSelector": {}, "egress": [{}]}, {"Ingress", "Egress"}),
        ({"podSelector": {}, "policyTypes": ["Egress"]}, {"Egress"}),
    ],
)
def test_policy_types_default(spec: dict[str, Any], expected: set[str]) -> None:
    assert policy_types(np("p", "a", spec)) == expected


def test_no_policy_allows_everything() -> None:
    c = cluster()
    assert c.allows(Flow(OTHER_NS, WEB, 8080))
    assert c.allows(Flow(WEB, OUTSIDE, 443))


def test_default_deny_isolates_both_directions_of_its_namespace_only() -> None:
    c = cluster(DENY_ALL_A)
    assert not c.allows(Flow(OTHER_NS, WEB, 8080))
    assert not c.allows(Flow(WEB, OTHER_NS, 8080))
    assert not c.allows(Flow(WEB, API, 8080))  # same namespace too
    assert c.allows(Flow(OTHER_NS, THIRD, 8080))
    assert c.denied_by(Flow(WEB, API, 1)) == ["egress of a/web (a/deny)", "ingress of a/api (a/deny)"]


def test_ingress_only_policy_leaves_egress_open() -> None:
    c = cluster(np("in", "a", {"podSelector": {}}))
    assert c.allows(Flow(WEB, OUTSIDE, 443))
    assert not c.allows(Flow(OTHER_NS, WEB, 8080))


def test_policies_are_additive() -> None:
    allow = np(
        "allow-web",
        "a",
        {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"from": [{"podSelector": {}}]}]},
    )
    c = cluster(DENY_ALL_A, allow)
    # ingress of web from its own namespace: allowed by the second policy; api's egress still denied
    assert not c.allows(Flow(API, WEB, 8080))
    c = cluster(
        DENY_ALL_A,
        allow,
        np(
            "api-out",
            "a",
            {"podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Egress"], "egress": [{}]},
        ),
    )
    assert c.allows(Flow(API, WEB, 8080))
    assert not c.allows(Flow(OTHER_NS, WEB, 8080))  # podSelector alone: the policy's namespace


PEER_CASES = [
    # (peer, source, expected)
    ({"podSelector": {"matchLabels": {"app": "client"}}}, OTHER_NS, False),  # other namespace
    ({"podSelector": {"matchLabels": {"app": "api"}}}, API, True),
    ({"namespaceSelector": {"matchLabels": {"team": "y"}}}, OTHER_NS, True),
    ({"namespaceSelector": {"matchLabels": {"team": "y"}}}, THIRD, False),
    ({"namespaceSelector": {}}, THIRD, True),  # every namespace
    ({"namespaceSelector": {}}, OUTSIDE, False),  # but no address outside the cluster
    (
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "c"}},
            "podSelector": {"matchLabels": {"app": "client"}},
        },
        THIRD,
        True,
    ),
    (
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "c"}},
            "podSelector": {"matchLabels": {"app": "other"}},
        },
        THIRD,
        False,
    ),
    ({"ipBlock": {"cidr": "10.1.0.0/16", "except": ["10.1.9.0/24"]}}, INSIDE_BLOCK, True),
    ({"ipBlock": {"cidr": "10.1.0.0/16", "except": ["10.1.9.0/24"]}}, EXCEPTED, False),
    ({"ipBlock": {"cidr": "10.1.0.0/16"}}, OUTSIDE, False),
    ({"ipBlock": {"cidr": "0.0.0.0/0"}}, OTHER_NS, False),  # ipBlock: addresses outside the cluster
]


@pytest.mark.parametrize(("peer", "source", "expected"), PEER_CASES)
def test_ingress_peers(peer: dict[str, Any], source: Any, expected: bool) -> None:
    policy = np("p", "a", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"from": [peer]}]})
    assert cluster(policy).allows(Flow(source, WEB, 8080)) is expected


@pytest.mark.parametrize(("peer", "destination", "expected"), PEER_CASES)
def test_egress_peers(peer: dict[str, Any], destination: Any, expected: bool) -> None:
    # the same peers as egress destinations, from a pod of namespace a
    policy = np(
        "p",
        "a",
        {
            "podSelector": {"matchLabels": {"app": "api"}},
            "policyTypes": ["Egress"],
            "egress": [{"to": [peer]}],
        },
    )
    if destination == API:
        destination = WEB  # api -> itself is not modelled; web is another pod of its namespace
        expected = False  # podSelector app=api does not select web
    assert cluster(policy).allows(Flow(API, destination, 8080)) is expected


@pytest.mark.parametrize(
    ("ports", "flow", "expected"),
    [
        (None, Flow(OTHER_NS, WEB, 1), True),
        ([], Flow(OTHER_NS, WEB, 1), True),
        ([{"port": 8080}], Flow(OTHER_NS, WEB, 8080), True),
        ([{"port": 8080}], Flow(OTHER_NS, WEB, 8081), False),
        ([{"port": 8080}], Flow(OTHER_NS, WEB, 8080, "UDP"), False),  # protocol defaults to TCP
        ([{"protocol": "UDP", "port": 53}], Flow(OTHER_NS, WEB, 53, "UDP"), True),
        ([{"protocol": "UDP"}], Flow(OTHER_NS, WEB, 9, "UDP"), True),  # every port of the protocol
        ([{"protocol": "UDP"}], Flow(OTHER_NS, WEB, 9), False),
        ([{"port": 8000, "endPort": 8100}], Flow(OTHER_NS, WEB, 8080), True),
        ([{"port": 8000, "endPort": 8100}], Flow(OTHER_NS, WEB, 8101), False),
        ([{"port": "http"}], Flow(OTHER_NS, WEB, 8080), True),  # named port of the destination
        ([{"port": "http"}], Flow(OTHER_NS, WEB, 9090), False),
        ([{"port": "dns"}], Flow(OTHER_NS, WEB, 53), False),  # named port is UDP
        ([{"port": "8080"}], Flow(OTHER_NS, WEB, 8080), True),  # a number as a string
        ([{"port": 1}, {"port": 8080}], Flow(OTHER_NS, WEB, 8080), True),
    ],
)
def test_ports(ports: list[dict[str, Any]] | None, flow: Flow, expected: bool) -> None:
    rule: dict[str, Any] = {} if ports is None else {"ports": ports}
    policy = np("p", "a", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [rule]})
    assert cluster(policy).allows(flow) is expected


def test_named_egress_port_resolves_on_the_destination() -> None:
    policy = np(
        "p", "b", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": "http"}]}]}
    )
    assert cluster(policy).allows(Flow(OTHER_NS, WEB, 8080))
    assert not cluster(policy).allows(Flow(OTHER_NS, OUTSIDE, 8080))  # an address has no named ports


def test_peers_and_ports_of_one_rule_are_anded_rules_ored() -> None:
    spec = {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [
            {"from": [{"namespaceSelector": {"matchLabels": {"team": "y"}}}], "ports": [{"port": 8080}]},
            {"from": [{"ipBlock": {"cidr": "10.1.0.0/16"}}], "ports": [{"port": 9090}]},
        ],
    }
    c = cluster(np("p", "a", spec))
    assert c.allows(Flow(OTHER_NS, WEB, 8080))
    assert not c.allows(Flow(OTHER_NS, WEB, 9090))
    assert c.allows(Flow(INSIDE_BLOCK, WEB, 9090))
    assert not c.allows(Flow(INSIDE_BLOCK, WEB, 8080))


def test_egress_and_ingress_must_both_allow() -> None:
    out_of_b = np(
        "out", "b", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": 8080}]}]}
    )
    c = cluster(DENY_ALL_A, out_of_b)
    assert c.denied_by(Flow(OTHER_NS, WEB, 8080)) == ["ingress of a/web (a/deny)"]
    assert c.denied_by(Flow(OTHER_NS, THIRD, 22)) == ["egress of b/client (b/out)"]


def test_a_policy_with_no_rules_for_its_type_denies_all_of_it() -> None:
    c = cluster(
        np(
            "p",
            "a",
            {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"], "ingress": []},
        )
    )
    assert not c.allows(Flow(API, WEB, 8080))
    assert c.allows(Flow(OTHER_NS, API, 8080))  # api is not selected


@pytest.mark.parametrize(
    "bad",
    [
        np("p", "a", {"podSelector": {}, "ingress": [{"from": [{"serviceSelector": {}}]}]}),
        np("p", "a", {"podSelector": {}, "ingress": [{"ports": [{"port": 1, "sctpThing": 1}]}]}),
        np("p", "a", {"podSelector": {}, "action": "Allow"}),
        np("p", "nowhere", {"podSelector": {}}),
        {"kind": "CiliumNetworkPolicy", "metadata": {"name": "x", "namespace": "a"}, "spec": {}},
    ],
)
def test_what_it_cannot_judge_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(PolicyError):
        cluster(bad).allows(Flow(OTHER_NS, WEB, 8080))


def test_from_manifests_and_pods_of() -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            }
        },
    }
    (pod,) = pods_of([deployment, {"kind": "Service"}], "a")
    assert pod == Pod("a", "web", {"app": "web"}, {"http": (8080, "TCP")})
    namespace = {"kind": "Namespace", "metadata": {"name": "a", "labels": {"team": "x"}}}
    c = Cluster.from_manifests([namespace, DENY_ALL_A, deployment])
    assert c.namespaces == {"a": {"team": "x", "kubernetes.io/metadata.name": "a"}}
    assert len(c.policies) == 1
