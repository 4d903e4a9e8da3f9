"""Shared fixtures: settings on a fresh SQLite file, the app and a client, a real PostgreSQL."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from controller.api.app import create_app
from controller.bench import postgres
from controller.data import DATA_DIR
from controller.live import free_port
from controller.settings import Settings

REPO = Path(__file__).resolve().parent.parent
REFDATA = DATA_DIR  # the vendored reference data (controller/data/), never a folder outside the repo
IN_CI = os.environ.get("CI") == "true"
# The controllers the tests start in this process are its guests: they leave the collector of
# the test process alone (``Settings.tune_gc``). A tuned test process froze every test's garbage
# at each scheduling cycle and collected it all at once every 600 s, holding every thread of
# the process (a drill's controller, its agents) for seconds: a drill's RTO went from 3.5 to
# 14 s in CI. A controller that ``LiveController`` spawns as a process owns it and tunes it.
os.environ.setdefault("YIWANG_TUNE_GC", "false")


@pytest.fixture(autouse=True)
def _collector_left_as_found() -> Iterator[None]:
    """A test that tunes this process's collector (a benchmark run in-process calls ``tune_gc``,
    as a leader does) gives it back after: the suite's process is no leader."""
    from controller.scheduler import collector

    thresholds = gc.get_threshold()
    yield
    if collector._GC_TUNED:
        collector._GC_TUNED = False
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        gc.enable()


__all__ = ["REFDATA", "REPO", "free_port", "need"]  # imported by the test modules


OUTSIDE = REPO.parent / "shared"  # the reference folder beside the repository: never read


def _refuse_outside(event: str, args: tuple[object, ...]) -> None:
    """Audit hook: opening, listing or stat-ing anything under ``OUTSIDE`` fails the caller."""
    if (
        event in ("open", "os.listdir", "os.scandir")
        and args
        and isinstance(args[0], str | bytes | os.PathLike)
    ):
        path = os.fsdecode(args[0])
        if os.path.abspath(path).startswith(str(OUTSIDE) + os.sep) or os.path.abspath(path) == str(OUTSIDE):
            raise PermissionError(f"the repository must be self-contained: {path} is outside it")


sys.addaudithook(_refuse_outside)  # for the whole test session (see tests/test_self_contained.py)


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
    why = postgres.unavailable()
    need(why is None, why or "")
    with postgres.throwaway_postgres() as url:
        yield url


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
