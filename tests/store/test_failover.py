"""The store through a failover (issue 12): the multi-host URL, errors that mean "the primary is
gone" answered as 503 with Retry-After (never a 500, never an acknowledgement), the pool dropped
and the next request reconnected by itself, a replay that acknowledges only what is on the
standby, and the leader's bookkeeping when a commit fails."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError, InternalError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from controller.api.app import create_app
from controller.bench import postgres
from controller.errors import StoreUnavailable
from controller.jobs import JobCreate
from controller.service import Controller
from controller.settings import Settings
from controller.store.store import (
    GroupCommitter,
    Store,
    _failover_is_disconnect,
    make_engine,
    normalise_url,
    now,
    store_unavailable,
)
from tests.conftest import need

JOB = {
    "name": "failover-probe",
    "tenant": "hubei",
    "resources": {"cpu": 0.001, "memory_gib": 0.0},
    "constraints": {"allow_clusters": ["prov-hubei"]},
    "runtime": {"command": ["true"]},
}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            "postgresql+psycopg://yiwang@bj.db:5432,ga.db:5433/yiwang?target_session_attrs=read-write&connect_timeout=2",
            "postgresql+psycopg://yiwang@/yiwang?host=bj.db:5432&host=ga.db:5433&target_session_attrs=read-write&connect_timeout=2",
        ),
        (
            "postgresql+psycopg://u:p%40ss@10.0.0.1:5432,10.1.0.1:5432/db",
            "postgresql+psycopg://u:p%40ss@/db?host=10.0.0.1:5432&host=10.1.0.1:5432",
        ),
        ("postgresql+psycopg://u@h1,h2/db", "postgresql+psycopg://u@/db?host=h1&host=h2"),
        # one host, SQLite and SQLAlchemy's own multi-host form stay as they are
        ("postgresql+psycopg://u@h1:5432/db", "postgresql+psycopg://u@h1:5432/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
        ("postgresql+psycopg://u@/db?host=a:1&host=b:2", "postgresql+psycopg://u@/db?host=a:1&host=b:2"),
    ],
)
def test_libpq_multi_host_urls_become_sqlalchemy_host_parameters(given: str, expected: str) -> None:
    assert normalise_url(given) == expected


def test_the_multi_host_url_reaches_libpq_as_a_host_list() -> None:
    engine = make_engine("postgresql+psycopg://yiwang@bj:5432,ga:5433/yiwang?target_session_attrs=read-write")
    _, params = engine.dialect.create_connect_args(engine.url)
    assert params["host"] == "bj,ga" and params["port"] == "5432,5433"
    assert params["target_session_attrs"] == "read-write"


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("exc", "unavailable"),
    [
        (OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly")), True),
        (InternalError("INSERT", {}, _PgError("25006")), True),  # read-only: demoted under us
        (ProgrammingError("INSERT", {}, _PgError("57P01")), True),  # administrator shutdown
        (PoolTimeout(), True),
        (IntegrityError("INSERT", {}, _PgError("23505")), False),  # a duplicate key is not a failover
        (ProgrammingError("SELEC", {}, _PgError("42601")), False),  # a bug stays a 500
        (ValueError("x"), False),
    ],
)
def test_which_errors_mean_the_store_is_failing_over(exc: BaseException, unavailable: bool) -> None:
    assert store_unavailable(exc) is unavailable


def test_a_read_only_or_shut_down_server_counts_as_a_disconnect() -> None:
    for state, disconnect in (("25006", True), ("57P01", True), ("23505", False)):
        ctx = SimpleNamespace(original_exception=_PgError(state), is_disconnect=False)
        _failover_is_disconnect(ctx)
        assert ctx.is_disconnect is disconnect


def test_a_batch_that_hits_a_failover_is_refused_whole_without_row_by_row_retries() -> None:
    calls: list[int] = []

    class Down:
        def insert_jobs(self, rows: list[dict[str, Any]]) -> Any:
            calls.append(len(rows))
            raise StoreUnavailable("primary gone", retry_after=2)

        insert_jobs_bulk = insert_jobs

    gc = GroupCommitter(Down(), max_batch=64)  # type: ignore[arg-type]

    async def submit_three() -> list[BaseException]:
        import asyncio

        futs = [gc.submit({"id": str(i), "tenant": "hubei"}) for i in range(3)]
        return [r for r in await asyncio.gather(*futs, return_exceptions=True)]  # type: ignore[misc]

    import asyncio

    results = asyncio.run(submit_three())
    assert all(isinstance(r, StoreUnavailable) for r in results)
    assert sum(calls) == 3 and len(calls) <= 3  # one attempt per batch, never one per row after it


# ---- against a real PostgreSQL that dies and comes back --------------------------------------
@pytest.fixture
def server() -> Iterator[postgres.PostgresServer]:
    why = postgres.unavailable()
    need(why is None, why or "")
    s = postgres.PostgresServer()
    s.start()
    try:
        yield s
    finally:
        s.remove()


def test_keepalives_and_a_user_timeout_reach_libpq(server: postgres.PostgresServer) -> None:
    engine = make_engine(server.url)
    seen: dict[str, Any] = {}
    event.listen(engine, "do_connect", lambda _d, _r, _a, cparams: seen.update(cparams))
    with engine.connect():
        pass
    assert seen["keepalives"] == "1" and int(seen["keepalives_idle"]) <= 5
    assert int(seen["tcp_user_timeout"]) > 0 and seen["connect_timeout"] == "2"


@pytest.mark.timeout(60)
def test_a_dead_store_answers_503_with_retry_after_and_the_controller_reconnects_by_itself(
    server: postgres.PostgresServer, tmp_path: Path
) -> None:
    app = create_app(Settings(database_url=server.url, background=False))
    with TestClient(app, raise_server_exceptions=False) as client:
        first = client.post("/v1/jobs", json=JOB, headers={"Idempotency-Key": "k-1"})
        assert first.status_code == 201
        server.stop()  # a crash: every pooled connection is now dead
        for method, path, body in (
            ("POST", "/v1/jobs", JOB),  # the raw fast path
            ("POST", "/v1/plan", JOB),
            ("GET", "/v1/jobs", None),
            ("GET", f"/v1/jobs/{first.json()['id']}", None),
            ("POST", "/v1/agents/prov-hubei/heartbeat", None),
        ):
            r = client.request(method, path, json=body, headers={"Idempotency-Key": "k-2"})
            if path == "/v1/plan" and r.status_code == 200:
                continue  # planning needs no store read
            assert r.status_code == 503, (method, path, r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert int(r.headers["Retry-After"]) >= 1
            assert r.json()["title"] == "Store unavailable"
        assert client.get("/readyz").status_code == 503
        server.start()
        again = client.post("/v1/jobs", json=JOB, headers={"Idempotency-Key": "k-2"})
        assert again.status_code == 201, again.text  # reconnected, nothing acknowledged before
        replay = client.post("/v1/jobs", json=JOB, headers={"Idempotency-Key": "k-1"})
        assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]
        assert client.get("/readyz").status_code == 200


def test_a_server_turned_read_only_under_open_connections_drops_the_pool(
    server: postgres.PostgresServer,
) -> None:
    """A demoted primary keeps its connections for a moment and refuses writes (25006): the
    write is refused as unavailable and the pool is dropped, so the next transaction
    connects again (through the multi-host list, to the new primary)."""
    store = Store(server.url)
    store.put_policy("probe", {"n": 1})
    dsn = server.url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        admin.execute("SELECT pg_reload_conf()")
    time.sleep(0.5)
    generation = store.engine.pool._invalidate_time  # type: ignore[attr-defined]
    with pytest.raises(StoreUnavailable):
        store.put_policy("probe", {"n": 2})
    assert store.engine.pool._invalidate_time > generation  # type: ignore[attr-defined]
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("ALTER SYSTEM RESET default_transaction_read_only")
        admin.execute("SELECT pg_reload_conf()")
    time.sleep(0.5)
    assert store.put_policy("probe", {"n": 3}) == 2
    assert store.writable()


def test_an_idempotent_replay_writes_so_its_answer_waits_for_the_standby(
    server: postgres.PostgresServer,
) -> None:
    ctl = Controller(Settings(database_url=server.url, background=False))
    spec = JobCreate.model_validate(JOB)
    job, created = ctl.submit(spec, "replay-key")
    assert created
    dsn = server.url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as admin:
        before = admin.execute("SELECT pg_current_wal_insert_lsn()").fetchone()
        again, created_again = ctl.submit(spec, "replay-key")
        after = admin.execute("SELECT pg_current_wal_insert_lsn()").fetchone()
    assert not created_again and again.id == job.id
    assert before is not None and after is not None and after[0] > before[0]  # WAL: a commit to wait on


# ---- the leader's bookkeeping --------------------------------------------------------------------
def test_a_failed_cycle_commit_leaves_no_reservation_behind(tmp_path: Path) -> None:
    ctl = Controller(Settings(database_url=f"sqlite:///{tmp_path / 'y.db'}", background=False))
    ctl.heartbeat("prov-hubei", {"capacity": {"cpu": 64, "memory_gib": 256, "gpu": 0}})
    job, _ = ctl.submit(JobCreate.model_validate(JOB))
    real = ctl.store.audit_placements

    def fail(*a: Any, **k: Any) -> None:
        raise StoreUnavailable("the primary went away during the commit")

    ctl.store.audit_placements = fail  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailable):
        ctl.schedule_pending()
    assert job.id not in ctl.registry.ledger  # nothing reserved for a dispatch that never happened
    assert ctl.get_job(job.id).phase.value == "Pending"
    ctl.store.audit_placements = real  # type: ignore[method-assign]
    assert ctl.schedule_pending() == 1  # placed by the next cycle


def test_silence_counts_from_the_takeover_not_from_before_it(tmp_path: Path) -> None:
    """A cluster whose last contact predates the leader's takeover (the store was failing over,
    no leader could hear it) keeps its jobs for lease + grace after the takeover: work that
    finished meanwhile gets reported instead of run again."""
    ctl = Controller(Settings(database_url=f"sqlite:///{tmp_path / 'y.db'}", background=False))
    ctl.heartbeat("prov-hubei", {"capacity": {"cpu": 64, "memory_gib": 256, "gpu": 0}})
    job, _ = ctl.submit(JobCreate.model_validate(JOB))
    assert ctl.schedule_pending() == 1
    pol = ctl.policies.failover
    hold = pol.lease_s + pol.heartbeat_grace_s
    state = ctl.registry.clusters["prov-hubei"]
    state.last_heartbeat = now() - timedelta(seconds=hold + 30)  # silent through a failover
    ctl.store.update_cluster("prov-hubei", last_heartbeat=state.last_heartbeat)
    ctl.lead_since = now() - timedelta(seconds=1)  # this leader took over a second ago
    assert ctl.expire_leases() == 0
    assert ctl.get_job(job.id).cluster == "prov-hubei"
    ctl.lead_since = now() - timedelta(seconds=hold + 1)  # lease + grace since the takeover
    assert ctl.expire_leases() == 1
    assert ctl.get_job(job.id).phase.value == "Pending"


def test_a_renewal_through_another_controller_wins_over_a_stale_view(tmp_path: Path) -> None:
    """The leader's view of a cluster's last contact may lag a heartbeat that reached another
    controller process (the other national site, an API replica): the expiry re-reads the
    contact from the store under the cluster row's lock, and a fresh one keeps the jobs."""
    ctl = Controller(Settings(database_url=f"sqlite:///{tmp_path / 'y.db'}", background=False))
    ctl.heartbeat("prov-hubei", {"capacity": {"cpu": 64, "memory_gib": 256, "gpu": 0}})
    job, _ = ctl.submit(JobCreate.model_validate(JOB))
    assert ctl.schedule_pending() == 1
    pol = ctl.policies.failover
    stale = now() - timedelta(seconds=pol.lease_s + pol.heartbeat_grace_s + 5)
    ctl.lead_since = stale
    ctl.registry.clusters["prov-hubei"].last_heartbeat = stale  # this process's view: silent
    # the store has the heartbeat another process just wrote
    assert ctl.expire_leases() == 0
    assert ctl.get_job(job.id).cluster == "prov-hubei"
    assert ctl.registry.clusters["prov-hubei"].last_heartbeat > stale  # the view caught up
