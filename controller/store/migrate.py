"""Run the Alembic migrations programmatically (``yiwang db upgrade`` and at start-up)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from alembic import command, op
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, TextClause, text

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def create_index_online(
    name: str, table: str, columns: Sequence[str | TextClause], *, where: TextClause | None = None
) -> None:
    """A migration's ``op.create_index`` that does not stop writes to a live table.

    On PostgreSQL the index is built ``CONCURRENTLY``, outside the migration's transaction (an
    ``autocommit_block``: the migration's earlier steps commit first, so a migration using this
    builds its indexes last and makes its other steps safe to repeat). A plain ``CREATE INDEX``
    takes a SHARE lock on the table until the migration commits: every insert and update of it
    waits for the whole build (the jobs table: every submission and every scheduling cycle), and
    behind a long transaction already writing the table, for that one too. ``CONCURRENTLY``
    takes SHARE UPDATE EXCLUSIVE, which writers do not wait for.

    A concurrent build that dies (the process killed, the connection lost) leaves an invalid
    index of that name, and the migration is not recorded as done: the next run drops the
    invalid one and builds it again; a valid one (the build finished, the process died before
    the version was written) is kept. On SQLite, a plain ``CREATE INDEX`` (one writer at a time
    anyway)."""
    ctx = op.get_context()
    if ctx.dialect.name != "postgresql":
        op.create_index(name, table, list(columns), sqlite_where=where)
        return
    with ctx.autocommit_block():
        valid = (
            op.get_bind()
            .execute(
                text(
                    "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                    "WHERE c.relname = :name AND c.relnamespace = current_schema()::regnamespace"
                ),
                {"name": name},
            )
            .scalar()
        )
        if valid:
            return
        if valid is not None:  # left invalid by a build that died
            op.drop_index(name, table_name=table, postgresql_concurrently=True)
        op.create_index(name, table, list(columns), postgresql_where=where, postgresql_concurrently=True)
