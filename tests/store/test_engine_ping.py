"""The PostgreSQL pool's checkout ping (controller/store/engine.py ``_ping_if_idle``): a pooled
connection idle longer than ``PING_IDLE_S`` is pinged and, dead, replaced without the caller
seeing it; one used more recently is not pinged, so its death fails the next transaction as a
503 (nothing acknowledged) and the pool reconnects for the one after. Real PostgreSQL 15."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text

from controller.errors import StoreUnavailable
from controller.store import Store
from controller.store import engine as engine_mod


def kill_backends(url: str) -> int:
    """Terminate every other session on the store's database (as a primary's restart would)."""
    e = create_engine(url)
    try:
        with e.connect() as c:
            n = c.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar()
        return int(n or 0)
    finally:
        e.dispose()


def one(store: Store) -> int:
    with store.read() as c:
        return int(c.execute(text("SELECT 1")).scalar() or 0)


def test_an_idle_dead_connection_is_replaced_at_checkout(
    fresh_postgres: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_mod, "PING_IDLE_S", 0.05)
    store = Store(fresh_postgres)
    assert one(store) == 1
    assert kill_backends(fresh_postgres) >= 1
    time.sleep(0.2)  # idle past PING_IDLE_S: pinged, found dead, replaced
    assert one(store) == 1
    store.close()


def test_a_recently_used_dead_connection_fails_one_transaction_then_the_pool_reconnects(
    fresh_postgres: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_mod, "PING_IDLE_S", 3600.0)  # never pinged in this test
    store = Store(fresh_postgres)
    assert one(store) == 1
    assert kill_backends(fresh_postgres) >= 1
    time.sleep(0.2)
    with pytest.raises(StoreUnavailable):
        one(store)
    assert one(store) == 1  # the failure invalidated the pool: a fresh connection
    store.close()
