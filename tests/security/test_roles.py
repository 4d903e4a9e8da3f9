"""The role matrix: each caller x each endpoint family -> expected status (problem+json on errors)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.security.conftest import GD_TAX, PROBLEM, bearer, job, make_app, role_tokens, started


@pytest.fixture(scope="module")
def matrix_app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    return make_app(tmp_path_factory.mktemp("matrix"))


@pytest.fixture(scope="module")
def matrix_api(matrix_app: FastAPI) -> Iterator[TestClient]:
    """One controller for the whole matrix (each row is idempotent or fails before acting)."""
    yield from started(matrix_app)


@pytest.fixture(scope="module")
def matrix_tokens(matrix_api: TestClient) -> dict[str, dict[str, str]]:
    return role_tokens(matrix_api)


CALLERS = ("none", "bad", "admin", "operator", "guangdong", "agent")
QUOTA = {"tenants": {}}

# (family, method, path, body, expected status per caller in CALLERS order)
MATRIX: list[tuple[str, str, str, Any, tuple[int, ...]]] = [
    ("health", "GET", "/healthz", None, (200, 200, 200, 200, 200, 200)),
    ("ready", "GET", "/readyz", None, (200, 200, 200, 200, 200, 200)),
    ("jobs.list", "GET", "/v1/jobs", None, (401, 401, 200, 200, 200, 403)),
    ("jobs.submit", "POST", "/v1/jobs", job(), (401, 401, 201, 403, 201, 403)),
    ("jobs.get", "GET", "/v1/jobs/00000000000000deadbeef", None, (401, 401, 404, 404, 404, 403)),
    ("jobs.cancel", "POST", "/v1/jobs/00000000000000deadbeef/cancel", None, (401, 401, 404, 403, 404, 403)),
    ("plan", "POST", "/v1/plan", job(), (401, 401, 200, 200, 200, 403)),
    ("clusters.list", "GET", "/v1/clusters", None, (401, 401, 200, 200, 200, 403)),
    ("clusters.get", "GET", "/v1/clusters/prov-hubei", None, (401, 401, 200, 200, 200, 403)),
    ("clusters.cordon", "POST", "/v1/clusters/prov-hubei/cordon", None, (401, 401, 200, 200, 403, 403)),
    ("clusters.uncordon", "POST", "/v1/clusters/prov-hubei/uncordon", None, (401, 401, 200, 200, 403, 403)),
    ("clusters.drain", "POST", "/v1/clusters/prov-hunan/drain", None, (401, 401, 200, 200, 403, 403)),
    ("clusters.delete", "DELETE", "/v1/clusters/no-such-cluster", None, (401, 401, 404, 403, 403, 403)),
    ("policies.get", "GET", "/v1/policies", None, (401, 401, 200, 200, 403, 403)),
    ("policies.put", "PUT", "/v1/policies/quota", QUOTA, (401, 401, 200, 403, 403, 403)),
    ("datasets.list", "GET", "/v1/datasets", None, (401, 401, 200, 200, 200, 403)),
    ("datasets.get", "GET", "/v1/datasets/gd-tax", None, (401, 401, 200, 200, 200, 403)),
    ("grants.list", "GET", "/v1/datasets/gd-tax/grants", None, (401, 401, 200, 200, 200, 403)),
    ("tokens.list", "GET", "/v1/tokens", None, (401, 401, 200, 403, 403, 403)),
    ("tokens.create", "POST", "/v1/tokens", {"role": "operator"}, (401, 401, 201, 403, 403, 403)),
    ("tokens.revoke", "DELETE", "/v1/tokens/0123456789ab", None, (401, 401, 404, 403, 403, 403)),
    ("audit", "GET", "/v1/audit", None, (401, 401, 200, 200, 403, 403)),
    ("agent.own", "POST", "/v1/agents/prov-guangdong/heartbeat", None, (401, 401, 200, 403, 403, 200)),
    ("agent.other", "POST", "/v1/agents/prov-hubei/heartbeat", None, (401, 401, 200, 403, 403, 403)),
    (
        "agent.other.assignments",
        "GET",
        "/v1/agents/prov-hubei/assignments",
        None,
        (401, 401, 200, 403, 403, 403),
    ),
    ("agent.own.status", "POST", "/v1/agents/prov-guangdong/status", {}, (401, 401, 422, 403, 403, 422)),
    ("agent.other.release", "POST", "/v1/agents/prov-hubei/release", {}, (401, 401, 422, 403, 403, 403)),
    ("clusters.put", "PUT", "/v1/clusters/prov-hubei", {}, (401, 401, 422, 403, 403, 403)),
    ("datasets.create", "POST", "/v1/datasets", GD_TAX, (401, 401, 200, 403, 200, 403)),
    (
        "grants.request",
        "POST",
        "/v1/datasets/gd-tax/grants",
        {"tenant": "hubei"},
        (401, 401, 201, 403, 403, 403),
    ),
    (
        "grants.approve",
        "POST",
        "/v1/datasets/gd-tax/grants/nope/approve",
        None,
        (401, 401, 404, 403, 404, 403),
    ),
    ("grants.reject", "POST", "/v1/datasets/gd-tax/grants/nope/reject", None, (401, 401, 404, 403, 404, 403)),
]


@pytest.mark.parametrize(
    ("family", "method", "path", "body", "caller", "expected"),
    [
        pytest.param(f, m, p, b, who, status, id=f"{f}-{who}")
        for f, m, p, b, statuses in MATRIX
        for who, status in zip(CALLERS, statuses, strict=True)
    ],
)
def test_role_matrix(
    matrix_api: TestClient,
    matrix_tokens: dict[str, dict[str, str]],
    family: str,
    method: str,
    path: str,
    body: Any,
    caller: str,
    expected: int,
) -> None:
    fixed = {"none": {}, "bad": bearer("yw_0123456789ab_" + "x" * 43)}
    headers = fixed[caller] if caller in fixed else matrix_tokens[caller]
    r = matrix_api.request(method, path, json=body, headers=headers)
    assert r.status_code == expected, f"{family} as {caller}: {r.status_code} {r.text}"
    if expected >= 400:
        assert r.headers["content-type"] == PROBLEM
        assert r.json()["status"] == expected


def test_every_v1_route_is_in_the_matrix(matrix_app: FastAPI) -> None:
    """A new route without a row here is a route nobody decided the roles of."""
    for route in matrix_app.routes:
        path = getattr(route, "path", "")
        if not path.startswith("/v1/"):
            continue
        pattern = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")
        for method in getattr(route, "methods", set()) - {"HEAD", "OPTIONS"}:
            assert any(m == method and pattern.match(p) for _, m, p, _, _ in MATRIX), (method, path)
