"""Tokens: hashed storage, immediate revocation, expiry, the CLI; open dev mode; prod refuses open."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError
from typer.testing import CliRunner

from controller.api.app import create_app
from controller.cli import app as cli
from controller.cli import main as cli_main
from controller.live import ServerThread
from controller.settings import Settings
from tests.conftest import free_port
from tests.security.conftest import ADMIN, PROBLEM, bearer, issue, job


def test_the_database_never_holds_the_token(api: TestClient, secure_app: FastAPI) -> None:
    issued = issue(api, "tenant", tenant="guangdong", description="gd analysts")
    token = issued["token"]
    assert token.startswith(f"yw_{issued['id']}_") and len(token) == 3 + 12 + 1 + 43
    db = secure_app.state.settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        ((stored,),) = conn.execute("SELECT secret_hash FROM api_tokens WHERE id = ?", (issued["id"],))
        dump = "\n".join(conn.iterdump())
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    secret = token.split("_", 2)[2]  # the random part may itself contain "_"
    assert secret not in dump and token not in dump
    for path in Path(db).parent.iterdir():  # WAL and shm files too
        assert secret.encode() not in path.read_bytes()
    listed = api.get("/v1/tokens", headers=bearer(ADMIN)).json()["items"]
    assert [t["id"] for t in listed] == [issued["id"]]
    assert "token" not in listed[0] and "secret_hash" not in listed[0]


def test_revocation_takes_effect_on_the_next_request(api: TestClient) -> None:
    issued = issue(api, "tenant", tenant="guangdong")
    headers = bearer(issued["token"])
    assert api.get("/v1/jobs", headers=headers).status_code == 200
    assert api.delete(f"/v1/tokens/{issued['id']}", headers=bearer(ADMIN)).status_code == 204
    r = api.get("/v1/jobs", headers=headers)
    assert r.status_code == 401 and r.headers["content-type"] == PROBLEM
    assert api.delete(f"/v1/tokens/{issued['id']}", headers=bearer(ADMIN)).status_code == 204  # idempotent
    listed = api.get("/v1/tokens", headers=bearer(ADMIN)).json()["items"]
    assert listed[0]["revoked_at"] is not None


def test_expired_and_tampered_tokens_are_refused(api: TestClient) -> None:
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    r = api.post("/v1/tokens", json={"role": "operator", "expires_at": past}, headers=bearer(ADMIN)).json()
    assert api.get("/v1/jobs", headers=bearer(r["token"])).status_code == 401
    good = issue(api, "operator")["token"]
    tampered = good[:-1] + ("A" if good[-1] != "A" else "B")
    for bad in (tampered, good.upper(), "Basic " + good, ""):
        assert (
            api.get(
                "/v1/jobs", headers={"Authorization": bad if bad.startswith("Basic") else f"Bearer {bad}"}
            ).status_code
            == 401
        )


@pytest.mark.parametrize(
    "body",
    [
        {"role": "tenant"},
        {"role": "agent"},
        {"role": "operator", "tenant": "guangdong"},
        {"role": "tenant", "tenant": "guangdong", "cluster": "prov-guangdong"},
        {"role": "root"},
        {"role": "tenant", "tenant": "Bad Name"},
    ],
)
def test_token_requests_are_validated(api: TestClient, body: dict[str, str]) -> None:
    r = api.post("/v1/tokens", json=body, headers=bearer(ADMIN))
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM


def test_open_dev_mode_is_explicit_and_visible(client: TestClient) -> None:
    """Dev without YIWANG_ADMIN_TOKEN/YIWANG_AGENT_TOKEN: /readyz says so; requests act as admin;
    a token that is presented still identifies its holder, so isolation applies to it."""
    assert client.get("/readyz").json()["auth"] == "open"
    assert client.get("/v1/tokens").status_code == 200
    gd = client.post("/v1/tokens", json={"role": "tenant", "tenant": "guangdong"}).json()["token"]
    r = client.post("/v1/jobs", json=job("hubei"), headers=bearer(gd))
    assert r.status_code == 403


def test_closed_mode_reports_tokens(api: TestClient) -> None:
    assert api.get("/readyz").json()["auth"] == "tokens"


def test_the_shared_agent_token_serves_any_cluster_in_dev(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'y.db'}", background=False, agent_token="shared-dev-agent"
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        assert c.get("/readyz").json()["auth"] == "tokens"
        for cluster in ("prov-guangdong", "prov-hubei"):
            assert (
                c.post(f"/v1/agents/{cluster}/heartbeat", headers=bearer("shared-dev-agent")).status_code
                == 200
            )
        assert c.get("/v1/jobs", headers=bearer("shared-dev-agent")).status_code == 403
        assert c.get("/v1/jobs").status_code == 401


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({}, "YIWANG_ADMIN_TOKEN"),
        ({"agent_token": "a"}, "YIWANG_ADMIN_TOKEN"),
        ({"admin_token": "x", "agent_token": "a"}, "dev only"),
    ],
)
def test_prod_refuses_to_start_open_or_with_the_shared_agent_token(
    over: dict[str, str], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(environment="prod", database_url="postgresql+psycopg://db/yiwang", **over)
    ok = Settings(environment="prod", database_url="postgresql+psycopg://db/yiwang", admin_token="x")
    assert ok.admin_token == "x"


@pytest.fixture
def live(secure_app: FastAPI) -> Iterator[str]:
    port = free_port()
    with ServerThread(secure_app, port):
        yield f"http://127.0.0.1:{port}"


def test_cli_creates_lists_and_revokes_tokens(
    live: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = CliRunner()
    env = {"YIWANG_URL": live, "YIWANG_TOKEN": ADMIN}
    out = runner.invoke(cli, ["token", "create", "--role", "tenant", "--tenant", "guangdong"], env=env)
    assert out.exit_code == 0, out.output
    assert '"role": "tenant"' in out.output and '"token": "yw_' in out.output
    token_id = out.output.split('"id": "')[1].split('"')[0]
    listed = runner.invoke(cli, ["token", "list"], env=env)
    assert listed.exit_code == 0 and token_id in listed.output and "guangdong" in listed.output
    assert runner.invoke(cli, ["token", "revoke", token_id], env=env).exit_code == 0
    # A refused call: one line on stderr, exit 1 (through the `yiwang` entry point).
    monkeypatch.setenv("YIWANG_URL", live)
    monkeypatch.setenv("YIWANG_TOKEN", "wrong")
    assert cli_main(["token", "create", "--role", "operator"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "(401)" in err and len(err.strip().splitlines()) == 1
