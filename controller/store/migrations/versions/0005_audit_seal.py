"""Tamper-evident audit, completed: append-only checkpoints, and the rows written before the chain
sealed into it.

- ``audit_checkpoints`` gets the triggers ``audit_log`` has: UPDATE and DELETE are refused (and
  TRUNCATE on PostgreSQL), so removing a signed checkpoint needs a superuser who drops them (the
  exported copies then show it: ``yiwang audit verify --checkpoints``).
- Rows of ``audit_log`` written before migration 0003 have no hash. If there are any, one row is
  appended through the chain (``audit_chain.append``), action ``audit.sealed``, whose detail holds
  their count, first and last id and their digest (SM3 chained from the genesis over them,
  ``audit_chain.legacy_digest``). From then on ``yiwang audit verify`` checks them against it:
  a changed, deleted or inserted legacy row is a finding. Trust assumption: the seal attests
  those rows as they were at this upgrade; nothing can show what happened to them before it.

Revision ID: 0005
Revises: 0004
Create Date: 2027-01-12
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from controller.store import audit_chain

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

APPEND_ONLY = "audit_checkpoints is append-only"
SQLITE_TRIGGERS = [
    f"CREATE TRIGGER audit_checkpoints_no_{verb.lower()} BEFORE {verb} ON audit_checkpoints "
    f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
    for verb in ("UPDATE", "DELETE")
]
POSTGRES_TRIGGERS = [
    "CREATE FUNCTION audit_checkpoints_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    f"BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END $$",
    "CREATE TRIGGER audit_checkpoints_no_update_delete BEFORE UPDATE OR DELETE ON audit_checkpoints "
    "FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_append_only()",
    "CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_checkpoints_append_only()",
]
SEAL_ACTOR = "yiwang-upgrade"


def seal(conn: sa.Connection) -> None:
    """Append the seal of the rows before the chain, if there are any."""
    legacy = audit_chain.legacy_rows(conn)
    if not legacy or audit_chain.seal_ids(conn):
        return
    audit_chain.append(
        conn,
        [
            {
                "at": datetime.now(UTC),
                "actor": SEAL_ACTOR,
                "role": "system",
                "tenant": None,
                "action": audit_chain.SEAL_ACTION,
                "target": "audit_log",
                "detail": {
                    "revision": revision,
                    "rows": len(legacy),
                    "first_id": legacy[0]["id"],
                    "last_id": legacy[-1]["id"],
                    "digest": audit_chain.legacy_digest(legacy),
                },
            }
        ],
    )


def upgrade() -> None:
    conn = op.get_bind()
    for ddl in POSTGRES_TRIGGERS if conn.dialect.name == "postgresql" else SQLITE_TRIGGERS:
        op.execute(ddl)
    seal(conn)


def downgrade() -> None:
    # The seal row stays (audit_log is append-only); a later upgrade finds it and seals nothing.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_checkpoints_no_truncate ON audit_checkpoints")
        op.execute("DROP TRIGGER audit_checkpoints_no_update_delete ON audit_checkpoints")
        op.execute("DROP FUNCTION audit_checkpoints_append_only()")
    else:
        op.execute("DROP TRIGGER audit_checkpoints_no_delete")
        op.execute("DROP TRIGGER audit_checkpoints_no_update")
