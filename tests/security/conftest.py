"""A controller with auth on (the bootstrap admin token) and one token per role."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from controller.api.app import create_app
from controller.settings import Settings

ADMIN = "bootstrap-admin-token-for-tests"
PROBLEM = "application/problem+json"
GD_TAX = {
    "id": "gd-tax",
    "owner": "guangdong",
    "size_bytes": 10**9,
    "classification": "general",
    "locations": ["prov-guangdong"],
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def job(tenant: str = "guangdong", **over: Any) -> dict[str, Any]:
    return {"name": "report", "tenant": tenant, "resources": {"cpu": 1, "memory_gib": 1}, **over}


def issue(c: TestClient, role: str, **bound: str) -> dict[str, Any]:
    r = c.post("/v1/tokens", json={"role": role, **bound}, headers=bearer(ADMIN))
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def make_app(tmp: Path) -> FastAPI:
    return create_app(
        Settings(database_url=f"sqlite:///{tmp / 'yiwang.db'}", background=False, admin_token=ADMIN)
    )


def started(app: FastAPI) -> Iterator[TestClient]:
    """Auth on, every cluster Ready, data set gd-tax (owner guangdong) in the catalogue."""
    with TestClient(app, raise_server_exceptions=False) as c:
        for name in app.state.controller.registry.clusters:
            assert c.post(f"/v1/agents/{name}/heartbeat", headers=bearer(ADMIN)).status_code == 200
        assert c.post("/v1/datasets", json=GD_TAX, headers=bearer(ADMIN)).status_code == 201
        yield c


def role_tokens(api: TestClient) -> dict[str, dict[str, str]]:
    """Authorization headers per caller."""
    return {
        "admin": bearer(ADMIN),
        "operator": bearer(issue(api, "operator")["token"]),
        "guangdong": bearer(issue(api, "tenant", tenant="guangdong")["token"]),
        "hubei": bearer(issue(api, "tenant", tenant="hubei")["token"]),
        "national": bearer(issue(api, "tenant", tenant="national")["token"]),
        "agent": bearer(issue(api, "agent", cluster="prov-guangdong")["token"]),
    }


@pytest.fixture
def secure_app(tmp_path: Path) -> FastAPI:
    return make_app(tmp_path)


@pytest.fixture
def api(secure_app: FastAPI) -> Iterator[TestClient]:
    yield from started(secure_app)


@pytest.fixture
def tokens(api: TestClient) -> dict[str, dict[str, str]]:
    return role_tokens(api)
