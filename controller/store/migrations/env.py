"""Alembic environment: the engine comes from controller.store.migrate (config.attributes)."""

from __future__ import annotations

from alembic import context

from controller.store.schema import metadata

config = context.config
MIGRATION_LOCK = 0x79697761  # "yiwa": the advisory lock key serialising migrations


def run_migrations_online() -> None:
    engine = config.attributes["engine"]
    with engine.begin() as connection:
        # Controller processes starting together on a new database (a Deployment's pods) must
        # not migrate it twice: the first takes the lock and migrates, the others wait for it and
        # then find the schema at head.
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        elif connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
