"""Shared fixtures: settings on a fresh SQLite file, the app and a client, a real PostgreSQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from controller.api.app import create_app
from controller.api.server import free_port
from controller.settings import Settings

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
IN_CI = os.environ.get("CI") == "true"


def need(condition: bool, reason: str) -> None:
    """Skip with a printed reason, except in CI, where everything CI can run must run."""
    if not condition:
        if IN_CI:
            pytest.fail(f"CI must be able to run this test: {reason}")
        print(f"SKIP: {reason}")
        pytest.skip(reason)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'yiwang.db'}", background=False)


@pytest.fixture
def app(settings: Settings):  # type: ignore[no-untyped-def]
    return create_app(settings)


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def ready(client: TestClient, app) -> TestClient:  # type: ignore[no-untyped-def]
    """Every cluster has heartbeated once, so it is Ready."""
    for name in app.state.controller.registry.clusters:
        assert client.post(f"/v1/agents/{name}/heartbeat").status_code == 200
    return client


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL 15 from Debian's package, started on loopback for this session."""
    need(
        PG_BIN.joinpath("initdb").exists(), "PostgreSQL 15 is not installed (make system installs it as root)"
    )
    need(os.geteuid() == 0, "starting PostgreSQL here needs root (initdb runs as the postgres user)")
    root = Path(tempfile.mkdtemp(prefix="yiwang-pg-"))
    shutil.chown(root, "postgres", "postgres")
    port = free_port()
    run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [
            *run_as,
            str(PG_BIN / "initdb"),
            "-D",
            str(root / "data"),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *run_as,
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(root / "data"),
            "-l",
            str(root / "pg.log"),
            "-o",
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=on",
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*run_as, str(PG_BIN / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind: a SQLite file, and one on the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'yiwang.db'}"
    url: str = request.getfixturevalue("fresh_postgres")
    return url


@pytest.fixture
def fresh_postgres(postgres_url: str) -> str:
    """An empty database on the session's server, one per test."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    dsn = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"
