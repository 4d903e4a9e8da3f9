"""Compact stored decisions and the pending queue's order.

- ``decision_parts``: what stored decisions share or hold in bulk, by key: a cycle's context
  (``body``: the cluster names, score plugins and column types, once) and a cycle's packed
  columns (``data``: every decision's bytes in one row); a decision in the columns format names
  its context and the slice of the bytes that is its own (controller/scheduler/stored.py).
- ``ix_jobs_pending_order``: the pending head (phase, priority descending, id) read by every
  scheduling cycle walks this index instead of sorting every pending job: the cost of a cycle
  does not grow with the queue.

Revision ID: 0006
Revises: 0005
Create Date: 2027-01-14
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from controller.store.migrate import create_index_online

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the table committed before the index is built (create_index_online): a run that dies
    # during the build finds it there the next time
    op.create_table(
        "decision_parts",
        sa.Column("key", sa.String(32), primary_key=True),
        sa.Column("body", sa.JSON, nullable=True),
        sa.Column("data", sa.LargeBinary, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        if_not_exists=True,
    )
    create_index_online("ix_jobs_pending_order", "jobs", ["phase", sa.text("priority DESC"), "id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_pending_order", table_name="jobs")
    op.drop_table("decision_parts")
