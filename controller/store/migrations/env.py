"""Alembic environment: the engine comes from controller.store.migrate (config.attributes).

Controller processes starting together on a database (a Deployment's pods, a rolling upgrade)
must not migrate it twice: the first takes the migration lock and migrates, the others wait for
it and then find the schema at head.

- PostgreSQL: a session-level advisory lock, taken by trying every ``LOCK_RETRY_S`` (not by a
  blocking ``pg_advisory_lock``: a session waiting inside that statement holds a snapshot, and
  an index built ``CONCURRENTLY`` waits for every older snapshot to end, so the waiter and the
  build would wait on each other until the deadlock detector killed one). It is held across the
  migrations' own transactions, one per migration (``transaction_per_migration``): a migration
  that builds an index on a live table (``migrate.create_index_online``) commits what it did
  before, builds the index outside any transaction, and its version is written after it.
- SQLite: the whole upgrade in one ``BEGIN IMMEDIATE`` transaction (one writer at a time).
"""

from __future__ import annotations

import logging
import time

from alembic import context
from sqlalchemy import Connection, Engine

from controller.store.schema import metadata

config = context.config
MIGRATION_LOCK = 0x79697761  # "yiwa": the advisory lock key serialising migrations
LOCK_RETRY_S = 0.2
log = logging.getLogger("yiwang.store")


def _lock_postgresql(connection: Connection) -> None:
    waited = False
    while True:
        got = connection.exec_driver_sql(f"SELECT pg_try_advisory_lock({MIGRATION_LOCK})").scalar()
        connection.commit()  # no transaction, so no snapshot, while it waits
        if got:
            return
        if not waited:
            log.info("another process is migrating the database; waiting for it")
            waited = True
        time.sleep(LOCK_RETRY_S)


def _postgresql(engine: Engine) -> None:
    with engine.connect() as connection:
        _lock_postgresql(connection)
        try:
            context.configure(connection=connection, target_metadata=metadata, transaction_per_migration=True)
            with context.begin_transaction():
                context.run_migrations()
        finally:
            if connection.in_transaction():
                connection.rollback()
            connection.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")
            connection.commit()


def _sqlite(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


def run_migrations_online() -> None:
    engine: Engine = config.attributes["engine"]
    if engine.dialect.name == "postgresql":
        _postgresql(engine)
    elif engine.dialect.name == "sqlite":
        _sqlite(engine)
    else:
        with engine.begin() as connection:
            context.configure(connection=connection, target_metadata=metadata)
            with context.begin_transaction():
                context.run_migrations()


run_migrations_online()
