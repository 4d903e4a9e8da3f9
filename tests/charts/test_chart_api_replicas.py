"""yiwang-controller API replicas (YIWANG_ROLE=api) beside the controllers (YIWANG_ROLE=all).

The controllers' Deployment selects on app.kubernetes.io/name + instance, and that selector is
immutable; a selector matches every pod carrying its labels, whatever else the pod carries. So the
API replicas' pods get their own name label ("<name>-api"), and the Service and NetworkPolicy select
both kinds on labels every controller pod has always carried (instance, part-of, component).
"""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from chart_helpers import KUBE_VERSION, RELEASE, chart_dir, find_doc, render, run_helm, template_args

CHART = "yiwang-controller"
DB = "database.url=postgresql://pg/yiwang"
FULLNAME = f"{RELEASE}-{CHART}"
API_CI = chart_dir(CHART) / "ci" / "national-primary-api-replicas-values.yaml"

# (values files, --set items) of renders whose objects must be consistent with each other.
SCENARIOS: list[Any] = [
    pytest.param((), (DB,), id="default"),
    pytest.param((), (DB, "api.replicaCount=1"), id="api-1"),
    pytest.param((), (DB, "api.replicaCount=3"), id="api-3"),
    pytest.param((API_CI,), (), id="ci-api-replicas"),
    pytest.param((), (DB, "api.replicaCount=2", "nameOverride=" + "n" * 63), id="api-long-name"),
    pytest.param(
        (),
        (DB, "api.replicaCount=2", "podLabels.team=x", "commonLabels.owner=y"),
        id="api-pod-labels",
    ),
]


def deployments(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env(deployment: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item for item in container(deployment)["env"]}


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def test_default_render_has_no_api_deployment_and_role_all(helm: str) -> None:
    docs = render(helm, CHART, (), (DB,))
    (main,) = deployments(docs).values()
    assert main["metadata"]["name"] == FULLNAME
    assert env(main)["YIWANG_ROLE"] == {"name": "YIWANG_ROLE", "value": "all"}
    assert pod_labels(main)["yiwang.gov.cn/role"] == "all"
    # The selector is the one every earlier version of the chart created (immutable).
    assert main["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": CHART,
        "app.kubernetes.io/instance": RELEASE,
    }
    assert not [d for d in docs if d["metadata"]["name"].endswith("-api")]
    (pdb,) = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert pdb["spec"]["selector"] == main["spec"]["selector"]


def test_api_replicas_render_with_role_api(helm: str) -> None:
    docs = render(helm, CHART, (), (DB, "api.replicaCount=3"))
    found = deployments(docs)
    assert set(found) == {FULLNAME, f"{FULLNAME}-api"}
    main, api = found[FULLNAME], found[f"{FULLNAME}-api"]
    assert api["spec"]["replicas"] == 3
    assert main["spec"]["replicas"] == 2
    assert env(api)["YIWANG_ROLE"] == {"name": "YIWANG_ROLE", "value": "api"}
    assert env(main)["YIWANG_ROLE"] == {"name": "YIWANG_ROLE", "value": "all"}
    assert pod_labels(api)["yiwang.gov.cn/role"] == "api"
    assert pod_labels(api)["app.kubernetes.io/name"] == f"{CHART}-api"
    assert api["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": f"{CHART}-api",
        "app.kubernetes.io/instance": RELEASE,
    }
    for doc in docs:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def test_api_pods_are_the_controller_pods_but_for_their_role(helm: str) -> None:
    """One pod template: besides the role, labels, resources and extra env, nothing differs."""
    docs = render(helm, CHART, (API_CI,))
    found = deployments(docs)
    main, api = found[FULLNAME], found[f"{FULLNAME}-api"]

    def normalised(deployment: dict[str, Any], role: str) -> dict[str, Any]:
        pod = copy.deepcopy(deployment["spec"]["template"])
        labels = pod["metadata"]["labels"]
        assert labels.pop("yiwang.gov.cn/role") == role
        labels.pop("app.kubernetes.io/name")
        spec = pod["spec"]
        spec.pop("affinity")  # the default anti-affinity spreads each Deployment's own pods
        (ctr,) = spec["containers"]
        ctr.pop("resources")
        ctr["env"] = [e for e in ctr["env"] if e["name"] not in ("YIWANG_ROLE", "YIWANG_FOLLOW_INTERVAL_S")]
        return dict(pod)

    assert normalised(main, "all") == normalised(api, "api")
    assert container(api)["resources"]["requests"] == {"cpu": "500m", "memory": "512Mi"}
    assert container(main)["resources"]["requests"] == {"cpu": "250m", "memory": "256Mi"}
    assert env(api)["YIWANG_FOLLOW_INTERVAL_S"]["value"] == "0.25"
    assert "YIWANG_FOLLOW_INTERVAL_S" not in env(main)
    for deployment in (main, api):
        term = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"
        ][0]["podAffinityTerm"]
        assert term["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize(("values", "sets"), SCENARIOS)
def test_no_selector_matches_another_deployments_pods(
    helm: str, values: tuple[Path, ...], sets: tuple[str, ...]
) -> None:
    found = deployments(render(helm, CHART, values, sets))
    for name, deployment in found.items():
        assert matches(deployment["spec"]["selector"]["matchLabels"], pod_labels(deployment)), name
    for (a_name, a), (b_name, b) in itertools.permutations(found.items(), 2):
        assert not matches(a["spec"]["selector"]["matchLabels"], pod_labels(b)), (
            f"Deployment {a_name}'s selector matches the pods of {b_name}"
        )
        # ReplicaSets carry their pod template's labels: no adoption across Deployments either.
        assert a["spec"]["selector"] != b["spec"]["selector"]


@pytest.mark.parametrize(("values", "sets"), SCENARIOS)
def test_service_routes_to_every_pod_that_serves_the_api(
    helm: str, values: tuple[Path, ...], sets: tuple[str, ...]
) -> None:
    docs = render(helm, CHART, values, sets)
    found = deployments(docs)
    (service,) = [d for d in docs if d["kind"] == "Service"]
    selector = service["spec"]["selector"]
    for name, deployment in found.items():
        assert env(deployment)["YIWANG_ROLE"]["value"] in ("all", "api")
        assert matches(selector, pod_labels(deployment)), f"the Service skips the pods of {name}"
        ports = {p["name"]: p["containerPort"] for p in container(deployment)["ports"]}
        assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
        assert "http" in ports
    # Upgrade safety: only labels the controller pods carried before role labels existed, so the
    # Service keeps the old pods as endpoints while the new ones roll out.
    assert set(selector) == {
        "app.kubernetes.io/instance",
        "app.kubernetes.io/part-of",
        "app.kubernetes.io/component",
    }
    for doc in docs:
        if doc["kind"] == "NetworkPolicy":
            for name, deployment in found.items():
                assert matches(doc["spec"]["podSelector"]["matchLabels"], pod_labels(deployment)), name
        if doc["kind"] == "ServiceMonitor":
            assert matches(doc["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])


@pytest.mark.parametrize(("values", "sets"), SCENARIOS)
def test_each_deployment_has_its_own_disruption_budget(
    helm: str, values: tuple[Path, ...], sets: tuple[str, ...]
) -> None:
    docs = render(helm, CHART, values, sets)
    found = deployments(docs)
    budgets = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    for budget in budgets:
        covered = [
            n for n, d in found.items() if matches(budget["spec"]["selector"]["matchLabels"], pod_labels(d))
        ]
        assert len(covered) == 1, f"{budget['metadata']['name']} covers {covered}"
    # The controllers always get one (pdb.create); the API replicas when there are 2 or more.
    expected = {
        n for n, d in found.items() if env(d)["YIWANG_ROLE"]["value"] == "all" or d["spec"]["replicas"] > 1
    }
    assert {b["metadata"]["name"] for b in budgets} == expected


def test_long_names_keep_the_api_suffix(helm: str) -> None:
    docs = render(
        helm,
        CHART,
        (),
        (DB, "api.replicaCount=2", "fullnameOverride=" + "f" * 63, "nameOverride=" + "n" * 63),
    )
    found = deployments(docs)
    assert set(found) == {"f" * 63, "f" * 59 + "-api"}
    assert pod_labels(found["f" * 59 + "-api"])["app.kubernetes.io/name"] == "n" * 59 + "-api"


def test_api_pdb_follows_its_values_and_pdb_create(helm: str) -> None:
    docs = render(helm, CHART, (), (DB, "api.replicaCount=4", "api.pdb.minAvailable=50%"))
    assert find_doc(docs, "PodDisruptionBudget", "-api")["spec"]["minAvailable"] == "50%"
    docs = render(helm, CHART, (), (DB, "api.replicaCount=4", "pdb.create=false"))
    assert not [d for d in docs if d["kind"] == "PodDisruptionBudget"]


@pytest.mark.parametrize(
    ("sets", "mentions"),
    [
        pytest.param(("api.replicaCount=-1",), "replicaCount", id="negative"),
        pytest.param(("api.replicaCount=1.5",), "replicaCount", id="not-integer"),
        pytest.param(("api.replicas=2",), "replicas", id="unknown-key"),
        pytest.param(("api.pdb.maxUnavailable=lots",), "maxUnavailable", id="pdb-bogus"),
    ],
)
def test_schema_rejects_bad_api_values(helm: str, sets: tuple[str, ...], mentions: str) -> None:
    proc = run_helm(helm, *template_args(CHART, (), (DB, *sets)), check=False)
    assert proc.returncode != 0, f"helm template accepted {sets}"
    assert mentions in proc.stderr, proc.stderr
